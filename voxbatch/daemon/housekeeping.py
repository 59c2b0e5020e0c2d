"""Housekeeping: leases, recovery of dead workers' jobs, the worker row, sd_notify, watchdog."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from decimal import Decimal

from sqlmodel import Session, func, select

from voxbatch.accounting import budget
from voxbatch.accounting.prices import format_usd
from voxbatch.config import Settings
from voxbatch.daemon import recovery
from voxbatch.daemon.breaker import Breaker
from voxbatch.daemon.keypause import KeyPause
from voxbatch.daemon.notify import Notifier
from voxbatch.daemon.state import DaemonState
from voxbatch.errors import StoreError
from voxbatch.stages import journal
from voxbatch.stages.sessions import SessionLimit
from voxbatch.store import queue, workers
from voxbatch.store.db import Database
from voxbatch.store.models import Job, JobState, utcnow

log = logging.getLogger(__name__)


class Housekeeping:
    """The periodic chores beside the dispatch, and the one-line status they report."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        state: DaemonState,
        notifier: Notifier,
        breaker: Breaker,
        keys: KeyPause,
        owner: str,
        tick_s: float,
        sessions: SessionLimit | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.state = state
        self.notifier = notifier
        self.breaker = breaker
        self.keys = keys
        self.owner = owner
        self.tick_s = tick_s
        # Replayed once, at the first recovery: later, its entries are this daemon's own.
        self._journal_replayed = False
        self.sessions = sessions

    async def recover(self) -> None:
        """Dead workers' jobs back to the queue (or to review); first, at start, the
        transcriptions a killed daemon journalled but never recorded, so that their calls
        are not settled as abandoned and their audio not bought again."""
        try:
            if not self._journal_replayed:
                home = self.settings.home
                for job_id in await self.db.run(journal.replay, self.db, home, writes=True):
                    log.warning(
                        "job %s: its transcription, finished before voxbatch stopped, is "
                        "recorded from the journal",
                        job_id,
                    )
                self._journal_replayed = True
            found = await self.db.run(
                recovery.recover_leases, self.db, self.settings, self.owner, writes=True
            )
        except StoreError:
            return  # in health: tried again at the next round
        for item in found:
            log.warning("job %s: its worker stopped; %s", item.job_id, item.action)
        self.state.wake.set()

    async def watchdog(self) -> None:
        """systemd's watchdog is fed by nothing else: a slow store never starves it."""
        while True:
            interval = self.notifier.watchdog_interval
            if interval is None:
                return
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def run(self) -> None:
        daemon = self.settings.daemon
        last: dict[str, float] = {}

        def due(name: str, every: float) -> bool:
            now = time.monotonic()
            if now - last.get(name, 0.0) >= every:
                last[name] = now
                return True
            return False

        db = self.db
        while True:
            if due("lease", daemon.lease_seconds / 3):
                with contextlib.suppress(StoreError):
                    await db.run(queue.renew_leases, db, self.owner, list(self.state.running),
                                 daemon.lease_seconds, writes=True)  # fmt: skip
            if due("recover", daemon.lease_seconds / 2):
                await self.recover()
            if due("status", 5.0) or (db.health.fault is not None and due("fault", 1.0)):
                status = await self.status_line()
                self.notifier.status(status)
                provider, detail = self.provider_state()
                with contextlib.suppress(StoreError):
                    await db.run(workers.beat, db, self.owner,
                                 state="draining" if self.state.draining else "running",
                                 provider=provider, detail=detail or status,
                                 writes=True)  # fmt: skip
            if self.keys.paused and due("key", 5.0):
                await self.keys.check_key()
            if due("database file", 2.0) and await self.database_gone():
                return
            await asyncio.sleep(min(1.0, self.tick_s * 4))

    async def database_gone(self) -> bool:
        """The database file deleted or replaced under us: stop at once (exit code 3).

        Nothing more is written and nothing moved: running jobs are cancelled where they are,
        their originals stay in work/, the inboxes' files stay in the inboxes.
        """
        problem = await asyncio.to_thread(self.db.file_problem)
        if problem is None:
            return False
        message = (
            f"{problem} while voxbatch was running; stopping now (what it wrote since is "
            "lost; the originals stay where they are: restore the database and start again)"
        )
        log.error("%s", message)
        self.db.lose(problem)
        self.state.fatal = message
        self.state.stop.set()
        self.state.wake.set()
        for task in list(self.state.running.values()):
            task.cancel()
        return True

    def provider_state(self) -> tuple[str, str]:
        if self.db.health.fault is not None:
            return "store_fault", self.db.health.describe()
        if self.keys.paused:
            return "paused", self.keys.auth_pause_message()
        if self.breaker.is_open:
            return "circuit_open", self.breaker.describe()
        if self.sessions is not None and self.sessions.limited:
            return "limited", self.sessions.describe()
        return "ok", ""

    async def status_line(self) -> str:
        def read(session: Session) -> tuple[int, Decimal]:
            queued = session.exec(
                select(func.count()).select_from(Job).where(Job.state == JobState.queued)
            ).one()
            return queued, budget.spent(session, budget.day_start(utcnow()))

        queued, spent = await self.db.read_async(read)
        provider, detail = self.provider_state()
        outcomes = self.state.outcomes
        text = (
            f"{queued} queued, {len(self.state.running)} running, "
            f"{outcomes.get(JobState.done, 0)} done, "
            f"{outcomes.get(JobState.failed, 0)} failed; "
            f"spent today {format_usd(spent)}"
        )
        return text if provider == "ok" else f"{text}; {detail}"
