"""One paid HTTP call (chat or speech): retries, and a ledger row for every attempt.

The row is committed as `started` before the request leaves, and finished with what the
answer says it cost. Retried: 429/5xx and connection failures before an answer. Not retried:
a timeout or a lost answer after the request was sent (the server may have done the work and
billed it), nor 4xx. The SDK's own retries stay off: this is the one place that decides.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Generic, TypeVar

import httpx2
from mistralai.client import errors as sdk_errors
from sqlmodel import Session
from tenacity import (
    RetryCallState,
)

from voxbatch.accounting.budget import ASSUMED_SUMMARY_CHARS
from voxbatch.accounting.prices import chat_charge, stt_charge, tts_charge
from voxbatch.config import DaemonSettings, Settings
from voxbatch.errors import (
    RETRYABLE_STATUS,
    AnswerTimeoutError,
    AuthError,
    ProviderError,
    one_line,
    parse_retry_after,
)
from voxbatch.prompts import tokens_for
from voxbatch.retries import provider_retrying
from voxbatch.store import calls, jobs, transcripts
from voxbatch.store.db import Database
from voxbatch.store.models import (
    CallKind,
    Job,
)

T = TypeVar("T")

# Failures before any byte of the request can have reached the server: nothing was billed.
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx2.WriteError)
# The connection broke before an answer: retried (a reset), but the cost is uncertain.
_LOST = (httpx2.ReadError, httpx2.RemoteProtocolError)


@dataclass(frozen=True)
class Settlement:
    """What one attempt cost, for its api_call row."""

    cost_usd: Decimal
    price_basis: str
    estimated: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    characters: int | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class PaidCall(Generic[T]):
    """How to send one request and what it costs.

    `settle` prices a successful answer; `uncertain` prices a request that was sent but whose
    answer never came (what it would have cost, recorded as estimated).
    """

    kind: str
    model: str
    send: Callable[[], Awaitable[T]]
    settle: Callable[[T], Settlement]
    uncertain: Callable[[], Settlement]


@dataclass(frozen=True)
class _Failure:
    error: ProviderError
    outcome: str
    charged: bool  # whether the request may have been processed (and billed)


def classify(exc: BaseException, kind: str, timeout_s: float) -> _Failure | None:
    """The ProviderError a chat or speech failure becomes; None for errors that are bugs."""
    if isinstance(exc, sdk_errors.MistralError):
        status = exc.status_code
        detail = _detail(exc.body)
        if status in (401, 403):
            return _Failure(
                AuthError(
                    f"Mistral refused the API key for {kind} (HTTP {status})",
                    status=status,
                    hint="check MISTRAL_API_KEY (or the key file / systemd credential)",
                ),
                f"http_{status}",
                False,
            )
        return _Failure(
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
        return _Failure(
            ProviderError(f"cannot reach Mistral for {kind}: {one_line(exc)}", retryable=True),
            "connect_error",
            False,
        )
    if isinstance(exc, _LOST):
        return _Failure(
            ProviderError(
                f"the connection broke before the {kind} answer: {one_line(exc)}", retryable=True
            ),
            "connection_lost",
            True,
        )
    if isinstance(exc, httpx2.TimeoutException):
        return _Failure(
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
        return _Failure(
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


async def call_with_retries(
    db: Database,
    daemon: DaemonSettings,
    job_id: int | None,
    call: PaidCall[T],
    *,
    timeout_s: float,
) -> T:
    """Send `call`, retrying as the module says; every attempt leaves an api_call row."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        with db.write() as session:
            jobs.add_event(
                session,
                "retry_scheduled",
                f"{call.kind} attempt {state.attempt_number} failed ({one_line(exc)}); "
                f"retrying in {state.upcoming_sleep:.1f} s",
                job_id=job_id,
            )

    retrying = provider_retrying(daemon, before_sleep)
    async for attempt in retrying:
        with attempt:
            return await _attempt(db, job_id, call, timeout_s)
    raise AssertionError("unreachable: tenacity re-raises the last error")


async def _attempt(db: Database, job_id: int | None, call: PaidCall[T], timeout_s: float) -> T:
    with db.write() as session:
        row = calls.start_call(session, job_id=job_id, kind=call.kind, model=call.model)
        call_id = row.id
    assert call_id is not None
    try:
        result = await call.send()
    except BaseException as exc:
        failure = classify(exc, call.kind, timeout_s)
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
            outcome, charged = "cancelled", True
        elif failure is None:
            outcome, charged = "error", True
        else:
            outcome, charged = failure.outcome, failure.charged
        settlement = call.uncertain() if charged else _nothing(call)
        with db.write() as session:
            _finish(session, call_id, outcome, settlement, one_line(exc, 500))
        if failure is not None:
            raise failure.error from exc
        raise
    settlement = call.settle(result)
    with db.write() as session:
        _finish(session, call_id, "ok", settlement, None)
    return result


def _nothing(call: PaidCall[T]) -> Settlement:
    """A refused request costs nothing; the row still names the price it would have used."""
    return Settlement(Decimal(0), call.uncertain().price_basis)


def _finish(
    session: Session,
    call_id: int,
    outcome: str,
    settlement: Settlement,
    error_detail: str | None,
) -> None:
    # A Settlement's fields are finish_call's keywords, one for one.
    calls.finish_call(
        session, call_id, outcome=outcome, error_detail=error_detail, **asdict(settlement)
    )


def settle_abandoned_calls(session: Session, settings: Settings, job: Job) -> bool:
    """Close a dead worker's `started` calls; True if any was open (its result is unknown)."""
    assert job.id is not None
    found = False
    for call in calls.calls_for(session, job.id):
        if call.outcome != "started" or call.id is None:
            continue
        found = True
        seconds: int | None = None
        chars: int | None = None
        tokens: tuple[int | None, int | None] = (None, None)
        if call.kind == CallKind.chat:
            # At most one full context in and one full answer out: an upper estimate.
            transcript = transcripts.transcript_for(session, job)
            read = tokens_for(settings.mistral, len(transcript.text)) if transcript else 0
            tokens_in = min(read, settings.mistral.chat_context_tokens)
            tokens_out = settings.mistral.summary_max_tokens
            tokens = (tokens_in, tokens_out)
            charge = chat_charge(settings.prices, call.model, tokens_in, tokens_out)
        elif call.kind == CallKind.tts:
            chars = ASSUMED_SUMMARY_CHARS
            charge = tts_charge(settings.prices, call.model, chars)
        else:
            seconds = math.ceil(job.audio_seconds or 0)
            charge = stt_charge(settings.prices, call.model, seconds)
        calls.finish_call(
            session, call.id, outcome="abandoned", cost_usd=charge.cost_usd,
            price_basis=charge.price_basis, estimated=True, audio_seconds=seconds,
            input_tokens=tokens[0], output_tokens=tokens[1], characters=chars,
            error_detail="its worker stopped before the call finished",
        )  # fmt: skip
    return found
