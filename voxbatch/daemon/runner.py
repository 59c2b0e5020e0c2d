"""`voxbatch run`: watch the inboxes, claim ready files, process them, file the originals.

One event loop runs everything: the supervised watcher (hints), the intake (stability and
claim by move), the dispatcher (bounded concurrency, circuit breaker, key pause), and the
housekeeping (leases, recovery, worker heartbeat, sd_notify). Every original ends in exactly
one of done/, failed/ or quarantine/, or waits in work/ while its job is queued.

`Daemon` is the lifecycle only (signals, start-up repair, the supervised loops, the drain, the
exit code, SIGHUP's reload); `Daemon.open` does the start-up I/O and composes the parts, which
share a `DaemonState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlmodel import col, select

from voxbatch.accounting import budget
from voxbatch.config import Settings, load_settings
from voxbatch.daemon import recovery
from voxbatch.daemon.admission import Admission
from voxbatch.daemon.breaker import Breaker
from voxbatch.daemon.dispatch import Dispatcher
from voxbatch.daemon.filing import UNFILED, Filing
from voxbatch.daemon.housekeeping import Housekeeping
from voxbatch.daemon.keypause import KeyPause
from voxbatch.daemon.notify import Notifier
from voxbatch.daemon.regrowth import GrownOriginals
from voxbatch.daemon.reload import Reloader
from voxbatch.daemon.state import DaemonState
from voxbatch.errors import StoreError
from voxbatch.ingest.folders import Inbox, lock_home, prepare
from voxbatch.ingest.intake import Intake
from voxbatch.ingest.watch import Supervisor, needs_polling
from voxbatch.providers.base import TranscriberFactory
from voxbatch.providers.realtime import default_transcriber
from voxbatch.stages.pipeline import Pipeline
from voxbatch.store import queue, workers
from voxbatch.store.db import Database
from voxbatch.store.models import Job, JobState

log = logging.getLogger(__name__)
T = TypeVar("T")
SettingsLoader = Callable[[], Settings]


class Daemon:
    """The daemon's lifecycle over its parts; built by `open` (its constructor does no I/O)."""

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
        loader: SettingsLoader | None = None,
    ) -> None:
        self.settings = settings
        # SIGHUP reads the configuration again the way it was read at start.
        self.reloader = Reloader(
            self,
            loader
            or (
                lambda: load_settings(
                    config_file=settings.config_file, overrides={"home": str(settings.home)}
                )
            ),
        )
        self._watcher: asyncio.Task[None] | None = None
        self._watch_stop = asyncio.Event()
        self.polling = False
        self.db = db
        self.once = once
        self.tick_s = min(tick_s, max(0.05, settings.daemon.stable_seconds / 2))
        self.owner = owner
        self.notifier = notifier
        self.boxes = boxes
        self._lock = lock
        self.pipeline = pipeline
        self.state = state = DaemonState()
        self.breaker = Breaker(settings.daemon.breaker_threshold, settings.daemon.breaker_probe_s)
        self.intake = Intake(
            settings,
            db,
            boxes,
            ffmpeg=pipeline.ffmpeg,
            stop=state.stop,
            wake=state.wake_up,
            outcomes=state.outcomes,
            tick_s=self.tick_s,
        )
        self.keys = KeyPause(settings, db, pipeline, api_key=api_key, wake=state.wake_up)
        self.grown = GrownOriginals(settings, db, ffmpeg=pipeline.ffmpeg, wake=state.wake_up)
        self.dispatcher = Dispatcher(
            settings,
            db,
            boxes,
            state=state,
            pipeline=pipeline,
            breaker=self.breaker,
            admission=Admission(settings, boxes, pipeline),
            keys=self.keys,
            filing=Filing(settings, db, owner=owner, outcomes=state.outcomes),
            owner=owner,
            once=once,
            settling=self.intake.settling,
        )
        self.pipeline.on_connected = self.dispatcher.key_works
        self.housekeeping = Housekeeping(
            settings,
            db,
            state=state,
            notifier=notifier,
            breaker=self.breaker,
            keys=self.keys,
            owner=owner,
            tick_s=self.tick_s,
            sessions=pipeline.stt.sessions,
        )

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
        loader: SettingsLoader | None = None,
    ) -> Daemon:
        """The start-up I/O: make the folders, take the home lock, read the key, find ffmpeg
        (the Pipeline); then the parts. A VoxbatchError says why it cannot start."""
        owner = workers.owner_name()
        notifier = notifier or Notifier()
        boxes = prepare(settings)
        lock = lock_home(settings.home)
        try:
            api_key = settings.api_key()
            make_transcriber = transcriber or default_transcriber(settings)
            pipeline = Pipeline.open(settings, db, transcriber=make_transcriber, owner=owner)
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
                loader=loader,
            )
        except BaseException:
            os.close(lock)  # a start that fails holds no lock (its caller may try again)
            raise

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> int:
        """Until SIGTERM/SIGINT (or, with --once, until nothing is left to do). The exit code.

        SIGHUP reloads the configuration (`reload`)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self.reloader.wanted.set)
        try:
            return await self._run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
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
        self._watch_stop.set()
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
        orphans = recovery.set_aside_orphans
        for src, dst in await db.run(orphans, db, self.settings):
            log.warning("%s: no job knows this claimed original; set aside in %s", src, dst)
        for path in await db.run(recovery.clear_spool, db, self.settings):
            log.info("removed %s: the decoded audio of a job no longer running", path)
        await self.housekeeping.recover()
        await db.run(queue.recheck_held, db, budget.BUDGET_WAIT_STAGE, writes=True)
        await self.arm_watcher()
        # After the watcher started: nothing dropped in between is missed.
        await self.intake.rescan_off_loop()
        log.info(
            "voxbatch %s: watching %s (%s), %d worker(s)",
            "run --once" if self.once else "run",
            ", ".join(str(b.root) for b in self.boxes),
            "polling" if self.polling else "inotify",
            self.settings.daemon.concurrency,
        )
        helpers = [
            asyncio.create_task(self._supervised("intake", self.intake.run)),
            asyncio.create_task(self._supervised("housekeeping", self.housekeeping.run)),
            asyncio.create_task(self._supervised("watchdog", self.housekeeping.watchdog)),
            asyncio.create_task(self._supervised("reload", self.reloader.run)),
            asyncio.create_task(self._supervised("grown originals", self.grown.run)),
        ]
        self.notifier.ready(await self.housekeeping.status_line())
        try:
            await self._supervised("dispatch", self.dispatcher.run)
            await self._drain()
        finally:
            self.state.stop.set()
            self._watch_stop.set()
            watcher = self._watcher
            for task in helpers:
                task.cancel()
            for task in [*helpers, *([watcher] if watcher else [])]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(StoreError):  # a dead daemon's row is forgotten at start
                await self.db.run(workers.forget_worker, self.db, self.owner, writes=True)
        if self.state.fatal is not None:
            return self.state.FATAL_EXIT  # its reason was logged when it was found
        outcomes = self.state.outcomes
        summary = ", ".join(f"{n} {state}" for state, n in sorted(outcomes.items()))
        log.info("voxbatch stopped: %s", summary or "no jobs finished")
        if not self.once:
            return 0
        rounds_pending = await self.db.run(self._report_left_queued)
        # --once is for scripts: anything short of success says so, also a job that an earlier
        # run put back for a later round (this one found it not yet due).
        troubled = self.keys.paused or self.breaker.is_open
        unfinished = sum(outcomes.get(key, 0) for key in (JobState.failed, "requeued", UNFILED))
        return 1 if troubled or unfinished or rounds_pending else 0

    # --- the folder watcher and SIGHUP ---------------------------------------------------------

    async def arm_watcher(self) -> None:
        """(Re)start the watcher over the inboxes now configured (not with --once: it scans)."""
        folders = [b.root for b in self.boxes]
        self.polling = needs_polling(self.settings.daemon.watch_mode, folders)
        if self.once:
            return
        old, self._watcher = self._watcher, None
        if old is not None:
            # Its own stop event: watchfiles sets the event it was given when it is cancelled.
            self._watch_stop.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await old
        self._watch_stop = asyncio.Event()
        supervisor = Supervisor(
            folders,
            polling=self.polling,
            hint=self.intake.hint,
            rescan=self.intake.ask_rescan,
            shared=frozenset(b.root for b in self.boxes if b.profile.shared),
        )
        self._watcher = asyncio.create_task(supervisor.run(self._watch_stop))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(supervisor.started.wait(), 3.0)

    def _report_left_queued(self) -> int:
        """Log what is left in the queue; the number of jobs waiting for a retry round."""
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
        return sum(1 for job in left if job.requeues > 0)

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
