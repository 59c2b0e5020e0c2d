"""Spend control: what a job should cost, what was spent, and whether a new job must wait.

Periods are UTC calendar days and months (a daily cap resets at 00:00 UTC, a monthly one on
the 1st at 00:00 UTC). Spend is summed from the api_call rows (estimated ones included). A new
job's estimate is checked against each cap together with what running jobs are still expected
to spend; a stream that runs past its estimate checks again as it goes (stages/overrun.py), so
a cap is overshot by at most what a tenth of each running job's estimated audio plus one
message cost. At a cap jobs wait — they never fail — and are checked again on every pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, col, select

from voxbatch.accounting.prices import chat_charge, stt_charge, tts_charge
from voxbatch.config import InboxProfile, Settings
from voxbatch.prompts import framing_tokens, part_chars, summary_recipe, tokens_for
from voxbatch.store import calls, jobs, transcripts
from voxbatch.store.calls import record_estimate
from voxbatch.store.models import ACTIVE_STATES, ApiCall, CostEstimate, Job, JobState, Summary

# Assumptions of the estimate (see estimate_job_cost).
ASSUMED_AUDIO_SECONDS = 3600
TRANSCRIPT_CHARS_PER_SECOND = 16
ASSUMED_SUMMARY_CHARS = 1500

BUDGET_WAIT_STAGE = "budget"
# Opt-in memo in `session.info`: within one claim pass spend and running estimates cannot
# change, so each cap's figures are read once, not once per queued job.
PASS_MEMO = "voxbatch.budget.pass"


def _memo(session: Session, key: tuple[object, ...], compute: Callable[[], Decimal]) -> Decimal:
    memo = session.info.get(PASS_MEMO)
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def estimate_job_cost(
    settings: Settings, profile: InboxProfile, audio_seconds: float | None
) -> Decimal:
    """The expected cost of one job, in USD, from the price table.

    Assumptions, all on the generous side so that caps hold:
    - transcription bills whole seconds: ceil(audio_seconds) × the per-minute price / 60;
      an unknown length counts as ASSUMED_AUDIO_SECONDS (one hour) for the caps, but is
      never recorded as the job's estimate (see `admit`);
    - with `summary = true`, the transcript has TRANSCRIPT_CHARS_PER_SECOND characters per
      second of audio (fast speech is ~15), read at 4 characters per token, cut into parts
      as `summarize.part_chars` does, each part answered with the full `summary_max_tokens`
      and combined once more when there are several parts;
    - the spoken summary is ASSUMED_SUMMARY_CHARS characters (a few paragraphs).
    Duplicates of audio already bought cost nothing, but are estimated as new: the estimate
    is made before the content is known to be a copy.
    """
    return _transcription_estimate(settings, audio_seconds) + _summary_estimate(
        settings, profile, audio_seconds
    )


def _seconds(audio_seconds: float | None) -> int:
    return ASSUMED_AUDIO_SECONDS if audio_seconds is None else math.ceil(audio_seconds)


def _transcription_estimate(settings: Settings, audio_seconds: float | None) -> Decimal:
    model = settings.mistral.transcription_model
    return stt_charge(settings.prices, model, _seconds(audio_seconds)).cost_usd


def _summary_estimate(
    settings: Settings, profile: InboxProfile, audio_seconds: float | None
) -> Decimal:
    if not profile.summary:
        return Decimal(0)
    chars = _seconds(audio_seconds) * TRANSCRIPT_CHARS_PER_SECOND
    speech = tts_charge(settings.prices, settings.mistral.tts_model, ASSUMED_SUMMARY_CHARS)
    return estimate_chat_usd(settings, chars, profile.summary_prompt) + speech.cost_usd


def remaining_estimate(
    session: Session, settings: Settings, profile: InboxProfile, job: Job
) -> Decimal:
    """What `job` may still buy: the transcript unless this audio has one, and the summary
    stages unless they are saved (speech included) for this audio and prompt."""
    total = Decimal(0)
    if transcripts.transcript_for(session, job) is None:
        total += _transcription_estimate(settings, job.audio_seconds)
    if profile.summary:
        recipe = summary_recipe(settings, profile.summary_prompt)
        spoken = session.exec(
            select(Summary.id).where(
                Summary.content_sha256 == job.content_sha256,
                Summary.recipe == recipe,
                col(Summary.speech_audio).is_not(None),
            )
        ).first()
        if spoken is None:
            total += _summary_estimate(settings, profile, job.audio_seconds)
    return total


def inbox_name(profile: InboxProfile) -> str:
    """The name a profile's jobs carry in `job.inbox` (its path as configured)."""
    return str(profile.path)


