"""The parts of a long file: their spans, sessions and segments (SPEC "Parts").

A part is recorded when its start is known and gets its end once the audio past its cut has
been decoded. Its segments are recorded as they arrive, so a session cut short (a kill, a
drop, a drain) is resumed after the last one: only that stretch is bought again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlmodel import Session, col, delete, select

from voxbatch.documents import TimedText
from voxbatch.store.models import Job, Part, PartSegment, PartState, utcnow


@dataclass(frozen=True)
class Resume:
    """Where a part's next session starts, and the text its earlier sessions heard before it."""

    from_s: float
    heard_text: str


@dataclass(frozen=True)
class Assembled:
    text: str
    language: str | None
    segments: tuple[TimedText, ...]
    part_of: tuple[int, ...]  # each segment's part index


def parts_for(session: Session, job_id: int) -> list[Part]:
    return list(session.exec(select(Part).where(Part.job_id == job_id).order_by(col(Part.idx))))


def add_part(session: Session, job_id: int, idx: int, start_s: float) -> Part:
    part = Part(job_id=job_id, idx=idx, start_s=start_s)
    session.add(part)
    session.flush()
    return part


def set_end(session: Session, part_id: int, end_s: float) -> None:
    part = session.get_one(Part, part_id)
    part.end_s, part.updated_at = end_s, utcnow()
    session.add(part)


def resume_point(session: Session, part: Part) -> Resume:
    """After the part's last recorded segment (its start when none was heard)."""
    rows = session.exec(
        select(PartSegment)
        .where(PartSegment.part_id == part.id)
        .order_by(col(PartSegment.start), col(PartSegment.id))
    ).all()
    if not rows:
        return Resume(part.start_s, "")
    return Resume(max(part.start_s, max(r.end for r in rows)), joined(r.text for r in rows))


def begin_session(session: Session, part_id: int, call_id: int, from_s: float) -> Part:
    part = session.get_one(Part, part_id)
    part.state, part.call_id, part.session_from_s = PartState.streaming, call_id, from_s
    part.sessions += 1
    part.live_text, part.updated_at = None, utcnow()
    session.add(part)
    return part


def record_heard(
    session: Session, part_id: int, segments: Sequence[TimedText], live_text: str
) -> None:
    """What a running session heard since the last call (one commit a second, not one each)."""
    for seg in segments:
        if seg.start is None or seg.end is None:
            continue  # a segment without times cannot tell where to resume
        session.add(
            PartSegment(
                part_id=part_id, start=seg.start, end=seg.end, text=seg.text, speaker=seg.speaker
            )
        )
    part = session.get_one(Part, part_id)
    part.live_text, part.updated_at = live_text, utcnow()
    session.add(part)


def cut_short(session: Session, part_id: int) -> None:
    """Its session ended without a transcription: the next one resumes after its last segment."""
    part = session.get_one(Part, part_id)
    if part.state != PartState.done:
        part.state, part.live_text, part.updated_at = PartState.pending, None, utcnow()
        session.add(part)


def finish(
    session: Session,
    part_id: int,
    *,
    from_s: float,
    text: str,
    language: str | None,
    segments: Sequence[TimedText],
) -> None:
    """The session that started at `from_s` finished: its segments replace those it recorded
    as they came; `text` is the part's whole text."""
    part = session.get_one(Part, part_id)
    if part.state == PartState.done:
        return  # recorded already (a journal replay of a result committed meanwhile)
    session.exec(
        delete(PartSegment).where(
            col(PartSegment.part_id) == part_id, col(PartSegment.start) >= from_s - 1e-6
        )
    )
    record_heard(session, part_id, segments, "")
    part.state, part.text, part.language = PartState.done, text, language
    part.live_text, part.updated_at = None, utcnow()
    session.add(part)


def assemble(session: Session, job_id: int) -> Assembled:
    """The whole file's transcript from its parts, in order (every part must be done)."""
    parts = parts_for(session, job_id)
    unfinished = [p.idx for p in parts if p.state != PartState.done]
    if unfinished or not parts:
        raise ValueError(f"job {job_id}: parts {unfinished} are not done")
    segments: list[TimedText] = []
    part_of: list[int] = []
    for part in parts:
        for row in _segments_of(session, part):
            segments.append(TimedText(row.start, row.end, row.text, row.speaker))
            part_of.append(part.idx)
    language = next((p.language for p in parts if p.language), None)
    text = joined(p.text or "" for p in parts)
    return Assembled(text, language, tuple(segments), tuple(part_of))


def forget_segments(session: Session, job_id: int) -> None:
    """Once the transcript holds them; the part rows stay (spans, sessions, for `show`)."""
    ids = select(Part.id).where(Part.job_id == job_id)
    session.exec(delete(PartSegment).where(col(PartSegment.part_id).in_(ids)))


@dataclass(frozen=True)
class Heard:
    text: str
    parts: int
    done: int


def heard_so_far(session: Session, job_id: int) -> Heard | None:
    """For `tail`: the text of the parts done in order from the first, then what the first
    unfinished part has heard, so the text only grows; None: the job has no parts."""
    rows = parts_for(session, job_id)
    if not rows:
        return None
    pieces: list[str] = []
    for part in rows:
        if part.state != PartState.done:
            # Earlier sessions' segments, then all the running session has said.
            since = math.inf
            if part.state == PartState.streaming and part.session_from_s is not None:
                since = part.session_from_s
            earlier = [r.text for r in _segments_of(session, part) if r.start < since]
            pieces += [*earlier, part.live_text or ""]
            break
        pieces.append(part.text or "")
    done = sum(p.state == PartState.done for p in rows)
    return Heard(joined(pieces), len(rows), done)


def remaining_seconds(session: Session, job: Job) -> float | None:
    """Audio still to buy for the job's unfinished parts (None: the job has no parts)."""
    assert job.id is not None
    parts = parts_for(session, job.id)
    if not parts:
        return None
    left = 0.0
    for i, part in enumerate(parts):
        if part.state == PartState.done:
            continue
        end = part.end_s if part.end_s is not None else _last_end(job, parts, i)
        left += max(0.0, end - resume_point(session, part).from_s)
    last = parts[-1]
    if last.end_s is not None and job.audio_seconds is not None:
        left += max(0.0, job.audio_seconds - last.end_s)  # not planned yet
    return left


def session_span(session: Session, call_id: int, job: Job) -> float | None:
    """The most audio the part session `call_id` could have sent (None: not a part's)."""
    part = session.exec(select(Part).where(Part.call_id == call_id)).first()
    if part is None or part.session_from_s is None:
        return None
    end = part.end_s if part.end_s is not None else (job.audio_seconds or part.session_from_s)
    return max(0.0, end - part.session_from_s)


def _last_end(job: Job, parts: Sequence[Part], i: int) -> float:
    return max(job.audio_seconds or 0.0, parts[i].start_s)


def _segments_of(session: Session, part: Part) -> Sequence[PartSegment]:
    return session.exec(
        select(PartSegment)
        .where(PartSegment.part_id == part.id)
        .order_by(col(PartSegment.start), col(PartSegment.id))
    ).all()


def joined(pieces: Iterable[str]) -> str:
    """Texts in order, a space between two only where neither brings its own (the service's
    deltas and segments start with one): parts read as one session's text."""
    text = ""
    for piece in pieces:
        if not piece.strip():
            continue
        if text and not text[-1].isspace() and not piece[0].isspace():
            text += " "
        text += piece
    return text
