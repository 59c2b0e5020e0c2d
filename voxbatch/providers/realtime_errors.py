"""What a realtime session's failures mean: refused upgrades (status, Retry-After), the
server's error events, and a connection lost while sending."""

from __future__ import annotations

from mistralai.extra.exceptions import RealtimeTranscriptionException
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voxbatch.errors import (
    RETRYABLE_STATUS,
    AuthError,
    ProviderError,
    SessionLimitError,
    StreamIncompleteError,
    VoxbatchError,
    parse_retry_after,
)
from voxbatch.providers.http_errors import REFUSED_HINT, connection_refused


def _status_of(exc: BaseException) -> tuple[int | None, float | None]:
    """HTTP status and Retry-After of a refused websocket upgrade, found on the cause chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, InvalidStatus):
            response = seen.response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return response.status_code, retry_after
        seen = seen.__cause__ or seen.__context__
    return None, None


def connect_error(exc: RealtimeTranscriptionException, base_url: str = "") -> ProviderError:
    status, retry_after = _status_of(exc)
    if status in (401, 403):
        return AuthError(
            f"Mistral refused the API key (HTTP {status})",
            status=status,
            hint="check MISTRAL_API_KEY (or the key file / systemd credential) and try again",
        )
    if status == 429:
        # What the service answers for too many open sessions (and for the organisation's
        # rate limit): the caller's session limit handles it, not its retry attempts.
        return SessionLimitError(
            "Mistral refused the connection (HTTP 429): too many sessions",
            status=status,
            retry_after=retry_after,
            retryable=True,
        )
    if status is not None:
        return ProviderError(
            f"Mistral refused the connection (HTTP {status})",
            status=status,
            retry_after=retry_after,
            retryable=status in RETRYABLE_STATUS,
        )
    code = getattr(exc, "code", None)
    if code is not None:
        return server_error(code, str(exc))
    # Timeouts, resets, refused TCP connections: worth another attempt.
    if connection_refused(exc):
        return ProviderError(
            f"cannot connect to {base_url or 'the server'} (connection refused); "
            "check MISTRAL_BASE_URL",
            retryable=True,
            hint=REFUSED_HINT,
        )
    return ProviderError(f"cannot open a transcription session: {exc}", retryable=True)


def server_error(code: int | None, message: str) -> ProviderError:
    # Realtime error codes are undocumented: 4xx-like ones blame our request, others the server.
    retryable = code is None or code in RETRYABLE_STATUS or not (400 <= code < 500)
    return ProviderError(
        f"transcription error from server (code {code}): {message}",
        status=code,
        retryable=retryable,
    )


def sender_error(exc: BaseException | None) -> BaseException:
    if isinstance(exc, VoxbatchError):
        return exc  # the audio source failed: that is the real story
    if isinstance(exc, ConnectionClosed):
        return StreamIncompleteError(
            f"the transcription connection dropped while sending (close code {close_code(exc)})",
            retryable=True,
        )
    return ProviderError(f"sending audio failed: {exc!r}", retryable=True)


def close_code(exc: ConnectionClosed) -> int | None:
    frame = exc.rcvd or exc.sent
    return frame.code if frame is not None else 1006