def day_start(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def month_start(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def next_day(now: datetime) -> datetime:
    return day_start(now) + timedelta(days=1)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def spent(session: Session, since: datetime, inbox: str | None = None) -> Decimal:
    """What the api_call rows since `since` cost (of jobs from `inbox` when given)."""
    return _memo(session, ("spent", since, inbox), lambda: _spent(session, since, inbox))


def _spent(session: Session, since: datetime, inbox: str | None) -> Decimal:
    query = select(col(ApiCall.cost_usd)).where(col(ApiCall.started_at) >= since)
    if inbox is not None:
        query = query.join(Job, col(Job.id) == col(ApiCall.job_id)).where(Job.inbox == inbox)
    return sum((cost for cost in session.exec(query).all() if cost is not None), Decimal(0))


def outstanding(session: Session, inbox: str | None = None) -> Decimal:
    """What running jobs are still expected to spend: their estimates less what they spent."""
    return _memo(session, ("outstanding", inbox), lambda: _outstanding(session, inbox))


def _outstanding(session: Session, inbox: str | None) -> Decimal:
    query = (
        select(CostEstimate)
        .join(Job, col(Job.id) == col(CostEstimate.job_id))
        .where(col(Job.state).in_([s.value for s in ACTIVE_STATES]))
    )
    if inbox is not None:
        query = query.where(Job.inbox == inbox)
    rows = session.exec(query).all()
    estimates = {e.job_id: e.estimated_usd for e in rows}
    if not estimates:
        return Decimal(0)
    # Only what was spent since the estimate was made pays it off (a job estimated again after
    # a stopped stream must buy the whole transcript again).
    paid = calls.costs_since(session, {e.job_id: e.created_at for e in rows})
    return sum((max(Decimal(0), est - paid[job]) for job, est in estimates.items()), Decimal(0))


def usd(amount: Decimal) -> str:
    """Money for sentences: cents when whole, else up to the micro-dollar."""
    exact = amount.quantize(Decimal("0.000001")).normalize()
    text = f"{exact:f}"
    if "." not in text or len(text.split(".")[1]) < 2:
        text = f"{exact.quantize(Decimal('0.01')):f}"
    return f"${text}"


def wait_reason(
    session: Session,
    settings: Settings,
    profile_or_inbox_name: InboxProfile | str | None,
    estimate: Decimal,
    now: datetime,
) -> tuple[str, datetime] | None:
    """Why a job estimated at `estimate` may not start now, and when its period turns.

    None when it may start. Checks the global daily and monthly caps, then the inbox's own.
    When several caps are reached, the one that lasts longest is reported.
    """
    profile = _profile(settings, profile_or_inbox_name)
    inbox = inbox_name(profile) if profile is not None else None
    caps: list[tuple[str, Decimal, datetime, datetime, str | None]] = [
        ("daily cap", settings.budget.daily_usd, day_start(now), next_day(now), None),
        ("monthly cap", settings.budget.monthly_usd, month_start(now), next_month(now), None),
    ]
    if profile is not None:
        caps += [
            (
                f"inbox {inbox} daily cap",
                profile.budget_daily_usd,
                day_start(now),
                next_day(now),
                inbox,
            ),
            (
                f"inbox {inbox} monthly cap",
                profile.budget_monthly_usd,
                month_start(now),
                next_month(now),
                inbox,
            ),
        ]
    found: tuple[str, datetime] | None = None
    for name, cap, start, until, scope in caps:
        if cap <= 0:
            continue
        used = spent(session, start, scope)
        running = outstanding(session, scope)
        if used + running + estimate <= cap:
            continue
        period = "today" if start == day_start(now) else "this month"
        parts = [f"{usd(used)} spent {period}"]
        if running:
            parts.append(f"{usd(running)} expected from running jobs")
        parts.append(f"{usd(estimate)} estimated for this job")
        reason = (
            f"{name} {usd(cap)} reached: {' + '.join(parts)}; "
            f"waits until {until:%Y-%m-%d %H:%M} UTC"
        )
        if estimate > cap:
            reason += " (this job alone exceeds the cap: raise the cap to let it run)"
        if found is None or until > found[1]:
            found = (reason, until)
    return found


def _profile(settings: Settings, ref: InboxProfile | str | None) -> InboxProfile | None:
    if ref is None or isinstance(ref, InboxProfile):
        return ref
    for profile in settings.inbox:
        if inbox_name(profile) == ref:
            return profile
    return None


def hold_for_budget(session: Session, job: Job, reason: str) -> None:
    """Mark a queued job as waiting for the budget (stage `budget`); its history says why,
    once per distinct reason (`status` and `why` read `job.wait_reason`)."""
    jobs.hold(session, job, reason, stage=BUDGET_WAIT_STAGE)


def admit(
    session: Session,
    settings: Settings,
    profile: InboxProfile,
    job: Job,
    *,
    audio_seconds: float | None,
    now: datetime,
    estimate: Decimal | None = None,
) -> tuple[str, datetime] | None:
    """The budget check at claim time: hold the job and return why, or record its estimate.

    Run it in the claim transaction, before the job leaves `queued`: with the estimate
    recorded, the next claim counts this job as running.
    """
    assert job.id is not None
    if estimate is None:
        estimate = estimate_job_cost(settings, profile, audio_seconds)
    waiting = wait_reason(session, settings, profile, estimate, now) if estimate else None
    if waiting is not None:
        hold_for_budget(session, job, waiting[0])
        return waiting
    jobs.end_hold(session, job, BUDGET_WAIT_STAGE)
    if not estimate:
        return None  # nothing left to buy (a copy, or a job resumed after its last stage)
    if audio_seconds is None:
        return None  # a length never known has no estimate: the cap check assumed an hour
    record_estimate(
        session,
        job.id,
        estimate,
        audio_seconds=audio_seconds,
        basis=f"prices effective {settings.prices.effective.isoformat()}",
    )
    return None


def overrun_reason(
    session: Session,
    settings: Settings,
    profile: InboxProfile,
    job_id: int,
    *,
    sent_seconds: float,
    expected_seconds: float,
    now: datetime,
) -> str | None:
    """Why a stream that ran past its estimate must stop before `expected_seconds` of audio;
    None when the job's cost at that length still fits under every cap.

    The job already counts against the caps at the larger of its estimate and what it spent
    since (its open call's provisional charge included): only the growth is checked.
    """
    recorded = calls.estimate_for(session, job_id)
    if recorded is None:
        return None
    paid = calls.costs_since(session, {job_id: recorded.created_at})[job_id]
    counted = max(recorded.estimated_usd, paid)
    growth = estimate_job_cost(settings, profile, expected_seconds) - counted
    if growth <= 0:
        return None
    found = wait_reason(session, settings, profile, growth, now)
    if found is None:
        return None
    estimated = recorded.audio_seconds or 0
    return (
        f"its audio runs past the {estimated:.0f} s it was estimated at (stopped after "
        f"{sent_seconds:.0f} s; {usd(growth)} more would be needed to go on): {found[0]}"
    )


def hold_past_estimate(
    session: Session, job: Job, reason: str, *, expected_seconds: float, recheck_s: float
) -> None:
    """The job whose stream stopped at a cap waits for the budget; its estimate is dropped,
    to be made again for its new length when it is let start again."""
    assert job.id is not None
    calls.drop_estimate(session, job.id)
    until = datetime.now(UTC) + timedelta(seconds=recheck_s)
    jobs.hold_past_estimate(
        session,
        job,
        reason,
        stage=BUDGET_WAIT_STAGE,
        audio_seconds=max(expected_seconds, job.audio_seconds or 0),
        not_before=until,
    )


def budget_summary(session: Session, settings: Settings, now: datetime) -> dict[str, object]:
    """Spend today and this month against the caps, for `status`."""
    return {
        "spent_today_usd": spent(session, day_start(now)),
        "spent_month_usd": spent(session, month_start(now)),
        "daily_cap_usd": settings.budget.daily_usd or None,
        "monthly_cap_usd": settings.budget.monthly_usd or None,
        "running_expected_usd": outstanding(session),
        "waiting_for_budget": session.exec(
            select(sa.func.count())
            .select_from(Job)
            .where(Job.state == JobState.queued, Job.stage == BUDGET_WAIT_STAGE)
        ).one(),
    }


def estimate_chat_usd(settings: Settings, transcript_chars: int, prompt: str) -> Decimal:
    """What summarising a transcript of this length should cost (see budget.py)."""
    mistral = settings.mistral
    limit = part_chars(mistral, prompt)
    parts = max(1, math.ceil(transcript_chars / limit))
    per_call_overhead = framing_tokens(mistral, prompt)
    input_tokens = tokens_for(mistral, transcript_chars) + parts * per_call_overhead
    output_tokens = mistral.summary_max_tokens * (parts + (1 if parts > 1 else 0))
    if parts > 1:  # the combining call reads the part summaries again
        input_tokens += mistral.summary_max_tokens * parts + per_call_overhead
    return chat_charge(settings.prices, mistral.chat_model, input_tokens, output_tokens).cost_usd
