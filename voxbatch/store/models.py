"""SQLModel tables: what voxbatch remembers about jobs, transcripts, API calls and decisions.

The schema in a real database comes from the recorded migrations in `migrations.py`; a test
checks that a freshly migrated database matches what these classes declare.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stored as naive UTC, always returned timezone-aware (SQLite keeps no zone)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use voxbatch.models.utcnow()")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class DecimalText(sa.types.TypeDecorator[Decimal]):
    """Money as exact decimal text: never a float anywhere between price table and report."""

    impl = sa.String(40)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money must be Decimal, not float")
        return str(Decimal(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class JobState(StrEnum):
    queued = "queued"
    claimed = "claimed"
    converting = "converting"
    streaming = "streaming"
    transcribed = "transcribed"
    summarizing = "summarizing"
    done = "done"
    failed = "failed"
    needs_review = "needs_review"


TERMINAL_STATES = frozenset({JobState.done, JobState.failed, JobState.needs_review})
# Between being let start and finishing: the job holds a lease, and its estimate is spoken for.
ACTIVE_STATES = (
    JobState.claimed,
    JobState.converting,
    JobState.streaming,
    JobState.transcribed,
    JobState.summarizing,
)


class PartState(StrEnum):
    pending = "pending"  # planned, no session yet (or its last one was cut short)
    streaming = "streaming"
    done = "done"


class CallKind(StrEnum):
    stt = "stt"
    chat = "chat"
    tts = "tts"


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


class Job(SQLModel, table=True):
    """One input file's journey. Copies of the same audio are jobs too (`duplicate_of`)."""

    __tablename__ = "job"
    __table_args__ = (
        # At most one job per content hash may pay for a transcription; failed ones step aside.
        sa.Index(
            "ux_job_primary_hash",
            "content_sha256",
            unique=True,
            sqlite_where=sa.text("duplicate_of IS NULL AND state != 'failed'"),
            postgresql_where=sa.text("duplicate_of IS NULL AND state != 'failed'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    content_sha256: str = Field(index=True, max_length=64)
    duplicate_of: int | None = Field(default=None, foreign_key="job.id")
    source_path: str
    source_name: str
    inbox: str | None = Field(default=None, index=True)
    size_bytes: int
    state: str = Field(default=JobState.queued, index=True, max_length=20)
    stage: str | None = Field(default=None, max_length=20)
    attempts: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = _ts()
    not_before: datetime | None = _ts()
    error_class: str | None = None
    error_message: str | None = None
    audio_seconds: float | None = None
    language: str | None = Field(default=None, max_length=16)
    output_dir: str | None = None
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False, index=True)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()
    # The daemon's file lifecycle (m002): where the original came from inside its inbox,
    # where it sits while in progress, and a move that was planned but maybe not made yet
    # (recorded before the move, so a crash between the two is reconciled at startup).
    rel_path: str | None = None
    work_path: str | None = None
    move_from: str | None = None
    move_to: str | None = None
    # (size, mtime_ns, inode) of move_from when the move was planned: tells our file from a
    # new one of the same name.
    move_sig: str | None = None
    final_path: str | None = None
    # Times the job went back to the queue after its in-process retries ran out.
    requeues: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    wait_reason: str | None = None
    # The text received so far while streaming, for `tail --follow`.
    partial_text: str | None = None


class Worker(SQLModel, table=True):
    """A running daemon: what `status` shows about the queue's workers and the provider."""

    __tablename__ = "worker"

    owner: str = Field(primary_key=True)
    started_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    heartbeat_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    state: str = Field(default="starting", max_length=20)
    provider: str = Field(default="ok", max_length=20)
    detail: str = ""


class Transcript(SQLModel, table=True):
    """The text bought for one content hash; shared by every job with that audio."""

    __tablename__ = "transcript"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    content_sha256: str = Field(unique=True, max_length=64)
    model: str
    text: str
    language: str | None = Field(default=None, max_length=16)
    audio_seconds: float | None = None
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )


class Segment(SQLModel, table=True):
    """A timed piece of a transcript. Times are seconds from the start of the whole file,
    so that parts transcribed separately can later be stitched without rewriting them."""

    __tablename__ = "segment"
    __table_args__ = (sa.UniqueConstraint("transcript_id", "idx", name="uq_segment_idx"),)

    id: int | None = Field(default=None, primary_key=True)
    transcript_id: int = Field(foreign_key="transcript.id", index=True)
    idx: int
    part: int = 0
    start: float | None = None
    end: float | None = None
    text: str
    speaker: str | None = None


class Part(SQLModel, table=True):
    """One stretch of a long file, streamed in sessions of its own (SPEC "Parts").

    Recorded when its start is known; its end once the audio past its cut has been decoded.
    A part cut short resumes after its last recorded segment (`PartSegment`)."""

    __tablename__ = "part"
    __table_args__ = (sa.UniqueConstraint("job_id", "idx", name="uq_part_idx"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    idx: int
    start_s: float
    end_s: float | None = None
    state: str = Field(default=PartState.pending, max_length=20)
    sessions: int = 0
    # Its latest session, and where in the file that session started.
    call_id: int | None = Field(default=None, foreign_key="api_call.id")
    session_from_s: float | None = None
    # The latest session's text so far (for `tail`), then the part's whole text once done.
    live_text: str | None = None
    text: str | None = None
    language: str | None = Field(default=None, max_length=16)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )


class PartSegment(SQLModel, table=True):
    """A segment of an unfinished job's part, recorded as it arrives (seconds from the start of
    the whole file); moved into `segment` when the job's transcript is assembled."""

    __tablename__ = "part_segment"

    id: int | None = Field(default=None, primary_key=True)
    part_id: int = Field(foreign_key="part.id", index=True)
    start: float
    end: float
    text: str
    speaker: str | None = None


class ApiCall(SQLModel, table=True):
    """One row per attempt of every paid call, failed attempts included."""

    __tablename__ = "api_call"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int | None = Field(default=None, foreign_key="job.id", index=True)
    kind: str = Field(max_length=8, index=True)
    model: str
    request_id: str | None = None
    started_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False, index=True)
    )
    finished_at: datetime | None = _ts()
    outcome: str = Field(default="started", max_length=40)
    error_detail: str | None = None
    audio_seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    characters: int | None = None
    cost_usd: Decimal | None = Field(default=None, sa_column=sa.Column(DecimalText()))
    price_basis: str | None = None
    estimated: bool = False


