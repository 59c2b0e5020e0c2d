"""The daemon's job queue in the database: claim, requeue, planned moves, lease recovery.

Each function is one short write transaction. A move of an original is recorded
(`move_from` → `move_to`) before it is made and cleared after, so `reconcile_moves` can
finish or undo whatever a crash interrupted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select

from voxbatch.store import jobs
from voxbatch.store.db import Database
from voxbatch.store.models import (
    TERMINAL_STATES,
    Job,
    JobState,
    utcnow,
)


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
            jobs.lease(session, job, owner, lease_seconds)
            job.wait_reason = None
            jobs.set_state(session, job, JobState.claimed, detail=f"by {owner}")
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
    jobs.set_state(session, job, JobState.queued, detail=reason)


def plan_move(session: Session, job: Job, src: Path, dst: Path, sig: str | None) -> None:
    """Record a move before making it; `sig` is `ingest.scan.signature(src)`, read now."""
    job.move_from, job.move_to = str(src), str(dst)
    job.move_sig = sig
    session.add(job)


def settle_move(db: Database, job_id: int, dst: Path) -> None:
    with db.write() as session:
        job = session.get_one(Job, job_id)
        settle(job, dst)
        session.add(job)
        jobs.add_event(session, "moved", f"original now at {dst}", job_id=job_id)


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


def renew_leases(db: Database, owner: str, job_ids: list[int], lease_seconds: float) -> None:
    if not job_ids:
        return
    with db.write() as session:
        session.execute(
            sa.update(Job)
            .where(col(Job.id).in_(job_ids), col(Job.lease_owner) == owner)
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        )
