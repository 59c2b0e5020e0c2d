"""A circuit breaker for provider outages: stop claiming work, probe with backoff, resume."""

from __future__ import annotations

import time
from collections.abc import Callable


class Breaker:
    """Closed → (threshold failures in a row) → open → (probe interval) → one probe at a time.

    A probe's success closes it; a probe's failure reopens it with twice the interval.
    """

    def __init__(
        self,
        threshold: int,
        probe_s: float,
        *,
        max_probe_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.base_probe_s = probe_s
        self.max_probe_s = max_probe_s
        self.clock = clock
        self.failures = 0
        self.open_until: float | None = None
        self.interval = probe_s
        self.probing = False

    @property
    def is_open(self) -> bool:
        return self.open_until is not None

    def allow(self) -> bool:
        """May a new job start now? While open, only one probe after each interval."""
        if self.open_until is None:
            return True
        if self.probing or self.clock() < self.open_until:
            return False
        self.probing = True
        return True

    def success(self) -> None:
        self.failures = 0
        self.open_until = None
        self.probing = False
        self.interval = self.base_probe_s

    def failure(self) -> None:
        self.failures += 1
        if self.probing:
            self.probing = False
            self.interval = min(self.interval * 2, self.max_probe_s)
            self.open_until = self.clock() + self.interval
        elif self.open_until is None and self.failures >= self.threshold:
            self.open_until = self.clock() + self.interval

    def release(self) -> None:
        """A probe that ended without telling success from failure (cancelled, not provider)."""
        self.probing = False

    def describe(self) -> str:
        if self.open_until is None:
            return "ok"
        wait = max(0.0, self.open_until - self.clock())
        return (
            f"circuit open after {self.failures} provider failures in a row; "
            f"next probe in {wait:.0f} s"
        )