class Event(SQLModel, table=True):
    """Every decision voxbatch makes about a job or a path: the history `why` and `show` print."""

    __tablename__ = "event"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int | None = Field(default=None, foreign_key="job.id", index=True)
    path: str | None = Field(default=None, index=True)
    at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    kind: str = Field(max_length=40)
    detail: str = ""


class Summary(SQLModel, table=True):
    """A written summary of one audio's transcript, and its spoken version once bought.

    Keyed by content hash and `recipe` (a hash of the chat model and prompt that produced it):
    every job with the same audio and recipe shares it, and a different prompt is a different
    summary. The speech columns stay empty until text to speech has been bought.
    """

    __tablename__ = "summary"
    __table_args__ = (sa.UniqueConstraint("content_sha256", "recipe", name="uq_summary_recipe"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    content_sha256: str = Field(index=True, max_length=64)
    recipe: str = Field(max_length=64)
    prompt: str
    model: str
    text: str
    language: str | None = Field(default=None, max_length=16)
    parts: int = 1
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    speech_audio: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary()))
    speech_format: str | None = Field(default=None, max_length=8)
    speech_voice: str | None = None
    speech_model: str | None = None
    speech_job_id: int | None = Field(default=None, foreign_key="job.id")


class CostEstimate(SQLModel, table=True):
    """What a job was expected to cost when it was allowed to start (for budgets and reports)."""

    __tablename__ = "cost_estimate"

    job_id: int = Field(foreign_key="job.id", primary_key=True)
    estimated_usd: Decimal = Field(sa_column=sa.Column(DecimalText(), nullable=False))
    audio_seconds: float | None = None
    basis: str = ""
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )


class OutputFile(SQLModel, table=True):
    """A result file a job wrote (transcript formats, summary, speech): what `show` and
    `process` report, and whose outputs a later job of the same audio may publish over."""

    __tablename__ = "output_file"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    # Absolute, as written (symlinks not resolved).
    path: str = Field(index=True)
    written_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
