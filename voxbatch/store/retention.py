"""Which finished jobs are old enough to forget, and forgetting them (`voxbatch prune`).

A job goes together with every other job of the same audio (copies share one transcript and
its summaries), and only when all of them are `done` and finished before the cutoff: a queued,
running, failed or needs-review job keeps its whole group. Failed originals are never pruned:
they are audio nobody has transcribed yet.

The `api_call` rows stay, with their job link cleared, so that `voxbatch costs` keeps every
cent ever spent; by inbox, the calls of pruned jobs then count as "(none)".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, delete, func, select, update

from voxbatch.store.models import (
    ApiCall,
    CostEstimate,
    Event,
    Job,
    JobState,
    OutputFile,
    Segment,
    Summary,
    Transcript,
)

DONE_EVENT = JobState.done.value  # set_state records "wrote a.txt, a.srt" under it
_WROTE = "wrote "


@dataclass
class PrunedJob:
    """What a pruned job leaves on disk: its filed original and the outputs it wrote."""

    id: int
    final_path: str | None
    output_dir: str | None
    outputs: list[str] = field(default_factory=list)
    # The result files the job recorded writing (absolute paths; since migration m004).
    output_files: list[str] = field(default_factory=list)


def prunable_hashes(session: Session, cutoff: datetime, limit: int | None = None) -> list[str]:
    """Audio whose every job is done and finished before `cutoff`, oldest first."""
    finished_old = sa.and_(col(Job.state) == JobState.done, col(Job.finished_at) < cutoff)
    query = (
        select(Job.content_sha256)
        .group_by(col(Job.content_sha256))
        .having(func.sum(sa.case((finished_old, 0), else_=1)) == 0)
        .order_by(func.max(col(Job.finished_at)))
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query).all())


def jobs_of(session: Session, hashes: list[str]) -> list[PrunedJob]:
    """The jobs of this audio, with the output names their `done` events recorded."""
    jobs = session.exec(
        select(Job).where(col(Job.content_sha256).in_(hashes)).order_by(col(Job.id))
    ).all()
    found = {
        job.id: PrunedJob(job.id, job.final_path, job.output_dir)
        for job in jobs
        if job.id is not None
    }
    events = session.exec(
        select(Event.job_id, Event.detail).where(
            col(Event.job_id).in_(list(found)), Event.kind == DONE_EVENT
        )
    ).all()
    for job_id, detail in events:
        if job_id in found and detail.startswith(_WROTE):
            found[job_id].outputs.append(detail[len(_WROTE) :])
    written = session.exec(
        select(OutputFile.job_id, OutputFile.path).where(col(OutputFile.job_id).in_(list(found)))
    ).all()
    for job_id, path in written:
        found[job_id].output_files.append(path)
    return list(found.values())


def forget(session: Session, hashes: list[str], cutoff: datetime) -> list[PrunedJob]:
    """Delete the jobs of this audio that are still prunable (checked again under the write
    lock), with their transcripts, segments, summaries, estimates and events. Their calls
    stay in the ledger. Returns the jobs deleted, for their files."""
    still = set(prunable_hashes(session, cutoff)) & set(hashes)
    if not still:
        return []
    pruned = jobs_of(session, sorted(still))
    ids = [job.id for job in pruned]
    transcript_ids = select(Transcript.id).where(
        sa.or_(col(Transcript.content_sha256).in_(still), col(Transcript.job_id).in_(ids))
    )
    session.exec(delete(Segment).where(col(Segment.transcript_id).in_(transcript_ids)))
    session.exec(
        delete(Transcript).where(
            sa.or_(col(Transcript.content_sha256).in_(still), col(Transcript.job_id).in_(ids))
        )
    )
    session.exec(
        delete(Summary).where(
            sa.or_(
                col(Summary.content_sha256).in_(still),
                col(Summary.job_id).in_(ids),
                col(Summary.speech_job_id).in_(ids),
            )
        )
    )
    session.exec(delete(CostEstimate).where(col(CostEstimate.job_id).in_(ids)))
    session.exec(delete(Event).where(col(Event.job_id).in_(ids)))
    session.exec(delete(OutputFile).where(col(OutputFile.job_id).in_(ids)))
    session.exec(update(ApiCall).where(col(ApiCall.job_id).in_(ids)).values(job_id=None))
    session.exec(delete(Job).where(col(Job.id).in_(ids)))
    return pruned


def forget_path_events(session: Session, cutoff: datetime) -> int:
    """Notes about files that never became jobs (ignored, unsupported), older than `cutoff`."""
    result = session.exec(delete(Event).where(col(Event.job_id).is_(None), col(Event.at) < cutoff))
    return int(result.rowcount or 0)


def count_path_events(session: Session, cutoff: datetime) -> int:
    query = select(func.count()).select_from(Event)
    return session.exec(query.where(col(Event.job_id).is_(None), col(Event.at) < cutoff)).one()
