"""Inbox to work/: hints and rescans, the stability wait, quarantine, and the claim by move.

The watcher's hints and the periodic rescans name paths; a candidate is claimed once it has
stopped changing: its job is created and its move into work/ planned in one transaction, then
the file is moved. What must never be processed is set aside in quarantine/; what is merely
not audio is left in the inbox and reported once.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session

from voxbatch.config import Settings
from voxbatch.errors import ErrorCode, StoreError, VoxbatchError, display_path
from voxbatch.ingest.folders import (
    Inbox,
    crash_point,
    free_destination,
    move,
    work_name,
    write_note,
)
from voxbatch.ingest.scan import (
    StabilityTracker,
    Verdict,
    classify,
    decodes,
    scan,
    signature,
    signature_of,
)
from voxbatch.media import audio
from voxbatch.names import note_name
from voxbatch.store import jobs, queue
from voxbatch.store.db import Database
from voxbatch.store.models import Job, JobState

log = logging.getLogger(__name__)


class Intake:
    """Watches the inboxes' paths and claims each ready file as a queued job.

    `wake` is called after each claim (the dispatcher may start it); `outcomes` counts the
    files quarantined or failed here. No I/O happens until `rescan` or `run`.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        boxes: list[Inbox],
        *,
        ffmpeg: str,
        stop: asyncio.Event,
        wake: Callable[[], None],
        outcomes: Counter[str],
        tick_s: float,
    ) -> None:
        self.settings = settings
        self.db = db
        self.boxes = boxes
        self.ffmpeg = ffmpeg
        self.tick_s = tick_s
        self._stop = stop
        self._wake = wake
        self.outcomes = outcomes
        self.tracker = StabilityTracker(settings.daemon.stable_seconds)
        self.hints: set[bytes] = set()
        self.rescan_due = True
        self.noted: set[bytes] = set()  # unsupported names already reported
        self.unmovable: dict[bytes, tuple[int, int, int]] = {}
        self.claiming = 0  # files between the inbox and the queue right now
        # A pass's paths not yet looked at, and a rescan running in a thread: both are files
        # on their way that `--once` must wait for (they are in neither hints nor the tracker).
        self._unseen = 0
        self._scanning = False

    def hint(self, path: bytes) -> None:
        self.hints.add(path)

    def ask_rescan(self) -> None:
        self.rescan_due = True

    def settling(self) -> bool:
        """Files on their way to the queue: being claimed, waited on, hinted or to be scanned."""
        return bool(
            self.claiming
            or self._unseen
            or self._scanning
            or len(self.tracker)
            or self.hints
            or self.rescan_due
        )

    async def rescan_off_loop(self) -> None:
        """`rescan` in a thread (it lists folders and may move files to quarantine/)."""
        self._scanning = True
        try:
            await asyncio.to_thread(self.rescan)
        finally:
            self._scanning = False

    def rescan(self) -> None:
        self.rescan_due = False
        for box in self.boxes:
            for found in scan(
                box.root,
                recursive=box.profile.recursive,
                extensions=self.settings.daemon.extensions,
            ):
                if found.verdict is Verdict.candidate:
                    self.hints.add(found.path)
                elif found.verdict is Verdict.quarantine:
                    self._quarantine(box, found.path, found.rel, found.reason)
                elif found.verdict is Verdict.unsupported:
                    self._note_unsupported(found.path, found.reason)

    async def run(self) -> None:
        last_scan = time.monotonic()
        while not self._stop.is_set():
            if (
                self.rescan_due
                or time.monotonic() - last_scan >= self.settings.daemon.rescan_seconds
            ):
                last_scan = time.monotonic()
                await self.rescan_off_loop()
            await self._intake_pass()
            await asyncio.sleep(self.tick_s)

    async def _intake_pass(self) -> None:
        paths = sorted(set(self.tracker.paths()) | self.hints)
        self.hints = set()
        self._unseen = len(paths)
        try:
            for path in paths:
                if self._stop.is_set():
                    return
                try:
                    await self._consider(path)
                except Exception:  # one odd file must never stop the intake
                    log.exception("could not handle %s", display_path(Path(os.fsdecode(path))))
                    self.tracker.forget(path)
                self._unseen -= 1
        finally:
            self._unseen = 0

    def _locate(self, path: bytes) -> tuple[Inbox, bytes] | None:
        for box in sorted(self.boxes, key=lambda b: len(str(b.root)), reverse=True):
            root = os.fsencode(box.root)
            if path.startswith(root.rstrip(b"/") + b"/"):
                rel = path[len(root.rstrip(b"/")) + 1 :]
                parts = rel.split(b"/")
                if any(p.startswith(b".") for p in parts):
                    return None  # .incoming/ and other dot-folders are producers' space
                if any(not decodes(p) for p in parts[:-1]):
                    self.ask_rescan()  # the scan sets such a folder aside
                    return None
                if len(parts) > 1 and not box.profile.recursive:
                    return None
                return box, rel
        return None

    async def _consider(self, path: bytes) -> None:
        located = self._locate(path)
        if located is None:
            self.tracker.forget(path)
            return
        box, rel = located
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.tracker.forget(path)
            return
        if stat.S_ISDIR(st.st_mode):  # a folder moved in: look inside
            if box.profile.recursive:
                self.ask_rescan()
            return
        if self.unmovable.get(path) == signature_of(st):
            self.tracker.forget(path)
            return  # already reported; a changed file is tried again
        found = classify(path, rel, st, self.settings.daemon.extensions)
        if found.verdict is Verdict.quarantine:
            self.tracker.forget(path)
            await asyncio.to_thread(self._quarantine, box, path, rel, found.reason)
        elif found.verdict is Verdict.unsupported:
            self.tracker.forget(path)
            await asyncio.to_thread(self._note_unsupported, path, found.reason)
        elif found.verdict is Verdict.candidate and st.st_size == 0:
            # Nothing to wait for yet: writes and rescans bring it back once it has content.
            self.tracker.forget(path)
            await asyncio.to_thread(
                self._note_unsupported, path, "an empty file (taken once it has content)"
            )
        elif found.verdict is Verdict.candidate:
            self.noted.discard(path)
            if self.tracker.observe(path, st, time.monotonic()):
                self.tracker.forget(path)
                self.claiming += 1
                try:
                    await self._claim(box, path, rel, st)
                finally:
                    self.claiming -= 1
        else:
            self.tracker.forget(path)

    def _note_unsupported(self, path: bytes, reason: str) -> None:
        if path in self.noted:
            return
        self.noted.add(path)
        shown = display_path(Path(os.fsdecode(path)))
        log.info("left alone: %s (%s)", shown, reason)
        self._path_event("ignored", f"left in the inbox: {reason}", shown)

    def _path_event(self, kind: str, detail: str, shown: str) -> None:
        """An event about a file not yet a job (in a thread); the log has it if the store
        refuses it now."""
        try:
            with self.db.write() as session:
                jobs.add_event(session, kind, detail, path=shown)
        except StoreError as exc:
            self.db.health.failed(exc)

    def _quarantine(self, box: Inbox, path: bytes, rel: bytes, reason: str) -> None:
        try:
            self._set_aside(path, rel, reason)
        except OSError as exc:
            # Say so once; never let one odd entry stop a scan.
            if path not in self.noted:
                self.noted.add(path)
                shown = display_path(Path(os.fsdecode(path)))
                log.error(
                    "%s must not be processed (%s) but cannot be moved to quarantine/ (%s); "
                    "remove it from the inbox",
                    shown,
                    reason,
                    exc.strerror or exc,
                )
                self._path_event("ignored", f"{reason}; cannot be quarantined", shown)

    def _set_aside(self, path: bytes, rel: bytes, reason: str) -> None:
        source = os.lstat(path)
        if os.stat(self.settings.folder("quarantine")).st_dev != source.st_dev and not (
            stat.S_ISREG(source.st_mode) or stat.S_ISLNK(source.st_mode)
        ):
            # Pipes, devices and folders cannot be copied across filesystems.
            raise OSError(errno.EXDEV, "it is on another filesystem and not a plain file")
        dst = free_destination(self.settings.folder("quarantine"), rel)
        shown = display_path(Path(os.fsdecode(path)))
        note = dst.with_name(note_name(dst.name))
        write_note(
            note,
            f"file: {shown}\nquarantined: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n"
            f"why: {reason}\n"
            "what to do: voxbatch never processes this. Give it a plain UTF-8 name, or copy "
            "the real file (not a link) into the inbox.\n",
        )
        move(path, dst)
        log.warning("quarantined %s: %s", shown, reason)
        self._path_event("quarantined", f"{reason}; moved to {display_path(dst)}", shown)
        self.outcomes["quarantined"] += 1

    async def _claim(self, box: Inbox, path: bytes, rel: bytes, st: os.stat_result) -> None:
        src = Path(os.fsdecode(path))
        sha = await audio.file_sha256(src)
        rel_text = os.fsdecode(rel)
        out_dir = self.settings.folder("outbox") / Path(rel_text).parent
        dst_folder = self.settings.folder("work")

        def plan(session: Session) -> tuple[int, Path]:
            primary = jobs.find_primary(session, sha)
            job = jobs.create_job(
                session,
                content_sha256=sha,
                source_path=display_path(src),
                size_bytes=st.st_size,
                inbox=box.name,
                output_dir=str(out_dir),
                primary=primary,
            )
            assert job.id is not None
            job.rel_path = rel_text
            dst = dst_folder / work_name(job.id, src.name)
            queue.plan_move(session, job, src, dst, signature(src))
            return job.id, dst

        job_id, dst = await self.db.write_through_faults(plan)
        crash_point("claim")
        try:
            # A crash between plan and move is finished by reconcile_moves. In a thread: a
            # copy across filesystems must not stall the loop (and the watchdog).
            await asyncio.to_thread(move, src, dst)
        except OSError as exc:
            await self._unmovable(job_id, path, st, exc)
            return
        after = os.lstat(dst)
        # Written to while we hashed it: what counts is what we now hold.
        changed = signature_of(after) != signature_of(st)
        new_sha = await audio.file_sha256(dst) if changed else sha
        seconds = await self._length(dst) if self._caps_set(box) else None

        def settle(session: Session) -> None:
            job = session.get_one(Job, job_id)
            if new_sha != sha:
                primary = jobs.find_primary(session, new_sha)
                job.duplicate_of = primary.id if primary is not None else None
                session.flush()
            job.content_sha256, job.size_bytes = new_sha, after.st_size
            job.audio_seconds = seconds
            queue.settle(job, dst)
            jobs.add_event(session, "picked_up", f"moved to {display_path(dst)}", job_id=job_id)

        await self.db.write_through_faults(settle)
        log.info("claimed %s as job %s", display_path(src), job_id)
        self._wake()

    def _caps_set(self, box: Inbox) -> bool:
        caps = self.settings.budget
        profile = box.profile
        return bool(
            caps.daily_usd
            or caps.monthly_usd
            or profile.budget_daily_usd
            or profile.budget_monthly_usd
        )

    async def _length(self, path: Path) -> float | None:
        """The audio's length for the cost estimate (the job fails later if it is not audio)."""
        try:
            return (await audio.probe(path, ffmpeg=self.ffmpeg)).duration_seconds
        except VoxbatchError:
            return None

    async def _unmovable(self, job_id: int, path: bytes, st: os.stat_result, exc: OSError) -> None:
        """The file cannot leave the inbox (permissions, say): say so once, leave it there."""
        vanished = exc.errno == errno.ENOENT
        reason = (
            "the file left the inbox before it was claimed"
            if vanished
            else f"cannot move it out of the inbox: {exc.strerror}"
        )

        def fail(session: Session) -> None:
            job = session.get_one(Job, job_id)
            queue.clear_move(job)
            jobs.fail(session, job, ErrorCode.vanished if vanished else ErrorCode.inbox, reason)

        await self.db.write_through_faults(fail)
        if vanished:
            log.info("%s: %s", display_path(Path(os.fsdecode(path))), reason)
            return
        self.outcomes[JobState.failed] += 1
        self.unmovable[path] = signature_of(st)
        log.error(
            "%s: %s; fix the permissions (voxbatch must be able to rename files in the inbox)",
            display_path(Path(os.fsdecode(path))),
            reason,
        )
