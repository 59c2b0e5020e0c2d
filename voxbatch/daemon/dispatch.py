"""Dispatch: claim queued jobs under the concurrency limit and the breaker, run each one.

A queued job is admitted (a copy waits for the job buying its audio; a new job waits for the
spend caps), leased, and run: transcribed unless a copy's transcript can be linked, its
results written, maybe summarized, and its original filed. A failure is a later round while
rounds are left, else the job's end in failed/.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from voxbatch.accounting import budget
from voxbatch.config import Settings
from voxbatch.daemon.admission import BUDGET_RECHECK_S, Admission
from voxbatch.daemon.breaker import Breaker
from voxbatch.daemon.filing import Filing
from voxbatch.daemon.keypause import KeyPause
from voxbatch.daemon.state import DaemonState
from voxbatch.errors import (
    AnswerTimeoutError,
    AuthError,
    FileChangedError,
    SpendCapError,
    StoreError,
    VoxbatchError,
    internal_error,
    is_retryable,
    one_line,
)
from voxbatch.ingest.folders import Inbox, crash_point, find_inbox
from voxbatch.stages.job import run_job
from voxbatch.stages.pipeline import Pipeline
from voxbatch.store import calls, jobs, queue, transcripts
from voxbatch.store.db import Database
from voxbatch.store.models import Job, JobState, utcnow

log = logging.getLogger(__name__)


class Dispatcher:
    """Claims and runs jobs until `state.stop` (or, with `once`, until nothing is left to do).

    `settling` says whether the intake still has files on their way to the queue (--once
    waits for them).
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        boxes: list[Inbox],
        *,
        state: DaemonState,
        pipeline: Pipeline,
        breaker: Breaker,
        admission: Admission,
        keys: KeyPause,
        filing: Filing,
        owner: str,
        once: bool,
        settling: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.db = db
        self.boxes = boxes
        self.state = state
        self.pipeline = pipeline
        self.breaker = breaker
        self.admission = admission
        self.keys = keys
        self.filing = filing
        self.owner = owner
        self.once = once
        self._settling = settling
        # Until the server has accepted the key once, one job at a time: a wrong key then
        # costs one refusal, not one per worker.
        self.key_verified = False
        self.probe_job: int | None = None

    # --- dispatch: bounded concurrency, breaker, key pause -----------------------------------

    def key_works(self) -> None:
        if not self.key_verified:
            self.key_verified = True
            self.state.wake.set()

    def _may_claim(self) -> bool:
        if self.state.stop.is_set() or self.keys.paused:
            return False
        if self.db.health.fault is not None:
            return False  # a claim is a write: wait until the store takes writes again
        # The provider may allow fewer sessions than configured: claim no more than it takes.
        limit = self.pipeline.stt.sessions.limit if self.key_verified else 1  # ≤ concurrency
        if len(self.state.running) >= limit:
            return False
        return self.breaker.allow()

    async def run(self) -> None:
        state = self.state
        while not state.stop.is_set():
            started = False
            if self._may_claim():
                try:
                    job_id = await self.db.run(
                        queue.claim_next,
                        self.db,
                        self.owner,
                        self.settings.daemon.lease_seconds,
                        admit=self.admission.admit,
                        writes=True,
                    )
                except StoreError:
                    job_id = None  # in health now: no claims until a write works again
                if job_id is not None:
                    if self.breaker.probing and self.probe_job is None:
                        self.probe_job = job_id
                    task = asyncio.create_task(self._run_job(job_id))
                    state.running[job_id] = task
                    task.add_done_callback(self._job_ended)
                    started = True
                elif self.breaker.probing:
                    self.breaker.release()
            if started:
                continue
            if self.once and await self._idle():
                return
            state.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), 1.0)

    def _job_ended(self, task: asyncio.Task[None]) -> None:
        for job_id, running in list(self.state.running.items()):
            if running is task:
                del self.state.running[job_id]
        self.state.wake.set()

    async def _idle(self) -> bool:
        """--once: nothing running or settling, and nothing queued that may run within 30 s.

        Jobs put back for minutes (retry rounds) or held by a refused key are left queued.
        """
        if self.state.running or self._settling():
            return False
        if self.keys.paused or self.breaker.is_open:
            return True
        # Called after a claim found nothing: what is queued now is held (a copy waiting for
        # its original, a spend cap) or due later. Only a retry due within 30 s is waited for.
        now = utcnow()

        def count_due(session: Session) -> int:
            return session.exec(
                select(func.count())
                .select_from(Job)
                .where(
                    Job.state == JobState.queued,
                    col(Job.work_path).is_not(None),
                    col(Job.duplicate_of).is_(None),
                    col(Job.not_before) > now,
                    col(Job.not_before) <= now + timedelta(seconds=30),
                    sa.or_(col(Job.stage).is_(None), col(Job.stage) != budget.BUDGET_WAIT_STAGE),
                )
            ).one()

        return await self.db.read_async(count_due) == 0

    # --- one job ------------------------------------------------------------------------------

    async def _run_job(self, job_id: int) -> None:
        crash_point("leased")
        try:
            await self._process(job_id)
        except asyncio.CancelledError:
            # One try: stopping must not wait out a store fault; the next start recovers it.
            with contextlib.suppress(StoreError):
                await self.db.write_async(_requeuer(job_id, "voxbatch stopped before it finished"))
            raise
        except AuthError as exc:
            self.keys.pause_for_key(exc)
            reason = f"waiting: {self.keys.auth_pause_message()}"
            await self.db.write_through_faults(_requeuer(job_id, reason))
        except Exception as exc:
            await self._job_failed(job_id, exc)
        finally:
            self._end_probe(job_id)

    def _end_probe(self, job_id: int) -> None:
        """The probe job ended without a provider verdict (linked, waited, cancelled): the next
        job may probe."""
        if self.probe_job == job_id:
            self.probe_job = None
            if self.breaker.probing:
                self.breaker.release()

    async def _process(self, job_id: int) -> None:
        def look(session: Session) -> tuple[str | None, Path, Path, bool]:
            job = session.get_one(Job, job_id)
            transcript = transcripts.transcript_for(session, job)
            bought_here = transcript is not None and transcript.job_id == job_id
            return job.inbox, Path(job.work_path or ""), Path(job.output_dir or ""), bought_here

        inbox, path, out_dir, bought_here = await self.db.read_async(look)
        box = find_inbox(self.boxes, inbox)
        buy = False
        if not bought_here:
            linked = await self.db.write_through_faults(
                lambda session: self.admission.resolve_duplicate(session, job_id)
            )
            if linked is None:
                return  # waits for the copy that is paying
            buy = not linked
        written = await run_job(
            self.pipeline, job_id, path, box.profile, out_dir, buy=buy,
            on_transcribed=self.breaker.success,
        )  # fmt: skip
        await self.filing.file_original(job_id, JobState.done, written=written)

    async def _job_failed(self, job_id: int, exc: Exception) -> None:
        if isinstance(exc, StoreError):
            # The store's fault, not the job's or the provider's: no round spent.
            reason = f"waiting: {one_line(exc)}"
            await self.db.write_through_faults(_requeuer(job_id, reason))
            return
        if isinstance(exc, SpendCapError):  # waits for the budget, like a job held at a cap
            await self.db.write_through_faults(_holder(job_id, exc))
            return
        if isinstance(exc, FileChangedError):  # the whole file again, once it has settled
            settle_s = self.settings.daemon.stable_seconds
            await self.db.write_through_faults(_changed(job_id, exc, settle_s))
            return
        if not isinstance(exc, VoxbatchError):
            log.error("job %s: unexpected error", job_id, exc_info=exc)
            exc = internal_error(exc)
        if is_retryable(exc) or isinstance(exc, AnswerTimeoutError):
            self.breaker.failure()
            failure = exc
            if await self.db.write_through_faults(lambda s: self._next_round(s, job_id, failure)):
                self.state.outcomes["requeued"] += 1
                return
        await self.filing.file_original(job_id, JobState.failed, error=exc)

    def _next_round(self, session: Session, job_id: int, exc: VoxbatchError) -> bool:
        """Back to the queue for a later round, if rounds are left: True when requeued."""
        daemon = self.settings.daemon
        job = session.get_one(Job, job_id)
        if job.requeues >= daemon.max_requeues:
            return False
        delay = min(daemon.requeue_delay_s * 4**job.requeues, 3600.0)
        when = datetime.now(UTC).timestamp() + delay
        reason = (
            f"{one_line(exc)}; round {job.requeues + 1} of "
            f"{daemon.max_requeues + 1} failed, next try at "
            f"{datetime.fromtimestamp(when, UTC):%H:%M:%S} UTC"
        )
        queue.requeue(session, job, reason=reason, delay_s=delay, count=True)
        log.warning("job %s: %s", job_id, reason)
        return True


def _requeuer(job_id: int, reason: str) -> Callable[[Session], None]:
    def requeue(session: Session) -> None:
        queue.requeue(session, session.get_one(Job, job_id), reason=reason)

    return requeue


def _holder(job_id: int, exc: SpendCapError) -> Callable[[Session], None]:
    def hold(session: Session) -> None:
        job = session.get_one(Job, job_id)
        budget.hold_past_estimate(
            session, job, exc.message, expected_seconds=exc.expected_seconds,
            recheck_s=BUDGET_RECHECK_S,
        )  # fmt: skip

    return hold


def _changed(job_id: int, exc: FileChangedError, settle_s: float) -> Callable[[Session], None]:
    def again(session: Session) -> None:
        job = session.get_one(Job, job_id)
        calls.drop_estimate(session, job_id)  # estimated again for the whole file
        jobs.requeue_changed(
            session, job, exc.message, sha256=exc.sha256, size_bytes=exc.size_bytes,
            audio_seconds=exc.audio_seconds, not_before=utcnow() + timedelta(seconds=settle_s),
        )  # fmt: skip

    return again
