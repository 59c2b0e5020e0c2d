"""Reads and writes of jobs, transcripts, calls and events: the only SQL the pipeline needs.

Every function takes an open Session; the caller decides the transaction (`db.write()`
starts it with BEGIN IMMEDIATE), so related changes commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, col, select

from voxbatch.errors import (
    ErrorCode,
    JobNotFoundError,
    error_code,
    one_line,
)
from voxbatch.store.models import (
    TERMINAL_STATES,
    Event,
    Job,
    JobState,
    Transcript,
    utcnow,
)


def add_event(
    session: Session,
    kind: str,
    detail: str = "",
    *,
    job_id: int | None = None,
    path: str | None = None,
) -> None:
    session.add(Event(job_id=job_id, path=path, kind=kind, detail=detail))


def create_job(
    session: Session,
    *,
    content_sha256: str,
    source_path: str,
    size_bytes: int,
    inbox: str | None,
    output_dir: str | None,
    primary: Job | None,
) -> Job:
    """A new job; a copy of audio that `primary` bought (or is buying) is linked to it."""
    job = Job(
        content_sha256=content_sha256,
        source_path=source_path,
        source_name=source_path.rsplit("/", 1)[-1],
        size_bytes=size_bytes,
        inbox=inbox,
        output_dir=output_dir,
        duplicate_of=primary.id if primary is not None else None,
        state=JobState.queued,
    )
    session.add(job)
    session.flush()
    assert job.id is not None
    add_event(
        session,
        "seen",
        f"{size_bytes} bytes, sha256 {content_sha256[:12]}",
        job_id=job.id,
        path=source_path,
    )
    if primary is not None:
        add_event(
            session,
            "duplicate",
            f"same audio as job {primary.id}: no new transcription",
            job_id=job.id,
        )
    return job


def find_primary(session: Session, content_sha256: str) -> Job | None:
    """The job that bought the transcript for this audio, else the one buying it now.

    A transcript, once paid for, is reused whatever became of the job that bought it
    (its outputs may have failed to write): the same audio is never bought twice.
    """
    transcript = session.exec(
        select(Transcript).where(Transcript.content_sha256 == content_sha256)
    ).first()
    if transcript is not None:
        return session.get(Job, transcript.job_id)
    return session.exec(
        select(Job).where(
            Job.content_sha256 == content_sha256,
            col(Job.duplicate_of).is_(None),
            Job.state != JobState.failed,
        )
    ).first()


def set_state(
    session: Session, job: Job, state: JobState, *, stage: str | None = None, detail: str = ""
) -> None:
    job.state = state
    if stage is not None:
        job.stage = stage
    job.updated_at = utcnow()
    if state in (JobState.converting, JobState.streaming) and job.started_at is None:
        job.started_at = job.updated_at
    if state in TERMINAL_STATES:
        job.finished_at = job.updated_at
    session.add(job)
    add_event(session, state.value, detail, job_id=job.id)


def fail_job(session: Session, job: Job, error: BaseException, *, hint: str = "") -> None:
    fail(session, job, error_code(error), one_line(error) + (f" — {hint}" if hint else ""))


def fail(
    session: Session, job: Job, code: ErrorCode, message: str, *, state: JobState = JobState.failed
) -> None:
    """The job ends (failed, or needs_review) for `code`; `message` says why, to users."""
    job.error_class, job.error_message = code, message
    if state == JobState.needs_review:
        job.lease_owner = job.lease_expires_at = None
    set_state(session, job, state, detail=message)


def release(job: Job) -> None:
    """No worker holds the job any more."""
    job.lease_owner = job.lease_expires_at = None


def reopen(job: Job) -> None:
    """A failed job taken up again (`voxbatch retry`): its end and its rounds are forgotten."""
    job.final_path = None
    job.requeues = 0
    job.error_class = job.error_message = None
    job.finished_at = None


def events_for(session: Session, job_id: int) -> list[Event]:
    return list(
        session.exec(select(Event).where(Event.job_id == job_id).order_by(col(Event.id))).all()
    )


_MAX_ID = 2**31 - 1  # SQL INTEGER (job ids): a longer number can only be a hash prefix


def resolve_job(session: Session, ref: str) -> Job:
    """A numeric id, or a unique prefix (≥ 4 characters) of the content hash."""
    ref = ref.strip()
    if ref.isdigit() and int(ref) <= _MAX_ID:
        job = session.get(Job, int(ref))
        if job is not None:
            return job
        if len(ref) < 4:  # too short to be a hash prefix
            raise JobNotFoundError(f"no job with id {ref}", hint="`voxbatch jobs` lists them")
    if len(ref) < 4 or any(ch not in "0123456789abcdef" for ch in ref.lower()):
        raise JobNotFoundError(
            f"{ref!r} is neither a job id nor a content hash prefix (4+ hex digits)"
        )
    rows = session.exec(
        select(Job)
        .where(col(Job.content_sha256).startswith(ref.lower()), col(Job.duplicate_of).is_(None))
        .order_by(col(Job.id))
    ).all()
    if not rows:
        kind = "id or content hash prefix" if ref.isdigit() else "content hash prefix"
        raise JobNotFoundError(f"no job with {kind} {ref}", hint="`voxbatch jobs` lists them")
    if len({r.content_sha256 for r in rows}) > 1:
        ids = ", ".join(str(r.id) for r in rows[:10])
        raise JobNotFoundError(f"hash prefix {ref} is ambiguous (jobs {ids}): give more digits")
    return rows[-1]


def list_jobs(
    session: Session,
    *,
    state: str | None = None,
    since: datetime | None = None,
    limit: int | None = 50,
) -> list[Job]:
    query = select(Job).order_by(col(Job.id).desc())
    if state:
        query = query.where(Job.state == state)
    if since:
        query = query.where(col(Job.created_at) >= since)
    if limit:
        query = query.limit(limit)
    return list(session.exec(query).all())


def link_to_primary(session: Session, job: Job, primary: Job) -> None:
    """A copy of audio already bought: its transcript is shared, nothing is paid."""
    job.language = primary.language
    job.audio_seconds = primary.audio_seconds
    set_state(
        session,
        job,
        JobState.transcribed,
        stage="publish",
        detail=f"linked to the transcript of job {primary.id}",
    )


def mark_done(session: Session, job: Job, written: Sequence[Path]) -> None:
    job.lease_owner = None
    job.lease_expires_at = None
    job.error_class = job.error_message = job.wait_reason = None
    job.partial_text = None
    set_state(
        session,
        job,
        JobState.done,
        stage="done",
        detail="wrote " + ", ".join(p.name for p in written) if written else "no outputs",
    )
