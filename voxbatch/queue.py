"""The daemon's job queue in the database: claim, requeue, planned moves, lease recovery.

Each function is one short write transaction. A move of an original is recorded
(`move_from` → `move_to`) before it is made and cleared after, so `reconcile_moves` can
finish or undo whatever a crash interrupted.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select

from voxbatch import store
from voxbatch.budget import ASSUMED_SUMMARY_CHARS
from voxbatch.config import Settings
from voxbatch.costs import chat_charge, stt_charge, tts_charge
from voxbatch.db import Database
from voxbatch.folders import free_destination, move, write_note
from voxbatch.models import ACTIVE_STATES, TERMINAL_STATES, CallKind, Job, JobState, Worker, utcnow
from voxbatch.scan import signature_of
from voxbatch.summarize import tokens_for


def claim_next(
    db: Database,
    owner: str,
    lease_seconds: float,
    *,
    admit: Callable[[Session, Job], str | None] | None = None,
    scan_limit: int = 200,
) -> int | None:
    """The oldest runnable daemon job that `admit` lets start, leased to `owner`.

    `admit` (the spend caps) returns a reason for a job that must wait; it stays queued and
    the next one is tried. None when nothing may run now.
    """
    now = utcnow()
    with db.write() as session:
        candidates = session.exec(
            select(Job)
            .where(
                Job.state == JobState.queued,
                col(Job.work_path).is_not(None),
                col(Job.move_to).is_(None),
                sa.or_(col(Job.not_before).is_(None), col(Job.not_before) <= now),
            )
            # Copies waiting for their original come last: they must not crowd out new work.
            .order_by(
                col(Job.duplicate_of).is_not(None),
                sa.func.coalesce(col(Job.not_before), col(Job.created_at)),
                col(Job.id),
            )
            .limit(scan_limit)
        ).all()
        for job in candidates:
            if admit is not None and admit(session, job) is not None:
                continue
            job.lease_owner = owner
            job.lease_expires_at = now + timedelta(seconds=lease_seconds)
            job.wait_reason = None
            store.set_state(session, job, JobState.claimed, detail=f"by {owner}")
            return job.id
        return None


def recheck_held(db: Database, stage: str) -> None:
    """At start the caps may have changed: jobs held by them are looked at again at once."""
    with db.write() as session:
        session.execute(
            sa.update(Job)
            .where(col(Job.state) == JobState.queued, col(Job.stage) == stage)
            .values(not_before=None)
        )


def requeue(
    session: Session, job: Job, *, reason: str, delay_s: float = 0.0, count: bool = False
) -> None:
    """Back to the queue, runnable after `delay_s`; `count` marks a spent retry round."""
    job.lease_owner = None
    job.lease_expires_at = None
    job.partial_text = None
    job.not_before = utcnow() + timedelta(seconds=delay_s) if delay_s > 0 else None
    job.wait_reason = reason
    if count:
        job.requeues += 1
    store.set_state(session, job, JobState.queued, detail=reason)


def plan_move(session: Session, job: Job, src: Path, dst: Path) -> None:
    job.move_from, job.move_to = str(src), str(dst)
    job.move_sig = signature(src)
    session.add(job)


def signature(path: Path) -> str | None:
    try:
        return ":".join(map(str, signature_of(os.lstat(path))))
    except OSError:
        return None


def settle_move(db: Database, job_id: int, dst: Path) -> None:
    with db.write() as session:
        job = session.get_one(Job, job_id)
        settle(job, dst)
        session.add(job)
        store.add_event(session, "moved", f"original now at {dst}", job_id=job_id)


def settle(job: Job, dst: Path) -> None:
    """The original is at `dst` now: in work/ while the job runs, its final place after."""
    if job.state in TERMINAL_STATES:
        job.final_path = str(dst)
        job.work_path = None
    else:
        job.work_path = str(dst)
    clear_move(job)


def clear_move(job: Job) -> None:
    job.move_from = job.move_to = job.move_sig = None


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
                    store.add_event(
                        session, "missing", f"the original is neither at {src} nor at {dst}",
                        job_id=job_id,
                    )  # fmt: skip
                    done.append(Reconciled(job_id, "file missing"))
                    continue
                job.error_class = "FileMissing"
                job.error_message = (
                    f"the file is neither at {src} nor at {dst} (removed or replaced while "
                    "voxbatch was stopped)"
                )
                store.set_state(session, job, JobState.failed, detail=job.error_message)
            done.append(Reconciled(job_id, "file missing"))
            continue
        with db.write() as session:
            job = session.get_one(Job, job_id)
            settle(job, dst)
            store.add_event(
                session, "reconciled", f"move to {dst}: {action} after a restart", job_id=job_id
            )
            note = failure_note_for(job)
        if note is not None and not os.path.lexists(note[0]):
            write_note(*note)  # the crash came between the plan and the note
        done.append(Reconciled(job_id, action))
    return done


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
    return final.with_name(final.name + ".error.txt"), error_note(
        job.id or 0, job.source_name, job.error_message
    )


def error_note(job_id: int, name: str, message: str | None) -> str:
    return (
        f"file: {name}\n"
        f"job: {job_id}\n"
        f"failed: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n"
        f"why: {message or 'unknown'}\n\n"
        f"what to do:\n"
        f"  voxbatch why '{name}'    the whole history of this file\n"
        f"  voxbatch show {job_id}       the job, its API calls and costs\n"
        f"  voxbatch retry {job_id}      try again (after fixing the cause)\n"
    )


def owner_name() -> str:
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str | None, me: str) -> bool:
    """A lease held by a process of this host that no longer exists can be taken at once."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # This very process, under an earlier owner name: a daemon that has stopped.
    return int(pid_text) == os.getpid() and owner != me


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
    redo = stt_charge(
        settings.prices, settings.mistral.transcription_model, math.ceil(job.audio_seconds or 0)
    ).cost_usd
    if (
        unknown
        and store.transcript_for(session, job) is None
        and redo > Decimal(settings.daemon.review_above_usd)
    ):
        job.lease_owner = job.lease_expires_at = None
        job.error_class = "NeedsReview"
        job.error_message = (
            f"its worker stopped during a paid transcription whose result is unknown; "
            f"buying it again would cost about ${redo} (above review_above_usd "
            f"${settings.daemon.review_above_usd}) — `voxbatch retry {job.id}` to buy it again"
        )
        store.set_state(session, job, JobState.needs_review, detail=job.error_message)
        return "needs_review"
    requeue(session, job, reason="its worker stopped before finishing; queued again")
    return "requeued"


