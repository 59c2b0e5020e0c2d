"""The one retry policy for paid calls: bounded attempts, full jitter, never before Retry-After."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from voxbatch.config import DaemonSettings
from voxbatch.errors import is_retryable


def provider_retrying(
    daemon: DaemonSettings, before_sleep: Callable[[RetryCallState], Awaitable[None] | None]
) -> AsyncRetrying:
    """`uniform(0, min(max, initial·2ⁿ))` between attempts, at least the server's Retry-After;
    only errors marked retryable are retried, and the last one is re-raised."""
    backoff = wait_random_exponential(multiplier=daemon.retry_initial_s, max=daemon.retry_max_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None) or 0.0
        return max(float(backoff(state)), float(retry_after))

    return AsyncRetrying(
        stop=stop_after_attempt(daemon.retry_attempts),
        wait=wait,
        retry=retry_if_exception(is_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
