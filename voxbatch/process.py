"""`voxbatch process FILES`: transcribe files now, their originals left where they are.

Each file becomes a job; a copy of audio already bought (or being bought, here or by the
daemon) waits for that transcript instead of paying again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlmodel import Session

from voxbatch.config import InboxProfile
from voxbatch.errors import (
    ErrorCode,
    InputError,
    VoxbatchError,
    display_path,
    error_code,
    internal_error,
)
from voxbatch.media import audio
from voxbatch.media.ffmpeg import check_regular_file
from voxbatch.stages.dedupe import STOPPED, Verdict, Waiter, copy_verdict
from voxbatch.stages.job import run_job
from voxbatch.stages.pipeline import Pipeline
from voxbatch.stages.transcribe import NoProgress, Progress
from voxbatch.store import calls, jobs, transcripts
from voxbatch.store.jobs import link_to_primary, mark_done
from voxbatch.store.models import TERMINAL_STATES, Job, JobState, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

# The reason a Ctrl-C cancels the run with (`run_interruptibly`): every attempt it stops
# records this, not the bare "CancelledError" of a cancellation without a reason.
INTERRUPTED = "interrupted (Ctrl-C)"


def was_interrupted(exc: BaseException) -> bool:
    """Whether `exc` is the user's Ctrl-C reaching this code."""
    return isinstance(exc, KeyboardInterrupt) or (
        isinstance(exc, asyncio.CancelledError) and INTERRUPTED in exc.args
    )


def run_interruptibly(work: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, where SIGINT cancels the work with INTERRUPTED as the reason; then, once
    the work has recorded how it stopped, KeyboardInterrupt."""

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, task.cancel, INTERRUPTED)
        try:
            return await work
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError as exc:
        if INTERRUPTED in exc.args:
            raise KeyboardInterrupt from None
        raise


# What a job stopped by a cancellation other than the user's Ctrl-C says.
STOPPED_NOTE = "interrupted before it finished; run it again"


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
class _PrimaryEnd:
    """How the job a copy waited for ended (or why it will not end while we wait)."""

    state: str
    error_message: str | None


@dataclass(frozen=True)
class _Admitted:
    path: Path
    job_id: int
    duplicate_of: int | None


class Reporter(Progress, Protocol):
    """Progress, and each file's outcome once it has one."""

    def finished(self, outcome: FileOutcome) -> None: ...


class ProcessRun:
    """One `voxbatch process` invocation over a Pipeline."""

    def __init__(self, pipeline: Pipeline, reporter: Reporter | None = None) -> None:
        self.pipeline = pipeline
        self.settings, self.db = pipeline.settings, pipeline.db
        self.reporter: Reporter = reporter or _Silent()

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
        self.pipeline.run.finished[job_id] = asyncio.Event()
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
                return await self._run(item.job_id, item.path, profile, out_dir, buy=True)
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
            self.pipeline.run.finished[item.job_id].set()

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
            and self.pipeline.abandoned(primary)
        ):
            # Its worker died mid-job (lease expired): it will never finish, so this copy pays.
            self.pipeline.abandon(session, primary)
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
            jobs.lease(session, job, self.pipeline.run.owner, self.settings.daemon.lease_seconds)
        return job

    async def _link_duplicate(
        self, job_id: int, primary_id: int, profile: InboxProfile, out_dir: Path, path: Path
    ) -> FileOutcome:
        ended = await self._wait_for(primary_id)

        def link(session: Session) -> FileOutcome | None:
            job = session.get_one(Job, job_id)
            if transcripts.transcript_for(session, job) is None:
                reason = (
                    f"same audio as job {primary_id}, which ended {ended.state}: "
                    f"{ended.error_message or 'no transcript'}"
                )
                jobs.fail(session, job, ErrorCode.duplicate_of_failed, reason)
                return FileOutcome(path, job_id, JobState.failed, primary_id, error=reason)
            link_to_primary(session, job, session.get_one(Job, primary_id))
            return None

        failed = await self.db.write_async(link)
        if failed is not None:
            return failed
        return await self._run(job_id, path, profile, out_dir, buy=False)

    async def _wait_for(self, job_id: int) -> _PrimaryEnd:
        """Until the job that is buying this transcript ends, in this process or another."""
        while True:
            event = self.pipeline.run.finished.get(job_id)
            if event is not None:
                await event.wait()

            def look(session: Session, event: asyncio.Event | None = event) -> _PrimaryEnd | None:
                job = session.get_one(Job, job_id)
                has_it = transcripts.transcript_for(session, job) is not None
                verdict = copy_verdict(job, has_it=has_it, waiter=Waiter.process, now=utcnow())
                if verdict.wait and event is not None:  # this run's job is over, without it
                    verdict = Verdict(False, STOPPED)
                if verdict.wait:
                    return None
                if verdict.reason is None:
                    return _PrimaryEnd(job.state, job.error_message)
                # It will not end while we wait: say why, as its end.
                return _PrimaryEnd(JobState.failed, verdict.reason)

            ended = await self.db.read_async(look)
            if ended is not None:
                return ended
            await asyncio.sleep(1.0)

    async def _run(
        self, job_id: int, path: Path, profile: InboxProfile, out_dir: Path, *, buy: bool
    ) -> FileOutcome:
        """The job's story (stages.job.run_job), then its end: done, or failed with why."""
        try:
            written = await run_job(self.pipeline, job_id, path, profile, out_dir, buy=buy)
        except BaseException as exc:
            failure: BaseException = exc

            def fail(session: Session) -> FileOutcome:
                exc = failure
                job = session.get_one(Job, job_id)
                if isinstance(exc, VoxbatchError):
                    jobs.fail_job(session, job, exc, hint=exc.hint)
                elif was_interrupted(exc):
                    message = f"{INTERRUPTED} before it finished; run it again"
                    jobs.fail(session, job, ErrorCode.interrupted, message)
                elif isinstance(exc, asyncio.CancelledError):
                    jobs.fail(session, job, error_code(exc), STOPPED_NOTE)
                else:
                    log.error("job %s failed unexpectedly", job_id, exc_info=exc)
                    jobs.fail_job(session, job, internal_error(exc))
                return FileOutcome(
                    path,
                    job_id,
                    JobState.failed,
                    job.duplicate_of,
                    error=job.error_message,
                    cost_usd=calls.job_cost(session, job_id),
                )

            outcome = await asyncio.shield(self.db.write_async(fail))
            if isinstance(exc, Exception):
                return outcome
            raise

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


class _Silent(NoProgress):
    def finished(self, outcome: FileOutcome) -> None:
        pass
