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


def money_text(amount: Decimal) -> str:
    """The one way money is written in JSON: a string decimal in plain notation, exact, without
    trailing zeros (`"0.00035"`, `"0"`; never `"3.5E-4"` or `"0E-10"`, as `str` can give)."""
    return format(amount.normalize(), "f")
