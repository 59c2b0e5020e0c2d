"""Startup repair: finish interrupted moves, recover jobs of dead workers."""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select

from voxbatch.accounting.paid_calls import settle_abandoned_calls, unknown_call_cost
from voxbatch.config import Settings
from voxbatch.errors import ErrorCode
from voxbatch.ingest.folders import free_destination, move, write_note
from voxbatch.ingest.scan import signature
from voxbatch.media.spool import spool_path_for
from voxbatch.names import note_name
from voxbatch.store import jobs, parts, transcripts
from voxbatch.store.db import Database
from voxbatch.store.models import (
    ACTIVE_STATES,
    CallKind,
    Job,
    JobState,
    utcnow,
)
from voxbatch.store.queue import clear_move, requeue, settle
from voxbatch.store.workers import owner_is_dead


@dataclass(frozen=True)
class Reconciled:
    job_id: int
    action: str


def reconcile_moves(db: Database) -> list[Reconciled]:
    """Finish every move a crash interrupted: the destination was recorded before the move.

    Our file is told from a stranger by what was recorded: the source's (size, mtime, inode)
    at planning time, and at the destination the job's content hash. A file that is not ours
    is never removed: a new file dropped under the same name stays for the scan to find.
    """
    done: list[Reconciled] = []
    with db.read() as session:
        pending = session.exec(select(Job).where(col(Job.move_to).is_not(None))).all()
        plans = [(j.id, j.move_from, j.move_to, j.move_sig, j.content_sha256) for j in pending]
    for job_id, src_s, dst_s, sig, sha in plans:
        assert job_id is not None and src_s is not None and dst_s is not None
        src, dst = Path(src_s), Path(dst_s)
        ours_at_src = os.path.lexists(src) and signature(src) == sig
        ours_at_dst = os.path.lexists(dst) and _content_is(dst, sha)
        if ours_at_dst and ours_at_src:
            os.unlink(src)  # a copy across filesystems was complete; its source was not removed
            action = "the copy had been made; its source was removed now"
        elif ours_at_dst:
            action = "the move had been made"
        elif ours_at_src:
            if os.path.lexists(dst):  # something else took the name meanwhile
                dst = free_destination(dst.parent, dst.name)
            dst.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            move(src, dst)
            action = "the move was finished now"
        else:
            with db.write() as session:
                job = session.get_one(Job, job_id)
                clear_move(job)
                if job.state == JobState.done:  # its results stand; only the original is gone
                    jobs.add_event(
                        session, "missing", f"the original is neither at {src} nor at {dst}",
                        job_id=job_id,
                    )  # fmt: skip
                    done.append(Reconciled(job_id, "file missing"))
                    continue
                jobs.fail(
                    session,
                    job,
                    ErrorCode.file_missing,
                    f"the file is neither at {src} nor at {dst} (removed or replaced while "
                    "voxbatch was stopped)",
                )
            done.append(Reconciled(job_id, "file missing"))
            continue
        with db.write() as session:
            job = session.get_one(Job, job_id)
            settle(job, dst)
            jobs.add_event(
                session, "reconciled", f"move to {dst}: {action} after a restart", job_id=job_id
            )
            note = failure_note_for(job)
        if note is not None and not os.path.lexists(note[0]):
            write_note(*note)  # the crash came between the plan and the note
        done.append(Reconciled(job_id, action))
    return done


