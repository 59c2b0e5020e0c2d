"""The paid-call ledger: one api_call row per attempt of stt, chat and tts, opened before
money can be spent and settled with what it cost; and chat/speech calls' retries.

The row is committed as `started` before the request leaves, and finished with what the
answer says it cost. Retried: 429/5xx and connection failures before an answer. Not retried:
a timeout or a lost answer after the request was sent (the server may have done the work and
billed it), nor 4xx. The SDK's own retries stay off: this is the one place that decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Generic, TypeVar

from sqlmodel import Session
from tenacity import (
    RetryCallState,
)

from voxbatch.accounting.budget import ASSUMED_SUMMARY_CHARS
from voxbatch.accounting.prices import chat_charge, stt_charge, tts_charge
from voxbatch.config import DaemonSettings, Settings
from voxbatch.errors import StoreError, one_line
from voxbatch.prompts import tokens_for
from voxbatch.providers.http_errors import classify
from voxbatch.retries import provider_retrying
from voxbatch.store import calls, jobs, parts, transcripts
from voxbatch.store.db import Database
from voxbatch.store.models import (
    CallKind,
    Job,
)

T = TypeVar("T")


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
    audio_seconds: float | None = None


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


async def call_with_retries(
    db: Database,
    daemon: DaemonSettings,
    job_id: int | None,
    call: PaidCall[T],
    *,
    timeout_s: float,
) -> T:
    """Send `call`, retrying as the module says; every attempt leaves an api_call row."""

    async def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        detail = (
            f"{call.kind} attempt {state.attempt_number} failed ({one_line(exc)}); "
            f"retrying in {state.upcoming_sleep:.1f} s"
        )
        await db.write_through_faults(
            lambda session: jobs.add_event(session, "retry_scheduled", detail, job_id=job_id)
        )

    retrying = provider_retrying(daemon, before_sleep)
    async for attempt in retrying:
        with attempt:
            return await _attempt(db, job_id, call, timeout_s)
    raise AssertionError("unreachable: tenacity re-raises the last error")


async def _attempt(db: Database, job_id: int | None, call: PaidCall[T], timeout_s: float) -> T:
    call_id = await open_call(db, job_id=job_id, kind=call.kind, model=call.model)
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
        await close_call(db, call_id, outcome, settlement, one_line(exc, 500), stopping=exc)
        if failure is not None:
            raise failure.error from exc
        raise
    await close_call(db, call_id, "ok", call.settle(result), None)
    return result


async def open_call(
    db: Database,
    *,
    job_id: int | None,
    kind: str,
    model: str,
    also: Callable[[Session], None] | None = None,
) -> int:
    """The ledger row of one paid attempt (stt, chat or tts), committed `started` before any
    money can be spent; `also` joins the same transaction. While the store refuses the row,
    nothing is sent, so nothing is bought."""

    def start(session: Session) -> int | None:
        row = calls.start_call(session, job_id=job_id, kind=kind, model=model)
        if also is not None:
            also(session)
        return row.id

    call_id = await db.write_through_faults(start)
    assert call_id is not None
    return call_id


async def close_call(
    db: Database,
    call_id: int,
    outcome: str,
    settlement: Settlement,
    error_detail: str | None,
    *,
    also: Callable[[Session], None] | None = None,
    stopping: BaseException | None = None,
) -> None:
    """Settle a paid attempt with what it cost; `also` joins the same transaction.

    Retried through store faults: the server has answered (and billed), so its row is never
    lost. When voxbatch is stopping (`stopping` is a cancellation) it is tried once; a row
    left `started` is settled by the next start's recovery."""

    def finish(session: Session) -> None:
        settle_call(session, call_id, outcome, settlement, error_detail)
        if also is not None:
            also(session)

    if isinstance(stopping, asyncio.CancelledError | KeyboardInterrupt):
        with contextlib.suppress(StoreError):
            await asyncio.shield(db.write_async(finish))
        return
    await db.write_through_faults(finish)


def _nothing(call: PaidCall[T]) -> Settlement:
    """A refused request costs nothing; the row still names the price it would have used."""
    return Settlement(Decimal(0), call.uncertain().price_basis)


def settle_call(
    session: Session,
    call_id: int,
    outcome: str,
    settlement: Settlement,
    error_detail: str | None,
) -> None:
    """A paid attempt's row, finished with its outcome and what it cost."""
    # A Settlement's fields are finish_call's keywords, one for one.
    calls.finish_call(
        session, call_id, outcome=outcome, error_detail=error_detail, **asdict(settlement)
    )


def unknown_call_cost(
    settings: Settings,
    kind: str,
    model: str,
    *,
    audio_seconds: float | None = None,
    input_chars: int = 0,
    characters: int = ASSUMED_SUMMARY_CHARS,
) -> Settlement:
    """What a call that was sent but never answered may have cost: the most it can have
    billed, recorded as an estimate. stt: the audio sent (`audio_seconds`, whole seconds up);
    chat: `input_chars` read (at most one full context) and one full answer; tts: the
    `characters` spoken (a summary's assumed length when the text is not known)."""
    if kind == CallKind.chat:
        mistral = settings.mistral
        tokens_in = min(tokens_for(mistral, input_chars), mistral.chat_context_tokens)
        tokens_out = mistral.summary_max_tokens
        charge = chat_charge(settings.prices, model, tokens_in, tokens_out)
        return Settlement(
            charge.cost_usd,
            charge.price_basis,
            estimated=True,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
        )
    if kind == CallKind.tts:
        charge = tts_charge(settings.prices, model, characters)
        return Settlement(charge.cost_usd, charge.price_basis, True, characters=characters)
    seconds = math.ceil(audio_seconds or 0)
    charge = stt_charge(settings.prices, model, seconds)
    return Settlement(charge.cost_usd, charge.price_basis, True, audio_seconds=seconds)


def settle_abandoned_calls(session: Session, settings: Settings, job: Job) -> bool:
    """Close a dead worker's `started` calls; True if any was open (its result is unknown).

    Nobody knows how far a call got: an stt call may have sent the whole file (or the whole
    stretch of its part), a chat call read the whole transcript."""
    assert job.id is not None
    found = False
    for call in calls.calls_for(session, job.id):
        if call.outcome != "started" or call.id is None:
            continue
        found = True
        read = 0
        if call.kind == CallKind.chat:
            transcript = transcripts.transcript_for(session, job)
            read = len(transcript.text) if transcript else 0
        # A part's session could have sent its own stretch at most, not the whole file.
        span = parts.session_span(session, call.id, job)
        cost = unknown_call_cost(
            settings,
            call.kind,
            call.model,
            audio_seconds=_seen_seconds(
                job.audio_seconds if span is None else span, call.audio_seconds
            ),
            input_chars=read,
        )
        settle_call(
            session, call.id, "abandoned", cost, "its worker stopped before the call finished"
        )
    return found


def _seen_seconds(job_seconds: float | None, sent_seconds: float | None) -> float | None:
    """The whole file, or what the stream was last seen to have sent if that is more (a file
    whose header lied: see stages/overrun.py)."""
    if job_seconds is None and sent_seconds is None:
        return None
    return max(job_seconds or 0, sent_seconds or 0)
