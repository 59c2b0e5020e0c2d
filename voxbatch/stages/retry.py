"""`voxbatch retry`: a failed job back in the queue, its original back in work/."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select

from voxbatch.config import Settings
from voxbatch.errors import VoxbatchError
from voxbatch.ingest.folders import move, work_name
from voxbatch.ingest.scan import signature
from voxbatch.names import note_name
from voxbatch.store import jobs, queue
from voxbatch.store.db import Database
from voxbatch.store.models import Job, JobState


def retry(db: Database, settings: Settings, job_id: int) -> str:
    """Put a failed (or needs_review) job back in the queue, its original back in work/."""
    with db.read() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise VoxbatchError(f"no job {job_id}")
        if job.state not in (JobState.failed, JobState.needs_review):
            raise VoxbatchError(f"job {job_id} is {job.state}: only failed jobs are retried")
        current = job.final_path or job.work_path
        if current is None and job.rel_path is not None:
            raise VoxbatchError(
                f"job {job_id}'s original never reached work/ ({job.error_message}); "
                "nothing to retry",
                hint="put the file in the inbox again: it is picked up as a new job",
            )
        if current is None:
            raise VoxbatchError(
                f"job {job_id} came from `voxbatch process`, not an inbox",
                hint=f"run `voxbatch process '{job.source_path}'` again; a transcript already "
                "bought is reused at no cost",
            )
        name = job.source_name
    src = Path(current)
    dst = settings.folder("work") / work_name(job_id, name)
    if src != dst and not os.path.lexists(src):
        raise VoxbatchError(f"job {job_id}'s original is no longer at {src}")
    with db.write() as session:
        # Queued and the move planned in one transaction: a crash before the move is
        # finished by the daemon's startup, and the job is never failed with its file in work/.
        job = session.get_one(Job, job_id)
        jobs.reopen(session, job)
        queue.requeue(session, job, reason="retry requested")
        if src != dst:
            queue.plan_move(session, job, src, dst, signature(src))
        else:
            queue.settle(job, dst)  # also forgets a move to failed/ that failed
    if src != dst:
        move(src, dst)
        src.with_name(note_name(src.name)).unlink(missing_ok=True)
        queue.settle_move(db, job_id, dst)
    return f"job {job_id} queued again ({name})"


def failed_ids(session: Session) -> list[int]:
    """Failed jobs whose original the daemon holds (`process` jobs are run again by hand)."""
    rows = session.exec(
        select(Job.id).where(
            Job.state == JobState.failed,
            sa.or_(col(Job.final_path).is_not(None), col(Job.work_path).is_not(None)),
        )
    ).all()
    return [r for r in rows if r is not None]
