"""A transcript as a document: timed pieces of text, and what outputs render."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class TimedText:
    start: float | None
    end: float | None
    text: str
    speaker: str | None = None


@dataclass(frozen=True)
class TranscriptDocument:
    """Everything an output format may need, independent of the database."""

    job_id: int
    source_name: str
    content_sha256: str
    text: str
    language: str | None
    model: str
    duration_seconds: float | None
    cost_usd: Decimal
    segments: Sequence[TimedText] = field(default_factory=tuple)
