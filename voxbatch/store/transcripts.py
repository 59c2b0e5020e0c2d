"""Transcripts and their timed segments: bought once per content hash."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from voxbatch.documents import TimedText
from voxbatch.store.models import (
    Job,
    Segment,
    Transcript,
)


def save_transcript(
    session: Session,
    job: Job,
    *,
    model: str,
    text: str,
    language: str | None,
    audio_seconds: float | None,
    segments: Sequence[TimedText],
    part_of: Sequence[int] = (),
) -> Transcript:
    """`part_of`: each segment's part, for a file transcribed in parts."""
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
                part=part_of[idx] if part_of else 0,
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
