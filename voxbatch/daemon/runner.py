"""`voxbatch run`: watch the inboxes, claim ready files, process them, file the originals.

One event loop runs everything: the supervised watcher (hints), the intake (stability and
claim by move), the dispatcher (bounded concurrency, circuit breaker, key pause), and the
housekeeping (leases, recovery, worker heartbeat, sd_notify). Every original ends in exactly
one of done/, failed/ or quarantine/, or waits in work/ while its job is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from voxbatch.accounting import budget
from voxbatch.config import Settings
from voxbatch.daemon import recovery
from voxbatch.daemon.admission import Admission
from voxbatch.daemon.breaker import Breaker
from voxbatch.daemon.filing import Filing
from voxbatch.daemon.housekeeping import Housekeeping
from voxbatch.daemon.keypause import KeyPause
from voxbatch.daemon.notify import Notifier
from voxbatch.daemon.state import DaemonState
from voxbatch.errors import (
    AnswerTimeoutError,
    AuthError,
    StoreError,
    VoxbatchError,
    internal_error,
    is_retryable,
    one_line,
)
from voxbatch.ingest.folders import Inbox, crash_point, find_inbox, lock_home, prepare
from voxbatch.ingest.intake import Intake
from voxbatch.ingest.watch import Supervisor, needs_polling
from voxbatch.providers.realtime import TranscriberFactory, default_transcriber
from voxbatch.stages.pipeline import Pipeline
from voxbatch.store import queue, transcripts, workers
from voxbatch.store.db import Database
from voxbatch.store.models import Job, JobState, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")


class Daemon:
    """The daemon; built by `open`, which does the start-up I/O (its constructor does none)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        boxes: list[Inbox],
        lock: int,
        api_key: str,
        pipeline: Pipeline,
        owner: str,
        notifier: Notifier,
        once: bool = False,
        tick_s: float = 0.25,
    ) -> None:
        self.settings = settings
        self.db = db
        self.once = once
        self.tick_s = min(tick_s, max(0.05, settings.daemon.stable_seconds / 2))
        self.owner = owner
        self.notifier = notifier
        self.boxes = boxes
        self._lock = lock
        self.pipeline = pipeline
        self.state = DaemonState()
        # Until the server has accepted the key once, one job at a time: a wrong key then
        # costs one refusal, not one per worker.
        self.key_verified = False
        self.pipeline.on_connected = self._key_works
        self.breaker = Breaker(settings.daemon.breaker_threshold, settings.daemon.breaker_probe_s)
        self.keys = KeyPause(settings, db, pipeline, api_key=api_key, wake=self.state.wake_up)
        self.intake = Intake(
            settings,
            db,
            boxes,
            ffmpeg=pipeline.ffmpeg,
            stop=self.state.stop,
            wake=self.state.wake_up,
            outcomes=self.state.outcomes,
            tick_s=self.tick_s,
        )
        self.admission = Admission(settings, boxes, pipeline)
        self.filing = Filing(settings, db, owner=owner, outcomes=self.state.outcomes)
        self.housekeeping = Housekeeping(
            settings,
            db,
            state=self.state,
            notifier=notifier,
            breaker=self.breaker,
            keys=self.keys,
            owner=owner,
            tick_s=self.tick_s,
        )
        self.probe_job: int | None = None

    @classmethod
    def open(
        cls,
        settings: Settings,
        db: Database,
        *,
        once: bool = False,
        transcriber: TranscriberFactory | None = None,
        notifier: Notifier | None = None,
        tick_s: float = 0.25,
    ) -> Daemon:
        """The start-up I/O: make the folders, take the home lock, read the key, find ffmpeg
        (the Pipeline); then the daemon. A VoxbatchError says why it cannot start."""
        owner = workers.owner_name()
        notifier = notifier or Notifier()
        boxes = prepare(settings)
        lock = lock_home(settings.home)
        try:
            api_key = settings.api_key()
            make_transcriber = transcriber or default_transcriber(settings)
            pipeline = Pipeline(settings, db, transcriber=make_transcriber, owner=owner)
            return cls(
                settings,
                db,
                boxes=boxes,
                lock=lock,
                api_key=api_key,
                pipeline=pipeline,
                owner=owner,
                notifier=notifier,
                once=once,
                tick_s=tick_s,
            )
        except BaseException:
            os.close(lock)  # a start that fails holds no lock (its caller may try again)
            raise

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> int:
        """Until SIGTERM/SIGINT (or, with --once, until nothing is left to do). The exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        try:
            return await self._run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            os.close(self._lock)

    async def _notifying(self, work: Awaitable[T]) -> T:
        """Startup work that may take long (copies across filesystems): keep systemd's start
        timeout from running out while it goes on."""
        task = asyncio.ensure_future(work)
        while True:
            self.notifier.send(EXTEND_TIMEOUT_USEC=str(60 * 1_000_000))
            done, _ = await asyncio.wait({task}, timeout=20)
            if done:
                return task.result()

    def request_stop(self, sig: int | None = None) -> None:
        if self.state.stop.is_set():
            log.warning("second stop signal: cancelling the jobs still running")
            for task in self.state.running.values():
                task.cancel()
            return
        name = signal.Signals(sig).name if sig else "request"
        log.info("stopping (%s): no new claims; draining for up to %g s", name, self.drain_s)
        self.state.stop.set()
        self.state.wake.set()

    @property
    def drain_s(self) -> float:
        return self.settings.daemon.drain_seconds

    async def _run(self) -> int:
        db = self.db
        await db.run(workers.forget_dead_workers, db, self.owner, writes=True)
        await db.run(workers.beat, db, self.owner, state="starting", provider="ok", detail="",
                     writes=True)  # fmt: skip
        for item in await self._notifying(db.run(recovery.reconcile_moves, db, writes=True)):
            log.info("job %s: %s", item.job_id, item.action)
        await self.housekeeping.recover()
        await db.run(queue.recheck_held, db, budget.BUDGET_WAIT_STAGE, writes=True)
        folders = [b.root for b in self.boxes]
        polling = needs_polling(self.settings.daemon.watch_mode, folders)
        watcher: asyncio.Task[None] | None = None
        supervisor = Supervisor(
            folders, polling=polling, hint=self.intake.hint, rescan=self.intake.ask_rescan
        )
        if not self.once:
            watcher = asyncio.create_task(supervisor.run(self.state.stop))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(supervisor.started.wait(), 3.0)
        # After the watcher started: nothing dropped in between is missed.
        await asyncio.to_thread(self.intake.rescan)
        log.info(
            "voxbatch %s: watching %s (%s), %d worker(s)",
            "run --once" if self.once else "run",
            ", ".join(str(f) for f in folders),
            "polling" if polling else "inotify",
            self.settings.daemon.concurrency,
        )
        helpers = [
            asyncio.create_task(self._supervised("intake", self.intake.run)),
            asyncio.create_task(self._supervised("housekeeping", self.housekeeping.run)),
            asyncio.create_task(self._supervised("watchdog", self.housekeeping.watchdog)),
        ]
        self.notifier.ready(await self.housekeeping.status_line())
        try:
            await self._supervised("dispatch", self._dispatch_loop)
            await self._drain()
        finally:
            self.state.stop.set()
            for task in helpers:
                task.cancel()
            for task in [*helpers, *([watcher] if watcher else [])]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(StoreError):  # a dead daemon's row is forgotten at start
                await self.db.run(workers.forget_worker, self.db, self.owner, writes=True)
        outcomes = self.state.outcomes
        summary = ", ".join(f"{n} {state}" for state, n in sorted(outcomes.items()))
        log.info("voxbatch stopped: %s", summary or "no jobs finished")
        if self.once:
            await self.db.run(self._report_left_queued)
        if not self.once:
            return 0
        # --once is for scripts: anything short of success says so.
        troubled = self.keys.paused or self.breaker.is_open
        unfinished = outcomes.get(JobState.failed, 0) + outcomes.get("requeued", 0)
        return 1 if troubled or unfinished else 0

    def _report_left_queued(self) -> None:
        with self.db.read() as session:
            left = session.exec(
                select(Job).where(Job.state == JobState.queued, col(Job.work_path).is_not(None))
            ).all()
            provider, detail = self.housekeeping.provider_state()
            default = "queued" if provider == "ok" else f"waiting: {detail}"
            reasons = Counter(job.wait_reason or default for job in left)
        for reason, n in reasons.most_common(5):
            log.warning("%d job(s) left in the queue: %s", n, reason)
        if left:
            log.warning("`voxbatch status` shows them; `voxbatch run` takes them when it may")

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """A loop that fails is logged and restarted: a bug must not silently stop intake."""
        while not self.state.stop.is_set():
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the %s loop failed; restarting it", name)
                await asyncio.sleep(1.0)

    async def _drain(self) -> None:
        self.state.draining = True
        self.notifier.stopping(f"draining {len(self.state.running)} job(s)")
        if not self.state.running:
            return
        log.info("waiting up to %g s for %d running job(s)", self.drain_s, len(self.state.running))
        _, pending = await asyncio.wait(list(self.state.running.values()), timeout=self.drain_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            log.info("%d job(s) returned to the queue at the drain deadline", len(pending))

    # --- dispatch: bounded concurrency, breaker, key pause -----------------------------------

    def _key_works(self) -> None:
        if not self.key_verified:
            self.key_verified = True
            self.state.wake.set()

    def _may_claim(self) -> bool:
        if self.state.stop.is_set() or self.keys.paused:
            return False
        if self.db.health.fault is not None:
            return False  # a claim is a write: wait until the store takes writes again
        limit = self.settings.daemon.concurrency if self.key_verified else 1
        if len(self.state.running) >= limit:
            return False
        return self.breaker.allow()

    async def _dispatch_loop(self) -> None:
        while not self.state.stop.is_set():
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
                    self.state.running[job_id] = task
                    task.add_done_callback(self._job_ended)
                    started = True
                elif self.breaker.probing:
                    self.breaker.release()
            if started:
                continue
            if self.once and await self._idle():
                return
            self.state.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.state.wake.wait(), 1.0)

    def _job_ended(self, task: asyncio.Task[None]) -> None:
        for job_id, running in list(self.state.running.items()):
            if running is task:
                del self.state.running[job_id]
        self.state.wake.set()

    async def _idle(self) -> bool:
        """--once: nothing running or settling, and nothing queued that may run within 30 s.

        Jobs put back for minutes (retry rounds) or held by a refused key are left queued.
        """
        if self.state.running or self.intake.settling():
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
                await self.db.write_async(
                    self._requeuer(job_id, "voxbatch stopped before it finished")
                )
            raise
        except AuthError as exc:
            self.keys.pause_for_key(exc)
            reason = f"waiting: {self.keys.auth_pause_message()}"
            await self.db.write_through_faults(self._requeuer(job_id, reason))
        except Exception as exc:
            await self._job_failed(job_id, exc)
        finally:
            self._end_probe(job_id)

    @staticmethod
    def _requeuer(job_id: int, reason: str) -> Callable[[Session], None]:
        def requeue(session: Session) -> None:
            queue.requeue(session, session.get_one(Job, job_id), reason=reason)

        return requeue

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
        if not bought_here:
            linked = await self.db.write_through_faults(
                lambda session: self.admission.resolve_duplicate(session, job_id)
            )
            if linked is None:
                return  # waits for the copy that is paying
            if not linked:
                await self.pipeline.transcribe(job_id, path, box.profile)
                self.breaker.success()
        written = await self.db.run(self.pipeline.write_results, job_id, box.profile, out_dir)
        written += await self.pipeline.summarize(job_id, box.profile, out_dir, written)
        await self.filing.file_original(job_id, JobState.done, written=written)

    async def _job_failed(self, job_id: int, exc: Exception) -> None:
        if isinstance(exc, StoreError):
            # The store's fault, not the job's or the provider's: no round spent.
            reason = f"waiting: {one_line(exc)}"
            await self.db.write_through_faults(self._requeuer(job_id, reason))
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
