"""Transcribe one job: probe, then stream through the realtime API with retries.

Every step that matters is written to the database before the next one starts: the `stt` call
row is committed before any audio is sent, and the transcript, the call's cost and the job's
state commit together when `transcription.done` arrives (retried through store faults: a
transcription the server finished is never lost or bought again because the disk was full).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from sqlmodel import Session
from tenacity import (
    RetryCallState,
)

from voxbatch.accounting.paid_calls import Settlement, close_call, open_call, unknown_call_cost
from voxbatch.accounting.prices import session_window_seconds, stt_charge
from voxbatch.config import InboxProfile, Settings
from voxbatch.errors import (
    AuthError,
    ProviderError,
    SessionLimitError,
    SpendCapError,
    StoreError,
    StreamIncompleteError,
    VoxbatchError,
    one_line,
)
from voxbatch.media import audio
from voxbatch.providers.base import Transcriber, TranscriberFactory
from voxbatch.providers.realtime import (
    StreamOptions,
    StreamProgress,
    StreamResult,
)
from voxbatch.retries import provider_retrying
from voxbatch.stages import journal
from voxbatch.stages.changed import claimed_file_change
from voxbatch.stages.cutting import CutPlan, max_part_seconds
from voxbatch.stages.journal import FinishedTranscription
from voxbatch.stages.overrun import OverrunGuard
from voxbatch.stages.parted import PartedRun
from voxbatch.stages.sessions import SessionLimit, SessionSlot
from voxbatch.stages.targets import Target, WholeFile, shifted
from voxbatch.store import jobs, parts
from voxbatch.store.db import Database
from voxbatch.store.models import CallKind, Job, JobState
from voxbatch.store.queue import renew_leases
from voxbatch.store.workers import owner_name

log = logging.getLogger(__name__)


class Progress(Protocol):
    """Who watches the audio go out (the command line's progress bars)."""

    def started(self, path: Path, duration_s: float | None) -> None: ...
    def advanced(self, path: Path, seconds: float) -> None: ...
    def transcribed(self, path: Path, up_to_s: float) -> None: ...


class NoProgress:
    def started(self, path: Path, duration_s: float | None) -> None:
        pass

    def advanced(self, path: Path, seconds: float) -> None:
        pass

    def transcribed(self, path: Path, up_to_s: float) -> None:
        pass


@dataclass
class RunState:
    """What the jobs of one run share: the worker's identity, a refused key, and who is
    waiting on whom (`voxbatch process`)."""

    owner: str = field(default_factory=owner_name)
    finished: dict[int, asyncio.Event] = field(default_factory=dict)
    auth_error: AuthError | None = None


class TranscriptionStage:
    """Probe and stream one job's audio; the caller decides what a failure means."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        ffmpeg: str,
        run: RunState,
        reporter: Progress,
        transcriber: TranscriberFactory,
        connected: Callable[[], Callable[[], None] | None],
    ) -> None:
        self.settings, self.db, self.ffmpeg = settings, db, ffmpeg
        self._run = run
        self.reporter = reporter
        self._transcriber = transcriber
        self._connected = connected
        # Shared by every job of the run (the daemon's dispatch reads it too).
        self.sessions = SessionLimit(lambda: self.settings.daemon.concurrency)

    @property
    def transcriber(self) -> Transcriber:
        return self._transcriber()

    @property
    def on_connected(self) -> Callable[[], None] | None:
        return self._connected()

    async def transcribe(self, job_id: int, path: Path, profile: InboxProfile) -> None:
        """Probe and transcribe with retries, under a renewed lease; raises when it fails.

        The caller decides what a failure means for the job (failed now, or back to the queue).
        """
        heartbeat = asyncio.create_task(self.heartbeat(job_id))
        try:
            await self.raise_if_changed(job_id, path)

            def converting(session: Session) -> float | None:
                job = session.get_one(Job, job_id)
                jobs.set_state(session, job, JobState.converting, stage="probe")
                return job.audio_seconds

            # The daemon's claim measured the file (its content is checked unchanged since):
            # no second probe. `process` has not, and a file whose length is unknown either.
            duration = await self.db.write_through_faults(converting)
            if duration is None:
                info = await audio.probe_length(path, ffmpeg=self.ffmpeg)
                duration, described = info.duration_seconds, _describe(info)
            else:
                described = f"{duration:.1f} s, measured when it was claimed"

            def streaming(session: Session) -> bool:
                job = session.get_one(Job, job_id)
                jobs.start_streaming(session, job, duration, described)
                return bool(parts.parts_for(session, job_id))

            started_in_parts = await self.db.write_through_faults(streaming)
            self.reporter.started(path, duration)
            if started_in_parts or self._worth_parts(profile, duration):
                assert duration is not None or started_in_parts
                await PartedRun(self, job_id, path, profile, duration or 0.0).run()
                return
            target = WholeFile(
                job_id,
                path,
                self.ffmpeg,
                duration,
                on_heard=functools.partial(self.reporter.transcribed, path),
            )
            await self.transcribe_with_retries(job_id, path, profile, target)
        except AuthError as exc:
            self._run.auth_error = exc
            raise
        finally:
            await stop_task(heartbeat)

    def _worth_parts(self, profile: InboxProfile, duration: float | None) -> bool:
        """Cut into parts: a file of known length that more than one part would serve."""
        if not profile.parts or duration is None:
            return False
        return self.plan_for(profile, duration).length < duration

    def plan_for(self, profile: InboxProfile, duration: float) -> CutPlan:
        model = self.settings.mistral.transcription_model
        window = session_window_seconds(self.settings.prices, model, profile.context_bias)
        return CutPlan.for_file(
            duration,
            sessions_free=max(1, self.sessions.limit - self.sessions.held),
            min_part=self.settings.parts.min_seconds,
            max_part=max_part_seconds(self.settings.parts.max_seconds, window),
        )

    async def raise_if_changed(self, job_id: int, path: Path) -> None:
        """FileChangedError when the daemon's claimed original changed since its claim."""
        changed = await claimed_file_change(self.db, job_id, path, ffmpeg=self.ffmpeg)
        if changed is not None:
            raise changed

    async def heartbeat(self, job_id: int) -> None:
        lease = self.settings.daemon.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            # A store fault is the daemon's to report; the next beat tries again.
            with contextlib.suppress(StoreError):
                await self.db.run(renew_leases, self.db, self._run.owner, [job_id], lease,
                                  writes=True)  # fmt: skip

    async def transcribe_with_retries(
        self, job_id: int, path: Path, profile: InboxProfile, target: Target
    ) -> StreamResult:
        daemon = self.settings.daemon

        async def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            detail = (
                f"{target.label + ': ' if target.part_id is not None else ''}"
                f"attempt {state.attempt_number} failed ({exc}); "
                f"retrying in {state.upcoming_sleep:.1f} s"
            )
            await self.db.write_through_faults(
                lambda session: jobs.add_event(session, "retry_scheduled", detail, job_id=job_id)
            )

        retrying = provider_retrying(daemon, before_sleep)
        async for attempt in retrying:
            with attempt:
                if self._run.auth_error is not None:
                    raise self._run.auth_error
                return await self._attempt_in_slot(job_id, path, profile, target)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt_in_slot(
        self, job_id: int, path: Path, profile: InboxProfile, target: Target
    ) -> StreamResult:
        """One attempt under the session limit. A session refused for the provider's limit
        (nothing sent, nothing billed) while others are open is asked for again once the
        limit allows, without spending the attempt: such a 429 never fails a file."""
        while True:
            async with self.sessions.slot() as slot:
                try:
                    return await self._attempt(job_id, path, profile, target, slot=slot)
                except SessionLimitError as exc:
                    if self.sessions.held <= 1:
                        # Refused with no other session open: a rate limit or an outage, not
                        # a cap on open sessions. An ordinary failure, so attempts, rounds
                        # and the breaker apply and `run --once` ends.
                        raise
                    wait = self.sessions.refused(exc.retry_after)
                    log.info("job %s: %s; asking again in %.1f s", job_id, exc, wait)
            await asyncio.sleep(wait)

    async def _attempt(
        self,
        job_id: int,
        path: Path,
        profile: InboxProfile,
        target: Target,
        *,
        slot: SessionSlot | None = None,
    ) -> StreamResult:
        model = self.settings.mistral.transcription_model
        prices = self.settings.prices

        def count_attempt(session: Session) -> None:
            jobs.count_attempt(session, session.get_one(Job, job_id))

        call_id = await open_call(
            self.db, job_id=job_id, kind=CallKind.stt, model=model, also=count_attempt
        )
        from_s = await target.begin(self.db, call_id)
        duration = target.duration_s
        options = StreamOptions(
            model=model,
            language=profile.language,
            context_bias=profile.context_bias,
            diarize=profile.diarize,
            target_streaming_delay_ms=self.settings.mistral.target_streaming_delay_ms,
            pace=self.settings.daemon.pace,
            ahead_s=target.ahead_s,
        )
        heard = target.heard(self.db)
        progress = StreamProgress(
            on_connected=self.on_connected, on_heard=None, on_segment=heard.segment
        )
        guard = await OverrunGuard.start(
            self.db, self.settings, profile, job_id, call_id, estimated_s=target.estimated_s
        )
        flusher = asyncio.create_task(heard.run())
        pcm = self._counted(
            path,
            guard,
            target.pcm(chunk_bytes_for(self.settings.daemon.pace), _conversion_timeout(duration)),
        )
        if slot is not None:
            slot.watch(progress)  # the slot is held until the session is closed
        try:
            result = await self.transcriber.transcribe(
                pcm,
                options,
                progress=progress,
                on_delta=heard.delta,
                deadline_s=_deadline(duration, self.settings.daemon.pace),
            )
        except BaseException as exc:
            await stop_task(flusher)
            await heard.flush()  # what was heard up to the failure: where a part resumes
            error: BaseException = exc
            # What was sent may have been billed: the audio streamed so far, as an estimate
            # (none sent: nothing can have been billed, and nothing is estimated).
            sent = progress.seconds_sent
            unknown = unknown_call_cost(self.settings, CallKind.stt, model, audio_seconds=sent)
            await close_call(
                self.db,
                call_id,
                _outcome(error),
                replace(unknown, estimated=sent > 0, request_id=progress.request_id),
                one_line(error, 500),
                also=functools.partial(_failed, target, job_id, one_line(error)),
                stopping=error,
            )
            if isinstance(exc, VoxbatchError) and not isinstance(exc, AuthError):
                await self.raise_if_changed(job_id, path)  # a file that grew looks damaged
            raise
        await stop_task(flusher)
        # Read while it changed, the transcript is of no file that exists: paid, not kept.
        changed = await claimed_file_change(self.db, job_id, path, ffmpeg=self.ffmpeg)
        charge = stt_charge(prices, model, result.billed_audio_seconds)
        entry = FinishedTranscription(
            call_id=call_id,
            job_id=job_id,
            model=result.model or model,
            text=target.text_of(result.text),
            language=result.language,
            audio_seconds=audio.pcm_seconds(result.bytes_sent),
            segments=shifted(result.segments, from_s),
            part_id=target.part_id,
            from_s=from_s,
            settlement=Settlement(
                charge.cost_usd,
                charge.price_basis,
                estimated=not result.usage_reported,
                audio_seconds=result.billed_audio_seconds,
                request_id=result.request_id,
            ),
            detail=f"{len(result.text)} characters, {len(result.segments)} segments, "
            f"{result.billed_audio_seconds} s billed",
        )
        # The server has answered and billed: the result waits here for as long as the store
        # refuses it, and in the journal should voxbatch die meanwhile; it is never bought
        # again because the disk was full.
        if changed is not None:
            await close_call(self.db, call_id, "ok", entry.settlement, None)
            raise changed
        home = self.settings.home
        try:
            journalled: Path | None = await asyncio.to_thread(journal.write_entry, home, entry)
        except OSError as exc:  # the same full disk, say: memory alone keeps it now
            log.warning("job %s: cannot journal its transcription (%s)", job_id, exc.strerror)
            journalled = None
        await close_call(
            self.db,
            call_id,
            "ok",
            entry.settlement,
            None,
            also=lambda session: journal.record(session, entry),
        )
        if journalled is not None:
            await asyncio.to_thread(journalled.unlink, missing_ok=True)
        return result

    async def _counted(
        self, path: Path, guard: OverrunGuard, chunks: AsyncGenerator[bytes, None]
    ) -> AsyncGenerator[bytes, None]:
        async with contextlib.aclosing(chunks):  # closing us closes ffmpeg's reader too
            async for chunk in chunks:
                await guard.before_send(audio.pcm_seconds(len(chunk)))
                self.reporter.advanced(path, audio.pcm_seconds(len(chunk)))
                yield chunk


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def chunk_bytes_for(pace: float) -> int:
    """Whole 262,144-byte messages when unpaced; ~200 ms of wall time per message when paced."""
    if pace <= 0:
        return audio.MAX_CHUNK_BYTES
    size = int(audio.PCM_BYTES_PER_SECOND * 0.2 * pace) // 2 * 2
    return max(640, min(audio.MAX_CHUNK_BYTES, size))


def _conversion_timeout(duration: float | None) -> float:
    """Time ffmpeg may make us wait in all (decoding runs at 100x real time and more)."""
    return 120 + (duration or 3600)


def _deadline(duration: float | None, pace: float) -> float | None:
    """Generous: the idle timeout catches stuck servers; this catches endless trickles."""
    if duration is None:
        return None
    sending = duration / pace if pace > 0 else 0.0
    return sending + duration * 2 + 300


def _failed(target: Target, job_id: int, why: str, session: Session) -> None:
    jobs.add_event(session, "stream_failed", why, job_id=job_id)
    target.failed(session)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, StreamIncompleteError):
        return "incomplete"
    if isinstance(exc, ProviderError):
        if exc.status is None:
            return "provider_error"
        return f"http_{exc.status}" if 100 <= exc.status < 600 else f"error_{exc.status}"
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SpendCapError):
        return "cancelled"  # stopped by us: charged (estimated) for the audio sent
    if isinstance(exc, VoxbatchError):
        return type(exc).__name__
    return "error"


def _describe(info: audio.AudioInfo) -> str:
    duration = (
        "unknown length" if info.duration_seconds is None else f"{info.duration_seconds:.1f} s"
    )
    return f"{info.format_name} {info.audio_codec}, {duration}"
