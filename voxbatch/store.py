"""Reads and writes of jobs, transcripts, calls and events: the only SQL the pipeline needs.

Every function takes an open Session; the caller decides the transaction (`db.write()`
starts it with BEGIN IMMEDIATE), so related changes commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, col, select

from voxbatch.errors import JobNotFoundError, one_line
from voxbatch.models import (
    TERMINAL_STATES,
    ApiCall,
    Event,
    Job,
    JobState,
    Segment,
    Transcript,
    utcnow,
)
from voxbatch.outputs import TimedText


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
    job.error_class = type(error).__name__
    job.error_message = one_line(error) + (f" — {hint}" if hint else "")
    set_state(session, job, JobState.failed, detail=job.error_message)


def start_call(session: Session, *, job_id: int | None, kind: str, model: str) -> ApiCall:
    """Committed before any money can be spent, so a crash never hides a paid attempt."""
    call = ApiCall(job_id=job_id, kind=kind, model=model, outcome="started")
    session.add(call)
    session.flush()
    return call


def finish_call(
    session: Session,
    call_id: int,
    *,
    outcome: str,
    cost_usd: Decimal,
    price_basis: str,
    estimated: bool,
    audio_seconds: float | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    characters: int | None = None,
    request_id: str | None = None,
    error_detail: str | None = None,
) -> ApiCall:
    call = session.get_one(ApiCall, call_id)
    call.outcome = outcome
    call.finished_at = utcnow()
    call.cost_usd = cost_usd
    call.price_basis = price_basis
    call.estimated = estimated
    call.audio_seconds = audio_seconds
    call.input_tokens = input_tokens
    call.output_tokens = output_tokens
    call.characters = characters
    call.request_id = request_id or call.request_id
    call.error_detail = error_detail
    session.add(call)
    return call


def save_transcript(
    session: Session,
    job: Job,
    *,
    model: str,
    text: str,
    language: str | None,
    audio_seconds: float | None,
    segments: Sequence[TimedText],
) -> Transcript:
    transcript = Transcript(
        job_id=job.id,  # type: ignore[arg-type]
        content_sha256=job.content_sha256,
        model=model,
        text=text,
        language=language,
        audio_seconds=audio_seconds,
    )
    session.add(transcript)
    session.flush()
    for idx, seg in enumerate(segments):
        session.add(
            Segment(
                transcript_id=transcript.id,  # type: ignore[arg-type]
                idx=idx,
                start=seg.start,
                end=seg.end,
                text=seg.text,
                speaker=seg.speaker,
            )
        )
    return transcript


def transcript_for(session: Session, job: Job) -> Transcript | None:
    return session.exec(
        select(Transcript).where(Transcript.content_sha256 == job.content_sha256)
    ).first()


def segments_for(session: Session, transcript_id: int) -> list[TimedText]:
    rows = session.exec(
        select(Segment).where(Segment.transcript_id == transcript_id).order_by(col(Segment.idx))
    ).all()
    return [TimedText(s.start, s.end, s.text, s.speaker) for s in rows]


def calls_for(session: Session, job_id: int) -> list[ApiCall]:
    return list(
        session.exec(
            select(ApiCall).where(ApiCall.job_id == job_id).order_by(col(ApiCall.id))
        ).all()
    )


def events_for(session: Session, job_id: int) -> list[Event]:
    return list(
        session.exec(select(Event).where(Event.job_id == job_id).order_by(col(Event.id))).all()
    )


def job_cost(session: Session, job_id: int) -> Decimal:
    return costs_by_job(session, [job_id])[job_id]


def costs_by_job(session: Session, job_ids: Sequence[int]) -> dict[int, Decimal]:
    """What each job's calls cost, in one query (money is exact text: summed here, not in SQL)."""
    totals = {job_id: Decimal(0) for job_id in job_ids}
    rows = session.exec(
        select(col(ApiCall.job_id), col(ApiCall.cost_usd)).where(col(ApiCall.job_id).in_(job_ids))
    ).all()
    for job_id, cost in rows:
        if job_id is not None and cost is not None:
            totals[job_id] += cost
    return totals


def resolve_job(session: Session, ref: str) -> Job:
    """A numeric id, or a unique prefix (≥ 4 characters) of the content hash."""
    ref = ref.strip()
    if ref.isdigit():
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


@dataclass(frozen=True)
class SearchHit:
    job_id: int
    transcript_id: int
    source_name: str
    snippet: str
    rank: float


def search_transcripts(session: Session, match: str, *, limit: int = 20) -> list[SearchHit]:
    """FTS5 over transcripts; `match` must already be a safe MATCH expression."""
    rows = fts_search(session, "transcript", match, limit=limit)
    return [
        SearchHit(job_id, row_id, name, snip, rank) for row_id, job_id, name, snip, rank in rows
    ]


def fts_search(
    session: Session, table: str, match: str, *, limit: int
) -> list[tuple[int, int, str, str, float]]:
    """(row id, job id, file name, snippet, rank) of the rows of `table` (transcript or
    summary) whose text matches, best first, through its FTS5 index `<table>_fts`."""
    if table not in ("transcript", "summary"):
        raise ValueError(f"no full-text index for {table!r}")
    rows = session.connection().execute(
        sa.text(
            f"SELECT t.id, t.job_id, j.source_name, "
            f"snippet({table}_fts, 0, '[', ']', '…', 12) AS snip, bm25({table}_fts) AS rank "
            f"FROM {table}_fts JOIN {table} t ON t.id = {table}_fts.rowid "
            "JOIN job j ON j.id = t.job_id "
            f"WHERE {table}_fts MATCH :q ORDER BY rank LIMIT :limit"
        ),
        {"q": match, "limit": limit},
    )
    return [(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]


def all_calls(session: Session, since: datetime | None = None) -> list[ApiCall]:
    query = select(ApiCall).order_by(col(ApiCall.id))
    if since:
        query = query.where(col(ApiCall.started_at) >= since)
    return list(session.exec(query).all())
