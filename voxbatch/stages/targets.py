"""What one realtime session streams and where what it hears goes: the whole file, or a part.

`TranscriptionStage._attempt` runs a session the same way for both (the ledger row first,
the overrun guard, the journal); a target says where its audio starts in the file, reads it,
records what is heard as it comes (for `tail`, and for a part to resume after a cut), and
turns the session's answer into the file's own times and text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from sqlmodel import Session

from voxbatch.documents import TimedText
from voxbatch.errors import StoreError
from voxbatch.media import audio
from voxbatch.media.spool import Spool
from voxbatch.stages.cutting import on_grid
from voxbatch.store import jobs, parts
from voxbatch.store.db import Database
from voxbatch.store.models import Part
from voxbatch.store.parts import joined

FLUSH_S = 1.0  # what a session heard is written once a second, not once a message


class Target(Protocol):
    @property
    def part_id(self) -> int | None: ...
    @property
    def label(self) -> str:
        """For the history."""
        ...

    @property
    def duration_s(self) -> float | None:
        """Of the stretch (timeouts; None: unknown)."""
        ...

    @property
    def estimated_s(self) -> float | None:
        """For the overrun guard (None: the job's recorded estimate)."""
        ...

    @property
    def ahead_s(self) -> float | None:
        """How far the session may send past what it heard (None: no limit)."""
        ...

    async def begin(self, db: Database, call_id: int) -> float:
        """The session `call_id` starts now: where in the file its audio starts."""
        ...

    def pcm(self, chunk_bytes: int, timeout_s: float) -> AsyncGenerator[bytes, None]: ...

    def heard(self, db: Database) -> _Heard: ...

    def text_of(self, session_text: str) -> str: ...

    def failed(self, session: Session) -> None:
        """Also written when the session fails (with its ledger row)."""
        ...


@dataclass
class _Heard:
    """Deltas and segments as they arrive, written once a second in one commit."""

    db: Database
    save: Callable[[Session, list[TimedText], str], None]
    offset_s: float = 0.0
    on_heard: Callable[[float], None] | None = None
    texts: list[str] = field(default_factory=list)
    segments: list[TimedText] = field(default_factory=list)
    _written: tuple[int, int] = (-1, -1)

    def delta(self, text: str) -> None:
        self.texts.append(text)

    def segment(self, segment: TimedText) -> None:
        self.segments.append(_shifted(segment, self.offset_s))
        if self.on_heard is not None and segment.end is not None:
            self.on_heard(segment.end)

    async def run(self) -> None:
        while True:
            await self.flush()
            await asyncio.sleep(FLUSH_S)

    async def flush(self) -> None:
        texts, segs = len(self.texts), len(self.segments)
        if (texts, segs) == self._written:
            return
        new = self.segments[max(0, self._written[1]) : segs]
        text = "".join(self.texts[:texts])
        with contextlib.suppress(StoreError):  # best effort: the next second tries again
            await self.db.write_async(lambda session: self.save(session, new, text))
            self._written = (texts, segs)


@dataclass
class WholeFile:
    """The whole file in one session, converted by ffmpeg as it is sent."""

    job_id: int
    path: Path
    ffmpeg: str
    duration_s: float | None
    on_heard: Callable[[float], None] | None = None
    part_id: int | None = None
    label: str = "the whole file"
    estimated_s: float | None = None
    ahead_s: float | None = None

    async def begin(self, db: Database, call_id: int) -> float:
        return 0.0

    def pcm(self, chunk_bytes: int, timeout_s: float) -> AsyncGenerator[bytes, None]:
        return audio.stream_pcm(
            self.path, ffmpeg=self.ffmpeg, chunk_bytes=chunk_bytes, timeout_s=timeout_s
        )

    def heard(self, db: Database) -> _Heard:
        def save(session: Session, _new: list[TimedText], text: str) -> None:
            jobs.save_partial_text(session, self.job_id, text)

        return _Heard(db, save, on_heard=self.on_heard)

    def text_of(self, session_text: str) -> str:
        return session_text

    def failed(self, session: Session) -> None:
        pass


@dataclass
class PartTarget:
    """One part of a long file, read from the file's spool; a later session of the part
    resumes after the last segment an earlier one recorded."""

    job_id: int
    part_id: int
    label: str  # "part 3 of 8", for the history
    spool: Spool
    start_s: float
    end_s: Callable[[], float | None]
    horizon_s: float  # read no further while the end is not known
    on_heard: Callable[[float], None] | None = None
    estimated_s: float | None = None
    ahead_s: float | None = None
    _from_s: float = 0.0
    _earlier: str = ""

    @property
    def duration_s(self) -> float | None:
        end = self.end_s()
        return None if end is None else end - self._from_s

    async def begin(self, db: Database, call_id: int) -> float:
        def begin(session: Session) -> parts.Resume:
            part = session.get_one(Part, self.part_id)
            heard = parts.resume_point(session, part)
            resume = replace(heard, from_s=max(self.start_s, on_grid(heard.from_s, down=True)))
            parts.begin_session(session, self.part_id, call_id, resume.from_s)
            if resume.from_s > self.start_s:
                detail = (
                    f"{self.label} resumes at {_clock(resume.from_s)}, after its last "
                    f"recorded segment (it starts at {_clock(self.start_s)})"
                )
                jobs.add_event(session, "part_resumed", detail, job_id=self.job_id)
            else:
                detail = f"{self.label} from {_clock(self.start_s)}"
                jobs.add_event(session, "part_started", detail, job_id=self.job_id)
            return resume

        resume = await db.write_through_faults(begin)
        self._from_s, self._earlier = resume.from_s, resume.heard_text
        return resume.from_s

    def pcm(self, chunk_bytes: int, timeout_s: float) -> AsyncGenerator[bytes, None]:
        return self.spool.chunks(
            self._from_s, self.end_s, horizon_s=self.horizon_s, chunk_bytes=chunk_bytes
        )

    def heard(self, db: Database) -> _Heard:
        def save(session: Session, new: list[TimedText], text: str) -> None:
            parts.record_heard(session, self.part_id, new, text)

        return _Heard(db, save, offset_s=self._from_s, on_heard=self._heard_at)

    def _heard_at(self, session_s: float) -> None:
        if self.on_heard is not None:
            self.on_heard(self._from_s + session_s - self.start_s)

    def text_of(self, session_text: str) -> str:
        return joined([self._earlier, session_text])

    def failed(self, session: Session) -> None:
        parts.cut_short(session, self.part_id)


def shifted(segments: Sequence[TimedText], offset_s: float) -> tuple[TimedText, ...]:
    return tuple(_shifted(s, offset_s) for s in segments)


def _shifted(seg: TimedText, offset_s: float) -> TimedText:
    if offset_s == 0:
        return seg
    return replace(
        seg,
        start=None if seg.start is None else seg.start + offset_s,
        end=None if seg.end is None else seg.end + offset_s,
    )


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
