"""Originals that grew after they were filed in done/.

A producer that pauses for longer than a whole job has its half-written upload claimed,
transcribed and filed; its open handle then writes on into the file in done/. For a while after
filing (`WATCH_S`) the daemon compares each done original with what its job read; one that grew
(and has settled for `stable_seconds`) goes back to work/ with a planned move, and its job is
queued again for the whole file (the partial transcript stays paid in the ledger).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session

from voxbatch.config import Settings
from voxbatch.errors import StoreError, VoxbatchError
from voxbatch.ingest.folders import move, work_name
from voxbatch.ingest.scan import signature
from voxbatch.media import audio
from voxbatch.store import jobs, queue
from voxbatch.store.db import Database
from voxbatch.store.models import Job, JobState, utcnow

log = logging.getLogger(__name__)

# How long after filing a done original is watched, and how often it is looked at.
WATCH_S = 600.0
EVERY_S = 2.0


class GrownOriginals:
    def __init__(
        self, settings: Settings, db: Database, *, ffmpeg: str, wake: Callable[[], None]
    ) -> None:
        self.settings = settings
        self.db = db
        self.ffmpeg = ffmpeg
        self.wake = wake

    async def run(self) -> None:
        while True:
            with contextlib.suppress(StoreError):  # the store's health says why; next time
                await self.check()
            await asyncio.sleep(EVERY_S)

    async def check(self) -> None:
        since = utcnow() - timedelta(seconds=WATCH_S)
        recent = await self.db.read_async(lambda s: jobs.recently_done(s, since))
        done = self.settings.folder("done")
        for job_id, final, size, sha in recent:
            path = Path(final)
            if not path.is_relative_to(done):  # as filing wrote it: under done/
                continue  # `voxbatch process` leaves originals where they are: never ours
            try:
                st = os.stat(path)
            except OSError:
                continue  # moved away by someone: not ours to follow
            settling = time.time() - st.st_mtime < self.settings.daemon.stable_seconds
            if st.st_size == size or settling:
                continue  # unchanged, or still being written: looked at again later
            try:
                new_sha = await audio.file_sha256(path)
            except (OSError, VoxbatchError):
                continue
            if new_sha != sha:
                await self._reopen(job_id, path, size, st.st_size, new_sha)

    async def _reopen(self, job_id: int, path: Path, before: int, now: int, sha: str) -> None:
        try:
            seconds: float | None = (
                await audio.probe_length(path, ffmpeg=self.ffmpeg)
            ).duration_seconds
        except VoxbatchError:
            seconds = None  # estimated when it runs
        reason = (
            f"the file grew after it was filed (size {before} → {now} bytes): "
            "processing it again, whole"
        )
        work = self.settings.folder("work")

        def plan(session: Session) -> Path | None:
            job = session.get_one(Job, job_id)
            if job.state != JobState.done or job.final_path != str(path):
                return None
            dst = work / work_name(job_id, job.source_name)
            queue.plan_move(session, job, path, dst, signature(path))
            jobs.reopen_grown(
                session, job, reason, sha256=sha, size_bytes=now, audio_seconds=seconds
            )
            return dst

        dst = await self.db.write_async(plan)
        if dst is None:
            return
        log.warning("job %s: %s", job_id, reason)
        try:
            await asyncio.to_thread(move, path, dst)
        except OSError as exc:
            # Planned and recorded: the next start finishes the move (as filing does).
            log.error(
                "job %s: cannot move its original back to %s (%s); it is moved when voxbatch "
                "starts again",
                job_id,
                dst,
                exc.strerror,
            )
            return
        # The move is made and planned: if the store refuses this, the next start records it.
        with contextlib.suppress(StoreError):
            await self.db.run(queue.settle_move, self.db, job_id, dst, writes=True)
        self.wake()
