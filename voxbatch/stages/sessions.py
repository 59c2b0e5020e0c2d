"""An adaptive limit on concurrent transcription sessions (AIMD, as TCP's congestion window).

A provider may allow fewer sessions than `daemon.concurrency`: it refuses the upgrade with 429.
Such a refusal sent no audio and cost nothing, so it is no failure of the file: the limit drops
(to the sessions still held by others, and by one at least), the refused job waits for a
session to end and asks again, without spending a retry attempt or a round. After `quiet_s`
without a refusal the limit rises by one, up to the configured concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable

from voxbatch.providers.realtime import StreamProgress

log = logging.getLogger(__name__)

QUIET_S = 60.0
# A session that delivered its result closes in the background: its slot is held until the
# server has seen the close (else the next connect races it), or at most this long.
CLOSE_GRACE_S = 3.0


class SessionLimit:
    """How many sessions may be open at once now: the ceiling, or less after refusals.

    `ceiling` is read at each use (`daemon.concurrency` may change on a reload).
    """

    def __init__(
        self,
        ceiling: Callable[[], int],
        *,
        quiet_s: float = QUIET_S,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ceiling = ceiling
        self.quiet_s = quiet_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self._limit: int | None = None  # None: not lowered, the ceiling
        self._changed_at = 0.0
        self.held = 0  # slots taken: sessions connecting or open
        self.refusals = 0  # in a row, since a session was last accepted
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def ceiling(self) -> int:
        return self._ceiling()

    @property
    def limit(self) -> int:
        """The limit now: one more than before for every quiet period since the last change."""
        ceiling = self.ceiling
        if self._limit is None:
            return ceiling
        now = self.clock()
        if now - self._changed_at >= self.quiet_s:
            self._limit += 1
            self._changed_at = now
            log.info(
                "session limit raised to %d of %d after %g s without a refusal",
                min(self._limit, ceiling), ceiling, self.quiet_s,
            )  # fmt: skip
            self._wake()
        if self._limit >= ceiling:
            self._limit = None
            return ceiling
        return self._limit

    @property
    def limited(self) -> bool:
        return self.limit < self.ceiling

    def describe(self) -> str:
        return (
            f"provider allows fewer sessions: running {self.limit} of {self.ceiling} "
            f"(HTTP 429 at connect); one more after {self.quiet_s:g} s without a refusal"
        )

    def refused(self, retry_after: float | None = None) -> float:
        """A session asked for by a slot holder was refused for the limit: lower the limit;
        the seconds the refused holder waits (then for a free slot) before asking again."""
        others = self.held - 1
        before = self.limit
        lowered = max(1, min(before - 1, others))
        self._changed_at = self.clock()
        if lowered < before:
            self._limit = lowered
            log.warning("%s", self.describe())
        self.refusals += 1
        # Full jitter, as the retry policy: uniform(0, min(max, initial·2ⁿ)).
        bound = min(self.max_backoff_s, self.backoff_s * 2 ** min(self.refusals - 1, 30))
        backoff = random.uniform(0, bound)
        return max(retry_after or 0.0, backoff)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[SessionSlot]:
        """Wait for room under the limit; the slot is given back when the session is over."""
        await self._acquire()
        slot = SessionSlot(self)
        try:
            yield slot
        finally:
            slot.leave()

    async def _acquire(self) -> None:
        loop = asyncio.get_running_loop()
        while self.held >= self.limit:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                # The limit also rises with time alone: look again every second.
                await asyncio.wait({waiter}, timeout=1.0)
            finally:
                self._waiters.remove(waiter)
        self.held += 1

    def _release(self) -> None:
        self.held -= 1
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)


class SessionSlot:
    """One holder's place under the limit, for one session (or one refused try)."""

    def __init__(self, limit: SessionLimit) -> None:
        self._limit = limit
        self._open = False
        self._released = False

    def watch(self, progress: StreamProgress) -> None:
        """Learn from the stream when the server accepted the session and when it closed."""
        told = progress.on_connected

        def connected() -> None:
            self._open = True
            self._limit.refusals = 0
            if told is not None:
                told()

        progress.on_connected = connected
        progress.on_closed = self._give_back

    def leave(self) -> None:
        if not self._open:
            self._give_back()
        else:  # still closing: given back when closed, or after the grace at the latest
            asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self._give_back)

    def _give_back(self) -> None:
        self._open = False
        if not self._released:
            self._released = True
            self._limit._release()