def set_aside_orphans(db: Database, settings: Settings) -> list[tuple[Path, Path]]:
    """Originals in work/ that no job knows (the database was deleted, or restored from an
    older backup) go to quarantine/ with a note: a new job's claim would otherwise take the
    same name in work/ and replace them. Hidden names (a copy's temporary file) stay.

    Call it after `reconcile_moves`; returns (from, to) for each file set aside.
    """
    work = settings.folder("work")
    try:
        names = sorted(e.name for e in os.scandir(work) if e.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return []
    names = [n for n in names if not n.startswith(".")]
    if not names:
        return []
    with db.read() as session:
        known = {
            os.path.abspath(p)
            for pair in session.exec(select(Job.work_path, Job.move_to)).all()
            for p in pair
            if p is not None
        }
    moved: list[tuple[Path, Path]] = []
    for name in names:
        src = work / name
        if os.path.abspath(src) in known:
            continue
        dst = free_destination(settings.folder("quarantine"), name)
        write_note(
            dst.with_name(dst.name + ".error.txt"),
            f"file: {src}\nset aside: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n"
            "why: it was in work/ (claimed for a job), but no job of the database knows it: "
            "the database was deleted or restored from an older backup.\n"
            "what to do: move it back into an inbox (under its real name, if you know it) "
            "to process it again.\n",
        )
        move(src, dst)
        moved.append((src, dst))
    return moved


def clear_spool(db: Database, settings: Settings) -> list[Path]:
    """Remove the decoded audio of long files whose jobs no longer run (a `kill -9` leaves it;
    a rerun decodes again). The files removed."""
    folder = spool_path_for(settings.home, 0).parent
    found = sorted(folder.glob("*.pcm")) if folder.is_dir() else []
    removed: list[Path] = []
    with db.read() as session:
        for path in found:
            job = session.get(Job, int(path.stem)) if path.stem.isdigit() else None
            if job is None or job.state not in ACTIVE_STATES:
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _content_is(path: Path, sha: str) -> bool:
    digest = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError:
        return False
    return digest.hexdigest() == sha


def failure_note_for(job: Job) -> tuple[Path, str] | None:
    """Where a failed job's `<name>.error.txt` goes, and what it says."""
    if job.state != JobState.failed or not job.final_path:
        return None
    final = Path(job.final_path)
    return final.with_name(note_name(final.name)), error_note(
        job.id or 0, job.source_name, job.error_message
    )


def error_note(job_id: int, name: str, message: str | None) -> str:
    return (
        f"file: {name}\n"
        f"job: {job_id}\n"
        f"failed: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n"
        f"why: {message or 'unknown'}\n\n"
        f"what to do:\n"
        # Each line pastes into a shell as it is: the name quoted, the explanation a comment.
        f"  voxbatch why {shlex.quote(name)}    # the whole history of this file\n"
        f"  voxbatch show {job_id}       # the job, its API calls and costs\n"
        f"  voxbatch retry {job_id}      # try again (after fixing the cause)\n"
    )


def recover_leases(db: Database, settings: Settings, owner: str) -> list[Reconciled]:
    """Jobs whose worker is gone: back to the queue, or to review when paying again is dear.

    A `started` call of a dead worker may or may not have been billed. It is settled as
    `abandoned`, charged the whole file as an estimate, and the job is only bought again
    without asking when that costs at most `daemon.review_above_usd`.
    """
    now = utcnow()
    out: list[Reconciled] = []
    with db.write() as session:
        stale = session.exec(
            select(Job).where(
                col(Job.state).in_([s.value for s in ACTIVE_STATES]),
                col(Job.work_path).is_not(None),
                col(Job.move_to).is_(None),
                sa.or_(col(Job.lease_owner).is_(None), col(Job.lease_owner) != owner),
            )
        ).all()
        for job in stale:
            expired = job.lease_expires_at is None or job.lease_expires_at < now
            if not (expired or owner_is_dead(job.lease_owner, owner)):
                continue
            out.append(Reconciled(job.id or 0, _recover(session, settings, job)))
    return out


def _recover(session: Session, settings: Settings, job: Job) -> str:
    assert job.id is not None
    unknown = settle_abandoned_calls(session, settings, job)
    # Buying it again costs the whole file; in parts, only what the unfinished parts have
    # left after their last recorded segments.
    left = parts.remaining_seconds(session, job)
    redo = unknown_call_cost(
        settings,
        CallKind.stt,
        settings.mistral.transcription_model,
        audio_seconds=job.audio_seconds if left is None else left,
    ).cost_usd
    if (
        unknown
        and transcripts.transcript_for(session, job) is None
        and redo > Decimal(settings.daemon.review_above_usd)
    ):
        jobs.fail(
            session,
            job,
            ErrorCode.needs_review,
            f"its worker stopped during a paid transcription whose result is unknown; "
            f"buying it again would cost about ${redo} (above review_above_usd "
            f"${settings.daemon.review_above_usd}) — `voxbatch retry {job.id}` to buy it again",
            state=JobState.needs_review,
        )
        return "needs_review"
    requeue(session, job, reason="its worker stopped before finishing; queued again")
    return "requeued"
