"""A small transcript document the output tests share."""

from __future__ import annotations

from decimal import Decimal

from voxbatch.documents import TimedText, TranscriptDocument


def doc(job_id: int = 1, name: str = "talk.mp3") -> TranscriptDocument:
    return TranscriptDocument(
        job_id=job_id,
        source_name=name,
        content_sha256="ab" * 32,
        text=" hello world again",
        language="en",
        model="voxtral-mini-transcribe-realtime-2602",
        duration_seconds=4.0,
        cost_usd=Decimal("0.0004"),
        segments=(
            TimedText(0.5, 1.25, " hello world"),
            TimedText(None, None, " again"),
            TimedText(2.0, 3.5, ' <b>&</b> "quoted"', speaker="1"),
        ),
    )
