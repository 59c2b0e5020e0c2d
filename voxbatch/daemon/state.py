"""What the daemon's parts share, passed to each explicitly (no part reaches into another)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class DaemonState:
    """The stop and wake events, the running jobs, the outcomes and whether it drains.

    `stop` is set once: no new claims, every loop ends. `wake` tells the dispatcher to look
    at the queue now rather than at its next tick. `running` maps a job's id to the task
    running it (the dispatcher adds and removes them; housekeeping renews their leases; the
    drain waits for them). `outcomes` counts the jobs' ends for the status line and the exit
    code.
    """

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    running: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    draining: bool = False
    # Why the daemon stops on its own (its environment broke under it, e.g. the database
    # file was deleted): `run` then exits with FATAL_EXIT, SPEC's config/environment error.
    fatal: str | None = None
    FATAL_EXIT: ClassVar[int] = 3

    def wake_up(self) -> None:
        self.wake.set()