def settle_abandoned_calls(session: Session, settings: Settings, job: Job) -> bool:
    """Close a dead worker's `started` calls; True if any was open (its result is unknown)."""
    assert job.id is not None
    found = False
    for call in store.calls_for(session, job.id):
        if call.outcome != "started" or call.id is None:
            continue
        found = True
        seconds: int | None = None
        chars: int | None = None
        tokens: tuple[int | None, int | None] = (None, None)
        if call.kind == CallKind.chat:
            # At most one full context in and one full answer out: an upper estimate.
            transcript = store.transcript_for(session, job)
            read = tokens_for(settings.mistral, len(transcript.text)) if transcript else 0
            tokens_in = min(read, settings.mistral.chat_context_tokens)
            tokens_out = settings.mistral.summary_max_tokens
            tokens = (tokens_in, tokens_out)
            charge = chat_charge(settings.prices, call.model, tokens_in, tokens_out)
        elif call.kind == CallKind.tts:
            chars = ASSUMED_SUMMARY_CHARS
            charge = tts_charge(settings.prices, call.model, chars)
        else:
            seconds = math.ceil(job.audio_seconds or 0)
            charge = stt_charge(settings.prices, call.model, seconds)
        store.finish_call(
            session, call.id, outcome="abandoned", cost_usd=charge.cost_usd,
            price_basis=charge.price_basis, estimated=True, audio_seconds=seconds,
            input_tokens=tokens[0], output_tokens=tokens[1], characters=chars,
            error_detail="its worker stopped before the call finished",
        )  # fmt: skip
    return found


def renew_leases(db: Database, owner: str, job_ids: list[int], lease_seconds: float) -> None:
    if not job_ids:
        return
    with db.write() as session:
        session.execute(
            sa.update(Job)
            .where(col(Job.id).in_(job_ids), col(Job.lease_owner) == owner)
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        )


def beat(db: Database, owner: str, *, state: str, provider: str, detail: str) -> None:
    with db.write() as session:
        worker = session.get(Worker, owner) or Worker(owner=owner)
        worker.heartbeat_at = utcnow()
        worker.state, worker.provider, worker.detail = state, provider, detail
        session.add(worker)


def forget_worker(db: Database, owner: str) -> None:
    with db.write() as session:
        worker = session.get(Worker, owner)
        if worker is not None:
            session.delete(worker)


def forget_dead_workers(db: Database, me: str) -> None:
    """Rows of daemons killed without a goodbye (kill -9, power loss) on this host, or silent
    for ten minutes anywhere: `status` must not show them as running."""
    cutoff = utcnow() - timedelta(minutes=10)
    with db.write() as session:
        for worker in session.exec(select(Worker)).all():
            if worker.owner != me and (
                owner_is_dead(worker.owner, me) or worker.heartbeat_at < cutoff
            ):
                session.delete(worker)


def live_workers(session: Session, within_s: float = 120.0) -> list[Worker]:
    since: datetime = utcnow() - timedelta(seconds=within_s)
    return list(session.exec(select(Worker).where(Worker.heartbeat_at >= since)).all())
