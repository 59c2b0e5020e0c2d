"""SIGHUP: which settings a running daemon can take on, and which wait for a restart.

The parts read their settings at each use for the keys listed live here; the others were
built into something at start (the API client, the stability tracker, the breaker, the
housekeeping timers, the database) and keep their old value until the daemon restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from voxbatch.accounting import budget
from voxbatch.accounting.prices import check_prices
from voxbatch.config import Settings
from voxbatch.errors import StoreError, VoxbatchError
from voxbatch.ingest.folders import Inbox, prepare
from voxbatch.store import queue

if TYPE_CHECKING:
    from voxbatch.daemon.runner import Daemon

log = logging.getLogger(__name__)

# Read by the dispatcher, the admission, the intake and the stages each time they are used.
LIVE_DAEMON_KEYS = frozenset(
    {
        "concurrency",
        "pace",
        "rescan_seconds",
        "drain_seconds",
        "retry_attempts",
        "retry_initial_s",
        "retry_max_s",
        "requeue_delay_s",
        "max_requeues",
        "review_above_usd",
        "extensions",
    }
)
# Whole sections taken as they are: the inboxes (folders and profiles) and the spend caps.
LIVE_SECTIONS = ("inbox", "budget")
# Not settings (where they came from): never reported as a change.
_NOT_COMPARED = {"config_file"}


@dataclass
class Reloaded:
    """The settings to run with now, what changed live, and what waits for a restart."""

    settings: Settings
    changed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def live_settings(old: Settings, new: Settings) -> Reloaded:
    """`old` with the live part of `new`: the inboxes, the caps and the live daemon keys."""
    changed: list[str] = []
    kept: list[str] = []
    for name in Settings.model_fields:
        if name in _NOT_COMPARED or name == "daemon":
            continue
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        if name in LIVE_SECTIONS:
            changed.extend(_differences(name, before, after))
        else:
            kept.extend(_differences(name, before, after))
    daemon_now: dict[str, Any] = {}
    for key in type(old.daemon).model_fields:
        before, after = getattr(old.daemon, key), getattr(new.daemon, key)
        if before == after:
            continue
        if key in LIVE_DAEMON_KEYS:
            daemon_now[key] = after
            changed.append(f"daemon.{key}")
        else:
            kept.append(f"daemon.{key}")
    settings = old.model_copy(
        update={
            "inbox": new.inbox,
            "budget": new.budget,
            "daemon": old.daemon.model_copy(update=daemon_now),
            "config_file": new.config_file,
        }
    )
    return Reloaded(settings, changed, kept)


def _differences(name: str, before: Any, after: Any) -> list[str]:
    """Dotted names of the keys that differ (one level into a section)."""
    if name == "inbox":
        old_paths = [str(p.path) for p in before]
        new_paths = [str(p.path) for p in after]
        notes = [f"inbox {p} added" for p in new_paths if p not in old_paths]
        notes += [f"inbox {p} removed" for p in old_paths if p not in new_paths]
        old_by_path = {str(p.path): p for p in before}
        notes += [
            f"inbox {p.path} profile"
            for p in after
            if str(p.path) in old_by_path and old_by_path[str(p.path)] != p
        ]
        return notes
    fields = getattr(type(before), "model_fields", None)
    if not fields:
        return [name]
    return [f"{name}.{key}" for key in fields if getattr(before, key) != getattr(after, key)] or [
        name
    ]


def check_reloadable(settings: Settings) -> list[Inbox]:
    """The inboxes of `settings`, their folders made; a VoxbatchError when they cannot run
    (overlapping folders, a summary profile whose models have no price)."""
    check_prices(settings)  # the same refusal as at start
    return prepare(settings)


class _Configured(Protocol):
    settings: Settings


class Reloader:
    """SIGHUP's work in a running daemon: read the configuration again, apply what may change."""

    def __init__(self, daemon: Daemon, loader: Callable[[], Settings]) -> None:
        self.daemon = daemon
        self.loader = loader
        self.wanted = asyncio.Event()

    async def run(self) -> None:
        while not self.daemon.state.stop.is_set():
            await self.wanted.wait()
            self.wanted.clear()
            if not self.daemon.state.stop.is_set():
                await self.reload()

    async def reload(self) -> bool:
        """Read the configuration again and take on what can change while running: inboxes
        (the watcher re-armed), their profiles, the spend caps, the live daemon keys. What
        cannot is logged and kept; a configuration that does not load changes nothing."""
        d = self.daemon
        log.info("SIGHUP: reloading the configuration")
        d.notifier.reloading()
        try:
            new = await asyncio.to_thread(self.loader)
            reloaded = live_settings(d.settings, new)
            boxes = await asyncio.to_thread(check_reloadable, reloaded.settings)
        except (VoxbatchError, OSError) as exc:
            message = exc.message if isinstance(exc, VoxbatchError) else str(exc)
            log.error("the configuration was not reloaded (keeping the old one): %s", message)
            d.notifier.ready(await d.housekeeping.status_line())
            return False
        for name in reloaded.kept:
            log.warning("%s changed: needs a restart, keeping the old value", name)
        folders_before = [b.root for b in d.boxes]
        self._apply(reloaded.settings, boxes)
        if [b.root for b in boxes] != folders_before:
            await d.arm_watcher()
            d.intake.ask_rescan()
        # Jobs held by a cap are looked at again now, not at their next recheck.
        with contextlib.suppress(StoreError):
            await d.db.run(queue.recheck_held, d.db, budget.BUDGET_WAIT_STAGE, writes=True)
        d.state.wake.set()
        log.info(
            "configuration reloaded: %s",
            ", ".join(reloaded.changed)
            if reloaded.changed
            else "nothing that applies live changed",
        )
        d.notifier.ready(await d.housekeeping.status_line())
        return True

    def _apply(self, settings: Settings, boxes: list[Inbox]) -> None:
        """Every part reads its settings and the shared inbox list at each use."""
        d = self.daemon
        d.settings = settings
        parts: tuple[_Configured, ...] = (
            d.intake,
            d.keys,
            d.grown,
            d.dispatcher,
            d.dispatcher.admission,
            d.dispatcher.filing,
            d.housekeeping,
            d.pipeline,
            d.pipeline.stt,
        )
        for part in parts:
            part.settings = settings
        d.boxes[:] = boxes  # the list the intake, dispatcher and admission share
