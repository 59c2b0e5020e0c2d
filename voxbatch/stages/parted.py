"""A long file in parts: one decoding, cuts decided as it goes, parts streamed in parallel
sessions under the session limit, and one transcript assembled from them (SPEC "Parts").

Every part is recorded as soon as its start is known, and every segment as it arrives: a run
cut short (a kill, a drop, a drain) keeps the parts that finished, and each unfinished part
resumes after its last recorded segment. The cuts already recorded are kept on a rerun.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import Session

from voxbatch.config import InboxProfile
from voxbatch.media.spool import Spool, spool_path_for
from voxbatch.stages.cutting import CutPlan
from voxbatch.stages.targets import PartTarget
from voxbatch.store import jobs, parts, transcripts
from voxbatch.store.models import Job, Part, PartState

if TYPE_CHECKING:
    from voxbatch.stages.transcribe import TranscriptionStage

log = logging.getLogger(__name__)


@dataclass
class _Span:
    part_id: int
    idx: int
    start: float
    end: float | None
    done: bool

    @classmethod
    def of(cls, part: Part) -> _Span:
        assert part.id is not None
        return cls(part.id, part.idx, part.start_s, part.end_s, part.state == PartState.done)


class PartedRun:
    """Transcribe one job's file in parts; raises when a part fails (the others stop, and
    what they heard is kept for the next run)."""

    def __init__(
        self,
        stage: TranscriptionStage,
        job_id: int,
        path: Path,
        profile: InboxProfile,
        duration: float,
    ) -> None:
        self.stage, self.job_id, self.path, self.profile = stage, job_id, path, profile
        self.plan: CutPlan = stage.plan_for(profile, max(duration, 1.0))
        self.spans: list[_Span] = []
        self._heard: dict[int, float] = {}
        self._group: asyncio.TaskGroup | None = None
        settings = stage.settings
        self.spool = Spool(
            path,
            spool_path_for(settings.home, job_id),
            ffmpeg=stage.ffmpeg,
            silence_db=settings.parts.silence_db,
            silence_seconds=settings.parts.silence_seconds,
            timeout_s=120 + max(duration, 3600),
        )

    async def run(self) -> None:
        self.spans = await self._recorded_or_first()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(self.spool.run())
                group.create_task(self._cut())
                for span in self.spans:
                    if not span.done:
                        group.create_task(self._stream(span))
        except BaseExceptionGroup as failed:
            raise _first(failed) from None
        finally:
            self._group = None
            self.spool.discard()
        await self._assemble()

    async def _recorded_or_first(self) -> list[_Span]:
        plan = self.plan

        def spans(session: Session) -> list[_Span]:
            recorded = parts.parts_for(session, self.job_id)
            if recorded:
                done = sum(p.state == PartState.done for p in recorded)
                detail = f"{len(recorded)} parts recorded, {done} done: the others go on"
                jobs.add_event(session, "parts_resumed", detail, job_id=self.job_id)
                return [_Span.of(p) for p in recorded]
            detail = (
                f"cut at silences into parts of about {plan.length / 60:.1f} min "
                f"(at most {plan.max_part / 60:.1f} min), streamed in parallel sessions"
            )
            jobs.add_event(session, "parts_planned", detail, job_id=self.job_id)
            return [_Span.of(parts.add_part(session, self.job_id, 0, 0.0))]

        return await self.stage.db.write_through_faults(spans)

    async def _cut(self) -> None:
        """Decide each cut once the decoding has gone past it; start each part once its
        start is known; give the last part its end when the decoding ends."""
        spool, plan, db = self.spool, self.plan, self.stage.db
        while (last := self.spans[-1]).end is None:
            if spool.error is not None:
                return  # the decoding's own task reports it
            decoded, ended = spool.decoded_seconds, spool.ended
            cut = plan.next_cut(last.start, spool.silences(), decoded=decoded, ended=ended)
            if cut is None and not ended:
                ideal = last.start + plan.length
                await spool.wait_for_seconds(ideal + plan.lookahead(ideal))
                continue
            end = decoded if cut is None else cut

            def record(
                session: Session, last: _Span = last, end: float = end, final: bool = cut is None
            ) -> _Span | None:
                parts.set_end(session, last.part_id, end)
                if final:
                    return None
                return _Span.of(parts.add_part(session, self.job_id, last.idx + 1, end))

            following = await db.write_through_faults(record)
            last.end = end
            await spool.changed()
            if following is not None:
                self.spans.append(following)
                assert self._group is not None
                self._group.create_task(self._stream(following))

    async def _stream(self, span: _Span) -> None:
        target = PartTarget(
            self.job_id,
            span.part_id,
            f"part {span.idx + 1}",
            self.spool,
            span.start,
            lambda: span.end,
            horizon_s=span.start + self.plan.length - self.plan.reach,
            on_heard=lambda seconds: self._heard_in(span.idx, seconds),
            estimated_s=self.plan.max_part,
            ahead_s=self.stage.settings.parts.ahead_seconds or None,
        )
        await self.stage.transcribe_with_retries(self.job_id, self.path, self.profile, target)
        span.done = True

    def _heard_in(self, idx: int, seconds: float) -> None:
        self._heard[idx] = seconds
        self.stage.reporter.transcribed(self.path, sum(self._heard.values()))

    async def _assemble(self) -> None:
        total = self.spans[-1].end or 0.0
        model = self.stage.settings.mistral.transcription_model

        def assemble(session: Session) -> None:
            job = session.get_one(Job, self.job_id)
            whole = parts.assemble(session, self.job_id)
            if transcripts.transcript_for(session, job) is None:
                transcripts.save_transcript(
                    session,
                    job,
                    model=model,
                    text=whole.text,
                    language=whole.language,
                    audio_seconds=total,
                    segments=whole.segments,
                    part_of=whole.part_of,
                )
            parts.forget_segments(session, self.job_id)
            jobs.mark_transcribed(
                session,
                job,
                language=whole.language,
                audio_seconds=total,
                detail=f"{len(self.spans)} parts assembled: {len(whole.text)} characters, "
                f"{len(whole.segments)} segments",
            )

        await self.stage.db.write_through_faults(assemble)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report for a failed group: the first that is not a cancellation."""
    flat: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            flat.append(exc)

    walk(group)
    for exc in flat:
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return flat[0]
