"""The job pipeline: hash → deduplicate → probe → transcribe → record → publish.

Every step that matters is written to the database before the next one starts: the
`stt` call row is committed before any audio is sent, and the transcript, the call's
cost and the job's state commit together when `transcription.done` arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from sqlmodel import Session
from tenacity import (
    RetryCallState,
)

from voxbatch.accounting.paid_calls import settle_abandoned_calls
from voxbatch.accounting.prices import chat_charge, stt_charge, tts_charge
from voxbatch.config import InboxProfile, Settings
from voxbatch.errors import (
    AuthError,
    InputError,
    ProviderError,
    StoreError,
    StreamIncompleteError,
    VoxbatchError,
    display_path,
    internal_error,
    one_line,
)
from voxbatch.media import audio
from voxbatch.media.ffmpeg import check_regular_file, find_ffmpeg
from voxbatch.providers.realtime import (
    RealtimeTranscriber,
    StreamOptions,
    StreamProgress,
    StreamResult,
    TranscriberFactory,
    default_transcriber,
)
from voxbatch.retries import provider_retrying
from voxbatch.stages.publish import document_for, write_outputs
from voxbatch.stages.summary import run_summary_stages
from voxbatch.store import calls, jobs, transcripts
from voxbatch.store.db import Database
from voxbatch.store.jobs import link_to_primary, mark_done
from voxbatch.store.models import TERMINAL_STATES, CallKind, Job, JobState, utcnow
from voxbatch.store.queue import renew_leases
from voxbatch.store.workers import owner_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileOutcome:
    path: Path
    job_id: int | None
    state: str
    duplicate_of: int | None = None
    outputs: tuple[Path, ...] = ()
    error: str | None = None
    audio_seconds: float | None = None
    cost_usd: Decimal = Decimal(0)
    language: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == JobState.done


@dataclass(frozen=True)
class _Admitted:
    path: Path
    job_id: int
    duplicate_of: int | None


class Reporter(Protocol):
    def started(self, path: Path, duration_s: float | None) -> None: ...
    def advanced(self, path: Path, seconds: float) -> None: ...
    def finished(self, outcome: FileOutcome) -> None: ...


class SilentReporter:
    def started(self, path: Path, duration_s: float | None) -> None:
        pass

    def advanced(self, path: Path, seconds: float) -> None:
        pass

    def finished(self, outcome: FileOutcome) -> None:
        pass


@dataclass
class _RunState:
    """What the jobs of one run share: the worker's identity and who is waiting on whom."""

    owner: str = field(default_factory=owner_name)
    finished: dict[int, asyncio.Event] = field(default_factory=dict)
    auth_error: AuthError | None = None


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        transcriber: TranscriberFactory | None = None,
        reporter: Reporter | None = None,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self._make_transcriber = transcriber or default_transcriber(settings)
        self._transcriber: RealtimeTranscriber | None = None
        self.reporter: Reporter = reporter or SilentReporter()
        self.ffmpeg = find_ffmpeg(settings.ffmpeg)
        # A model without a price would be noticed only after paying for it: refuse now.
        stt_charge(settings.prices, settings.mistral.transcription_model, 0)
        if any(p.summary for p in settings.inbox):
            chat_charge(settings.prices, settings.mistral.chat_model, 0, 0)
            tts_charge(settings.prices, settings.mistral.tts_model, 0)
        self._run = _RunState() if owner is None else _RunState(owner=owner)
        # Called each time the server accepts a transcription session.
        self.on_connected: Callable[[], None] | None = None

    @property
    def transcriber(self) -> RealtimeTranscriber:
        if self._transcriber is None:
            self._transcriber = self._make_transcriber()
        return self._transcriber

    def reset_client(self) -> None:
        """Forget a refused key and the client built with it: the next call reads the key anew."""
        self._run.auth_error = None
        self._transcriber = None

    async def process_paths(
        self,
        paths: Sequence[Path],
        *,
        profile: InboxProfile,
        out_dir: Path,
        inbox: str | None = None,
    ) -> list[FileOutcome]:
        # Jobs are created in the order given, so their ids follow the command line.
        admitted = [await self._admit_guarded(p, out_dir, inbox) for p in paths]
        limit = asyncio.Semaphore(self.settings.daemon.concurrency)

        async def one(item: FileOutcome | _Admitted) -> FileOutcome:
            outcome = await self._run_guarded(item, profile, out_dir, limit)
            self.reporter.finished(outcome)
            return outcome

        return list(await asyncio.gather(*(one(item) for item in admitted)))

    async def _admit_guarded(
        self, path: Path, out_dir: Path, inbox: str | None
    ) -> FileOutcome | _Admitted:
        path = path if path.is_absolute() else Path.cwd() / path
        try:
            return await self._admit(path, out_dir, inbox)
        except Exception as exc:  # a bug must cost one file, never the whole batch
            log.exception("unexpected error while admitting %s", display_path(path))
            return FileOutcome(path, None, JobState.failed, error=str(internal_error(exc)))

    async def _admit(self, path: Path, out_dir: Path, inbox: str | None) -> FileOutcome | _Admitted:
        """Check and hash the file, then record its job (linked if the audio is known)."""
        try:
            size = check_regular_file(path).st_size
            sha = await audio.file_sha256(path)
        except (InputError, OSError) as exc:
            message = exc.message if isinstance(exc, InputError) else f"cannot read: {exc.strerror}"
            shown = display_path(path)
            await self.db.write_async(
                lambda session: jobs.add_event(session, "rejected", message, path=shown)
            )
            return FileOutcome(path, None, JobState.failed, error=message)

        def record(session: Session) -> tuple[int | None, int | None]:
            job = self._create_or_take_over(session, sha, path, size, inbox, out_dir)
            return job.id, job.duplicate_of

        job_id, duplicate_of = await self.db.write_async(record)
        assert job_id is not None
        self._run.finished[job_id] = asyncio.Event()
        return _Admitted(path, job_id, duplicate_of)

    async def _run_guarded(
        self,
        item: FileOutcome | _Admitted,
        profile: InboxProfile,
        out_dir: Path,
        limit: asyncio.Semaphore,
    ) -> FileOutcome:
        if isinstance(item, FileOutcome):
            return item
        try:
            if item.duplicate_of is not None:
                # Waiting for another job's transcript takes no transcription slot.
                return await self._link_duplicate(
                    item.job_id, item.duplicate_of, profile, out_dir, item.path
                )
            async with limit:
                return await self._transcribe_job(item.job_id, item.path, profile, out_dir)
        except Exception as exc:  # a bug must cost one file, never the whole batch
            log.exception("unexpected error while processing %s", display_path(item.path))
            error = internal_error(exc)
            job_id = item.job_id

            def fail(session: Session) -> None:
                job = session.get_one(Job, job_id)
                if job.state not in TERMINAL_STATES:
                    jobs.fail_job(session, job, error)

            await self.db.write_async(fail)
            return FileOutcome(item.path, item.job_id, JobState.failed, error=str(error))
        finally:
            self._run.finished[item.job_id].set()

    def _create_or_take_over(
        self,
        session: Session,
        sha: str,
        path: Path,
        size: int,
        inbox: str | None,
        out_dir: Path,
    ) -> Job:
        primary = jobs.find_primary(session, sha)
        if (
            primary is not None
            and transcripts.transcript_for(session, primary) is None
            and self.abandoned(primary)
        ):
            # Its worker died mid-job (lease expired): it will never finish, so this copy pays.
            self.abandon(session, primary)
            primary = None
        job = jobs.create_job(
            session,
            content_sha256=sha,
            source_path=display_path(path),
            size_bytes=size,
            inbox=inbox,
            output_dir=str(out_dir),
            primary=primary,
        )
        if job.duplicate_of is None:
            job.lease_owner = self._run.owner
            job.lease_expires_at = utcnow() + timedelta(seconds=self.settings.daemon.lease_seconds)
        return job

    def abandon(self, session: Session, job: Job) -> None:
        """Fail a dead worker's job and settle its unfinished calls.

        Nobody knows how much audio it sent before dying; the file's length is the most that
        can have been billed, so that is what the ledger shows, marked estimated.
        """
        settle_abandoned_calls(session, self.settings, job)
        job.error_class = "Abandoned"
        job.error_message = "its worker stopped before finishing; a new job took over"
        job.lease_owner = None
        job.lease_expires_at = None
        jobs.set_state(session, job, JobState.failed, detail=job.error_message)
        session.flush()

    def abandoned(self, job: Job) -> bool:
        """Is `job` a `process` job whose worker is gone? (The daemon recovers its own jobs.)"""
        if job.state in TERMINAL_STATES or job.work_path is not None:
            return False
        if job.lease_owner == self._run.owner:
            return False
        return job.lease_expires_at is None or job.lease_expires_at < utcnow()

    async def _link_duplicate(
        self, job_id: int, primary_id: int, profile: InboxProfile, out_dir: Path, path: Path
    ) -> FileOutcome:
        primary = await self._wait_for(primary_id)

        def link(session: Session) -> FileOutcome | None:
            job = session.get_one(Job, job_id)
            if transcripts.transcript_for(session, job) is None:
                reason = (
                    f"same audio as job {primary_id}, which ended {primary.state}: "
                    f"{primary.error_message or 'no transcript'}"
                )
                job.error_class = "DuplicateOfFailed"
                job.error_message = reason
                jobs.set_state(session, job, JobState.failed, detail=reason)
                return FileOutcome(path, job_id, JobState.failed, primary_id, error=reason)
            link_to_primary(session, job, primary)
            return None

        failed = await self.db.write_async(link)
        if failed is not None:
            return failed
        return await self._publish(job_id, profile, out_dir, path)

    async def _wait_for(self, job_id: int) -> Job:
        """Until the job that is buying this transcript ends, in this process or another."""
        while True:
            event = self._run.finished.get(job_id)
            if event is not None:
                await event.wait()

            def look(session: Session, event: asyncio.Event | None = event) -> Job | None:
                job = session.get_one(Job, job_id)
                if job.state in TERMINAL_STATES or transcripts.transcript_for(session, job):
                    session.expunge(job)
                    return job
                stopped = event is not None or self.abandoned(job)
                reason = "its worker stopped before finishing" if stopped else _daemon_holds(job)
                if reason is not None:  # it will not end while we wait: say why, as its end
                    session.expunge(job)
                    job.state = JobState.failed
                    job.error_message = reason
                    return job
                return None

            ended = await self.db.read_async(look)
            if ended is not None:
                return ended
            await asyncio.sleep(1.0)

    async def _transcribe_job(
        self, job_id: int, path: Path, profile: InboxProfile, out_dir: Path
    ) -> FileOutcome:
        try:
            await self.transcribe(job_id, path, profile)
        except BaseException as exc:
            failure: BaseException = exc

            def fail(session: Session) -> FileOutcome:
                exc = failure
                job = session.get_one(Job, job_id)
                if isinstance(exc, VoxbatchError):
                    jobs.fail_job(session, job, exc, hint=exc.hint)
                elif isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                    jobs.fail_job(session, job, exc, hint="interrupted; run it again")
                    job.error_message = "interrupted before it finished; run it again"
                else:
                    log.exception("job %s failed unexpectedly", job_id)
                    jobs.fail_job(session, job, internal_error(exc))
                return FileOutcome(
                    path,
                    job_id,
                    JobState.failed,
                    error=job.error_message,
                    cost_usd=calls.job_cost(session, job_id),
                )

            outcome = await asyncio.shield(self.db.write_async(fail))
            if isinstance(exc, Exception):
                return outcome
            raise
        return await self._publish(job_id, profile, out_dir, path)

    async def transcribe(self, job_id: int, path: Path, profile: InboxProfile) -> None:
        """Probe and transcribe with retries, under a renewed lease; raises when it fails.

        The caller decides what a failure means for the job (failed now, or back to the queue).
        """
        heartbeat = asyncio.create_task(self._heartbeat(job_id))
        try:

            def converting(session: Session) -> None:
                job = session.get_one(Job, job_id)
                jobs.set_state(session, job, JobState.converting, stage="probe")

            await self.db.write_through_faults(converting)
            info = await audio.probe(path, ffmpeg=self.ffmpeg)

            def streaming(session: Session) -> None:
                job = session.get_one(Job, job_id)
                job.audio_seconds = info.duration_seconds
                jobs.set_state(
                    session, job, JobState.streaming, stage="stt", detail=_describe(info)
                )

            await self.db.write_through_faults(streaming)
            self.reporter.started(path, info.duration_seconds)
            await self._transcribe_with_retries(job_id, path, profile, info.duration_seconds)
        except AuthError as exc:
            self._run.auth_error = exc
            raise
        finally:
            await _stop(heartbeat)

    async def _heartbeat(self, job_id: int) -> None:
        lease = self.settings.daemon.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            # A store fault is the daemon's to report; the next beat tries again.
            with contextlib.suppress(StoreError):
                await self.db.run(renew_leases, self.db, self._run.owner, [job_id], lease,
                                  writes=True)  # fmt: skip

    async def _transcribe_with_retries(
        self, job_id: int, path: Path, profile: InboxProfile, duration: float | None
    ) -> StreamResult:
        daemon = self.settings.daemon

        async def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            detail = (
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
                return await self._attempt(job_id, path, profile, duration)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt(
        self, job_id: int, path: Path, profile: InboxProfile, duration: float | None
    ) -> StreamResult:
        model = self.settings.mistral.transcription_model
        prices = self.settings.prices

        def start(session: Session) -> int | None:
            job = session.get_one(Job, job_id)
            job.attempts += 1
            call = calls.start_call(session, job_id=job_id, kind=CallKind.stt, model=model)
            jobs.add_event(session, "stream_started", f"attempt {job.attempts}", job_id=job_id)
            return call.id

        # Committed before any audio is sent; while the store refuses it, nothing is bought.
        call_id = await self.db.write_through_faults(start)
        assert call_id is not None
        options = StreamOptions(
            model=model,
            language=profile.language,
            context_bias=profile.context_bias,
            diarize=profile.diarize,
            target_streaming_delay_ms=self.settings.mistral.target_streaming_delay_ms,
            pace=self.settings.daemon.pace,
        )
        progress = StreamProgress(on_connected=self.on_connected)
        live = _LiveText(self.db, job_id)
        flusher = asyncio.create_task(live.run())
        pcm = self._counted(
            path,
            audio.stream_pcm(
                path,
                ffmpeg=self.ffmpeg,
                chunk_bytes=chunk_bytes_for(self.settings.daemon.pace),
                timeout_s=_conversion_timeout(duration),
            ),
        )
        try:
            result = await self.transcriber.transcribe(
                pcm,
                options,
                progress=progress,
                on_delta=live.append,
                deadline_s=_deadline(duration, self.settings.daemon.pace),
            )
        except BaseException as exc:
            await _stop(flusher)
            error: BaseException = exc
            billed = math.ceil(progress.seconds_sent)
            charge = stt_charge(prices, model, billed)

            def failed(session: Session) -> None:
                calls.finish_call(
                    session,
                    call_id,
                    outcome=_outcome(error),
                    cost_usd=charge.cost_usd,
                    price_basis=charge.price_basis,
                    estimated=billed > 0,
                    audio_seconds=billed,
                    request_id=progress.request_id,
                    error_detail=one_line(error, 500),
                )
                jobs.add_event(session, "stream_failed", one_line(error), job_id=job_id)

            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                # Stopping: one try; an unsettled call is settled by the next start's recovery.
                with contextlib.suppress(StoreError):
                    await asyncio.shield(self.db.write_async(failed))
            else:
                await self.db.write_through_faults(failed)
            raise
        await _stop(flusher)
        charge = stt_charge(prices, model, result.billed_audio_seconds)

        def finished(session: Session) -> None:
            job = session.get_one(Job, job_id)
            job.partial_text = None
            calls.finish_call(
                session,
                call_id,
                outcome="ok",
                cost_usd=charge.cost_usd,
                price_basis=charge.price_basis,
                estimated=not result.usage_reported,
                audio_seconds=result.billed_audio_seconds,
                request_id=result.request_id,
            )
            # Another worker may have bought the same audio meanwhile: keep the first copy,
            # but this call was paid all the same and stays in the ledger.
            if transcripts.transcript_for(session, job) is None:
                transcripts.save_transcript(
                    session,
                    job,
                    model=result.model or model,
                    text=result.text,
                    language=result.language,
                    audio_seconds=audio.pcm_seconds(result.bytes_sent),
                    segments=result.segments,
                )
            job.language = result.language
            job.audio_seconds = audio.pcm_seconds(result.bytes_sent)
            jobs.set_state(
                session,
                job,
                JobState.transcribed,
                stage="publish",
                detail=f"{len(result.text)} characters, {len(result.segments)} segments, "
                f"{result.billed_audio_seconds} s billed",
            )

        # The server has answered and billed: the result waits here (in memory) for as long
        # as the store refuses it, and is never bought again because the disk was full.
        await self.db.write_through_faults(finished)
        return result

    async def _counted(
        self, path: Path, chunks: AsyncGenerator[bytes, None]
    ) -> AsyncGenerator[bytes, None]:
        async with contextlib.aclosing(chunks):  # closing us closes ffmpeg's reader too
            async for chunk in chunks:
                self.reporter.advanced(path, audio.pcm_seconds(len(chunk)))
                yield chunk

    async def _publish(
        self, job_id: int, profile: InboxProfile, out_dir: Path, path: Path
    ) -> FileOutcome:
        heartbeat = asyncio.create_task(self._heartbeat(job_id))  # summaries can take minutes
        try:
            written = await self.db.run(self.write_results, job_id, profile, out_dir)
            written += await self.summarize(job_id, profile, out_dir, written)
        except VoxbatchError as exc:
            error = exc

            def fail(session: Session) -> FileOutcome:
                job = session.get_one(Job, job_id)
                jobs.fail_job(session, job, error, hint=error.hint)
                return FileOutcome(
                    path, job_id, JobState.failed, job.duplicate_of, error=job.error_message
                )

            return await self.db.write_async(fail)
        finally:
            await _stop(heartbeat)

        def done(session: Session) -> FileOutcome:
            job = session.get_one(Job, job_id)
            mark_done(session, job, written)
            return FileOutcome(
                path,
                job_id,
                JobState.done,
                job.duplicate_of,
                written,
                audio_seconds=job.audio_seconds,
                cost_usd=calls.job_cost(session, job_id),
                language=job.language,
            )

        return await self.db.write_async(done)

    async def summarize(
        self, job_id: int, profile: InboxProfile, out_dir: Path, written: tuple[Path, ...]
    ) -> tuple[Path, ...]:
        """The written and spoken summary when the profile asks for one (checkpointed stages:
        whatever was bought before is reused). Raises VoxbatchError when a stage fails."""
        if not profile.summary:
            return ()
        outcome = await run_summary_stages(
            self.settings,
            self.db,
            job_id,
            profile,
            out_dir,
            api_key=self.settings.api_key(),
            stem=written[0].stem if written else None,
        )
        return tuple(outcome.paths)

    def write_results(self, job_id: int, profile: InboxProfile, out_dir: Path) -> tuple[Path, ...]:
        """The output files; raises VoxbatchError (with a hint) when they cannot be written."""
        with self.db.read() as session:
            doc = document_for(session, session.get_one(Job, job_id))
        try:  # files are written outside any transaction: no lock held during disk I/O
            return tuple(write_outputs(doc, out_dir, profile.outputs))
        except OSError as exc:
            raise VoxbatchError(
                f"cannot write results to {display_path(out_dir)}: {exc.strerror}",
                hint=f"the transcript is saved: `voxbatch export {job_id}` or processing the "
                "file again writes them at no cost",
            ) from exc


def _daemon_holds(job: Job) -> str | None:
    """Why `process` should not wait for a daemon job buying the same audio, if it should not."""
    if job.work_path is None:
        return None
    if job.state == JobState.queued:
        why = f" ({job.wait_reason})" if job.wait_reason else ""
        return (
            f"it is queued in the daemon{why}; `voxbatch run` transcribes it, then process "
            "this file again at no cost"
        )
    if job.lease_expires_at is not None and job.lease_expires_at < utcnow():
        return "the daemon transcribing it stopped; it resumes when `voxbatch run` starts again"
    return None


class _LiveText:
    """The deltas received so far, written to the job once a second for `tail --follow`."""

    def __init__(self, db: Database, job_id: int, interval: float = 1.0) -> None:
        self.db, self.job_id, self.interval = db, job_id, interval
        self.parts: list[str] = []
        self._written = -1

    def append(self, text: str) -> None:
        self.parts.append(text)

    async def run(self) -> None:
        while True:
            if len(self.parts) != self._written:
                written, text = len(self.parts), "".join(self.parts)

                def save(session: Session, text: str = text) -> None:
                    session.get_one(Job, self.job_id).partial_text = text

                with contextlib.suppress(StoreError):  # best effort: the next second tries again
                    await self.db.write_async(save)
                    self._written = written
            await asyncio.sleep(self.interval)


async def _stop(task: asyncio.Task[None]) -> None:
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


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, StreamIncompleteError):
        return "incomplete"
    if isinstance(exc, ProviderError):
        if exc.status is None:
            return "provider_error"
        return f"http_{exc.status}" if 100 <= exc.status < 600 else f"error_{exc.status}"
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
        return "cancelled"
    if isinstance(exc, VoxbatchError):
        return type(exc).__name__
    return "error"


def _describe(info: audio.AudioInfo) -> str:
    duration = (
        "unknown length" if info.duration_seconds is None else f"{info.duration_seconds:.1f} s"
    )
    return f"{info.format_name} {info.audio_codec}, {duration}"
