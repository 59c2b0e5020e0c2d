"""Reads and writes of summaries and pre-job estimates (the tables of migration m003).

Like `store`, every function takes an open Session and leaves the transaction to the caller.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from voxbatch.store.models import Summary


def summary_for(session: Session, content_sha256: str, recipe: str) -> Summary | None:
    return session.exec(
        select(Summary).where(Summary.content_sha256 == content_sha256, Summary.recipe == recipe)
    ).first()


def summaries_for(session: Session, content_sha256: str) -> list[Summary]:
    """Every summary of this audio, oldest first (one per prompt and model)."""
    return list(
        session.exec(
            select(Summary)
            .where(Summary.content_sha256 == content_sha256)
            .order_by(col(Summary.id))
        ).all()
    )


def save_summary(
    session: Session,
    *,
    job_id: int,
    content_sha256: str,
    recipe: str,
    prompt: str,
    model: str,
    text: str,
    language: str | None,
    parts: int,
) -> Summary:
    """The first summary for (audio, recipe) wins; a later one was paid for but is not kept."""
    existing = summary_for(session, content_sha256, recipe)
    if existing is not None:
        return existing
    summary = Summary(
        job_id=job_id,
        content_sha256=content_sha256,
        recipe=recipe,
        prompt=prompt,
        model=model,
        text=text,
        language=language,
        parts=parts,
    )
    session.add(summary)
    session.flush()
    return summary


def save_speech(
    session: Session,
    summary_id: int,
    *,
    job_id: int,
    audio: bytes,
    fmt: str,
    voice: str,
    model: str,
) -> Summary:
    summary = session.get_one(Summary, summary_id)
    summary.speech_audio = audio
    summary.speech_format = fmt
    summary.speech_voice = voice
    summary.speech_model = model
    summary.speech_job_id = job_id
    session.add(summary)
    return summary
