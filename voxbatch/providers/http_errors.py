"""Chat and speech over HTTP: which SDK and transport failures were billed, and the
ProviderError each becomes. No database, no prices: the ledger (accounting.paid_calls)
decides what an attempt costs from `charged`."""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass

import httpx2
from mistralai.client import errors as sdk_errors

from voxbatch.errors import (
    RETRYABLE_STATUS,
    AnswerTimeoutError,
    AuthError,
    ProviderError,
    one_line,
    parse_retry_after,
)

# Failures before any byte of the request can have reached the server: nothing was billed.
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx2.WriteError)
# The connection broke before an answer: retried (a reset), but the cost is uncertain.
_LOST = (httpx2.ReadError, httpx2.RemoteProtocolError)


# Nothing listens at the configured address: almost always a wrong URL or a stopped server.
REFUSED_HINT = (
    "check MISTRAL_BASE_URL (or mistral.base_url): is the server, or `voxbatch emulator`, "
    "listening there?"
)


def connection_refused(exc: BaseException) -> bool:
    """Whether a refused TCP connection lies on the exception's cause chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or (
            isinstance(seen, OSError) and seen.errno == errno.ECONNREFUSED
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(frozen=True)
class HttpFailure:
    error: ProviderError
    outcome: str
    charged: bool  # whether the request may have been processed (and billed)


def classify(exc: BaseException, kind: str, timeout_s: float) -> HttpFailure | None:
    """The ProviderError a chat or speech failure becomes; None for errors that are bugs."""
    if isinstance(exc, sdk_errors.MistralError):
        status = exc.status_code
        detail = _detail(exc.body)
        if status in (401, 403):
            return HttpFailure(
                AuthError(
                    f"Mistral refused the API key for {kind} (HTTP {status})",
                    status=status,
                    hint="check MISTRAL_API_KEY (or the key file / systemd credential)",
                ),
                f"http_{status}",
                False,
            )
        return HttpFailure(
            ProviderError(
                f"{kind} request failed: HTTP {status}" + (f": {detail}" if detail else ""),
                status=status,
                retry_after=parse_retry_after(exc.headers.get("retry-after")),
                retryable=status in RETRYABLE_STATUS,
            ),
            f"http_{status}",
            False,
        )
    if isinstance(exc, _NOT_SENT):
        refused = "; check MISTRAL_BASE_URL" if connection_refused(exc) else ""
        return HttpFailure(
            ProviderError(
                f"cannot reach Mistral for {kind}: {one_line(exc)}{refused}",
                retryable=True,
                hint=REFUSED_HINT if refused else "",
            ),
            "connect_error",
            False,
        )
    if isinstance(exc, _LOST):
        return HttpFailure(
            ProviderError(
                f"the connection broke before the {kind} answer: {one_line(exc)}", retryable=True
            ),
            "connection_lost",
            True,
        )
    if isinstance(exc, httpx2.TimeoutException):
        return HttpFailure(
            AnswerTimeoutError(
                f"no {kind} answer within {timeout_s:g} s",
                retryable=False,
                hint="not retried at once: the request may have been processed and billed; "
                "`voxbatch retry` resumes it",
            ),
            "timeout",
            True,
        )
    if isinstance(exc, sdk_errors.ResponseValidationError | sdk_errors.NoResponseError):
        return HttpFailure(
            ProviderError(f"unreadable {kind} answer: {one_line(exc)}", retryable=False),
            "invalid_response",
            True,
        )
    return None


def _detail(body: str | None) -> str:
    """The message inside Mistral's error body ({"message": ...} or {"detail": ...})."""
    if not body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return one_line(body, 200)
    if isinstance(data, dict):
        for key in ("message", "detail"):
            if isinstance(data.get(key), str):
                return one_line(data[key], 200)
    return one_line(body, 200)
