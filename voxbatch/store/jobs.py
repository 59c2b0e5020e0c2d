"""Reads and writes of jobs, transcripts, calls and events: the only SQL the pipeline needs.

Every function takes an open Session; the caller decides the transaction (`db.write()`
starts it with BEGIN IMMEDIATE), so related changes commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
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
from voxbatch.store.outputs import record_outputs


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
    rel_path: str | None = None,
) -> Job:
    """A new job; a copy of audio that `primary` bought (or is buying) is linked to it.

    `rel_path` is where the original came from inside its inbox (daemon jobs only).
    """
    job = Job(
        content_sha256=content_sha256,
        source_path=source_path,
        source_name=source_path.rsplit("/", 1)[-1],
        size_bytes=size_bytes,
        inbox=inbox,
        output_dir=output_dir,
        rel_path=rel_path,
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


def mark_failed(session: Session, job: Job, error: BaseException, *, hint: str = "") -> None:
    """A running job ends failed: its worker lets go of it, nothing is waited on any more."""
    release(job)
    job.wait_reason = job.partial_text = None
    fail_job(session, job, error, hint=hint)


def release(job: Job) -> None:
    """No worker holds the job any more."""
    job.lease_owner = job.lease_expires_at = None


def lease(session: Session, job: Job, owner: str, seconds: float) -> None:
    """`owner` holds the job for `seconds` (renewed by its heartbeat)."""
    job.lease_owner = owner
    job.lease_expires_at = utcnow() + timedelta(seconds=seconds)
    session.add(job)


def reopen(session: Session, job: Job) -> None:
    """A failed job taken up again (`voxbatch retry`): its end and its rounds are forgotten,
    and it becomes a copy when another job has bought (or is buying) its audio meanwhile."""
    job.final_path = None
    job.requeues = 0
    job.error_class = job.error_message = None
    job.finished_at = None
    primary = find_primary(session, job.content_sha256)
    if primary is not None and primary.id != job.id:
        job.duplicate_of = primary.id
    session.add(job)


def defer(session: Session, job: Job, delay_s: float) -> None:
    """A queued job is not looked at again for `delay_s`."""
    job.not_before = utcnow() + timedelta(seconds=delay_s)
    session.add(job)


def hold(session: Session, job: Job, reason: str, *, stage: str | None = None) -> bool:
    """A queued job waits for `reason` (`status` and `why` show it); its history says so once
    per distinct reason. `stage` names what holds it (the budget). True if the reason is new."""
    new = job.wait_reason != reason
    if new:
        add_event(session, "waiting", reason, job_id=job.id)
    if stage is not None:
        job.stage = stage
    job.wait_reason = reason
    session.add(job)
    return new


def end_hold(session: Session, job: Job, stage: str) -> None:
    """What `stage` held the job for is over (the job may still wait for something else)."""
    if job.stage == stage:
        job.stage = None
        session.add(job)


def copy_of(session: Session, job: Job, primary: Job) -> None:
    """The job is a copy of the audio `primary` bought or is buying."""
    job.duplicate_of = primary.id
    session.add(job)


def promote(session: Session, job: Job) -> None:
    """A copy whose primary will not buy the transcript: this job buys it."""
    if job.duplicate_of is not None:
        add_event(
            session,
            "promoted",
            f"job {job.duplicate_of} did not buy the transcript; this copy will",
            job_id=job.id,
        )
    job.duplicate_of = None
    session.add(job)


def record_claimed_file(
    session: Session, job: Job, *, sha256: str, size_bytes: int, audio_seconds: float | None
) -> None:
    """What the intake holds in work/ now (written to while hashed: a new hash, maybe a copy)."""
    if sha256 != job.content_sha256:
        primary = find_primary(session, sha256)
        job.duplicate_of = primary.id if primary is not None else None
        session.flush()
    job.content_sha256, job.size_bytes = sha256, size_bytes
    job.audio_seconds = audio_seconds
    session.add(job)


def start_streaming(session: Session, job: Job, audio_seconds: float | None, detail: str) -> None:
    """Probed (`audio_seconds` is the file's declared length): its audio goes out now."""
    job.audio_seconds = audio_seconds
    set_state(session, job, JobState.streaming, stage="stt", detail=detail)


def count_attempt(session: Session, job: Job) -> int:
    """One more transcription attempt; its number."""
    job.attempts += 1
    add_event(session, "stream_started", f"attempt {job.attempts}", job_id=job.id)
    return job.attempts


def save_partial_text(session: Session, job_id: int, text: str) -> None:
    """The text received so far while streaming, for `tail --follow`."""
    session.get_one(Job, job_id).partial_text = text


def mark_transcribed(
    session: Session, job: Job, *, language: str | None, audio_seconds: float, detail: str
) -> None:
    """The transcript is saved: the job goes on to publish its outputs."""
    job.partial_text = None
    job.language = language
    job.audio_seconds = audio_seconds
    set_state(session, job, JobState.transcribed, stage="publish", detail=detail)


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
    job.duplicate_of = primary.id
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
    """The job's end, with the files it wrote (`show` and `process` list them)."""
    assert job.id is not None
    record_outputs(session, job.id, written)
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


def hold_past_estimate(
    session: Session,
    job: Job,
    reason: str,
    *,
    stage: str,
    audio_seconds: float,
    not_before: datetime,
) -> None:
    """A stream stopped because its audio ran past the estimate and would cross a spend cap:
    back to the queue, waiting at `stage` with why, its length now at least `audio_seconds`."""
    job.lease_owner = job.lease_expires_at = None
    job.partial_text = None
    job.audio_seconds = audio_seconds
    job.not_before = not_before
    job.wait_reason = reason
    set_state(session, job, JobState.queued, stage=stage, detail=reason)
    add_event(session, "waiting", reason, job_id=job.id)


def requeue_changed(
    session: Session,
    job: Job,
    reason: str,
    *,
    sha256: str,
    size_bytes: int,
    audio_seconds: float | None,
    not_before: datetime,
) -> None:
    """The claimed original changed after its claim: the job is its new content now, queued
    again (after `not_before`, once the file may be stable), a copy if that audio is known."""
    primary = find_primary(session, sha256)
    job.duplicate_of = primary.id if primary is not None and primary.id != job.id else None
    job.content_sha256, job.size_bytes = sha256, size_bytes
    job.audio_seconds = audio_seconds
    job.lease_owner = job.lease_expires_at = None
    job.partial_text = None
    job.language = None
    job.not_before = not_before
    job.wait_reason = reason
    job.stage = None
    add_event(session, "changed", reason, job_id=job.id)
    set_state(session, job, JobState.queued, detail="again, for the whole file")


def recently_done(session: Session, since: datetime) -> list[tuple[int, str, int, str]]:
    """Done jobs filed since `since` whose original is in done/: id, path, size, hash."""
    found = session.exec(
        select(Job).where(
            Job.state == JobState.done,
            col(Job.finished_at) >= since,
            col(Job.final_path).is_not(None),
            col(Job.work_path).is_(None),
        )
    ).all()
    return [
        (job.id, job.final_path, job.size_bytes, job.content_sha256)
        for job in found
        if job.id is not None and job.final_path is not None
    ]


def reopen_grown(
    session: Session,
    job: Job,
    reason: str,
    *,
    sha256: str,
    size_bytes: int,
    audio_seconds: float | None,
) -> None:
    """A done job whose original grew in done/: queued again for the whole file (its move
    back to work/ is planned by the caller in the same transaction)."""
    requeue_changed(
        session,
        job,
        reason,
        sha256=sha256,
        size_bytes=size_bytes,
        audio_seconds=audio_seconds,
        not_before=utcnow(),
    )
    job.final_path = None
    job.finished_at = None
    session.add(job)
