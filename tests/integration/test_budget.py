"""Spend control: estimates follow the price table; at a cap new jobs wait, never fail."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from voxbatch.accounting import budget
from voxbatch.accounting.budget import estimate_chat_usd
from voxbatch.accounting.prices import stt_charge, tts_charge
from voxbatch.config import InboxProfile, Settings
from voxbatch.emulator import Emulator
from voxbatch.media.audio import probe
from voxbatch.media.ffmpeg import find_ffmpeg
from voxbatch.process import ProcessRun
from voxbatch.stages.pipeline import Pipeline
from voxbatch.store import jobs as store_jobs
from voxbatch.store.db import Database, open_database
from voxbatch.store.models import ApiCall, Job, JobState

NOW = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
STT = "voxtral-mini-transcribe-realtime-2602"


def settings_with(home: Path, **sections: Any) -> Settings:
    return Settings.model_validate({"home": str(home), **sections})


@pytest.fixture
def db(isolated_env: Path) -> Iterator[Database]:
    with open_database(isolated_env / "voxbatch.db") as database:
        yield database


def test_estimate_is_audio_minutes_times_price_plus_summary(isolated_env: Path) -> None:
    settings = settings_with(isolated_env)
    plain = InboxProfile()
    assert budget.estimate_job_cost(settings, plain, 90.2) == Decimal("0.0091")  # 91 s
    unknown = budget.estimate_job_cost(settings, plain, None)
    assert unknown == stt_charge(settings.prices, STT, budget.ASSUMED_AUDIO_SECONDS).cost_usd
    summary = InboxProfile(summary=True)
    with_summary = budget.estimate_job_cost(settings, summary, 600)
    chat = estimate_chat_usd(settings, 600 * 16, summary.summary_prompt)
    tts = tts_charge(settings.prices, "voxtral-mini-tts-2603", 1500).cost_usd
    assert with_summary == Decimal("0.06") + chat + tts
    assert chat > 0 and tts == Decimal("0.024")
    # A ten-hour file needs several parts: the estimate grows with them.
    assert estimate_chat_usd(settings, 36_000 * 16, "p") > 10 * estimate_chat_usd(
        settings, 3_600, "p"
    )


def test_periods_are_utc_days_and_months() -> None:
    late = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert budget.next_day(late) == datetime(2027, 1, 1, tzinfo=UTC)
    assert budget.next_month(late) == datetime(2027, 1, 1, tzinfo=UTC)
    assert budget.month_start(NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    from zoneinfo import ZoneInfo

    tokyo = datetime(2026, 11, 25, 8, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # still the 24th UTC
    assert budget.day_start(tokyo) == datetime(2026, 11, 24, tzinfo=UTC)


def test_usd_in_sentences() -> None:
    assert budget.usd(Decimal("0.5")) == "$0.50"
    assert budget.usd(Decimal("0.000123")) == "$0.000123"
    assert budget.usd(Decimal(0)) == "$0.00"
    assert budget.usd(Decimal(10)) == "$10.00"


def _job(session: Session, n: int, inbox: str = "inbox") -> Job:
    return store_jobs.create_job(
        session,
        content_sha256=f"{n:064x}",
        source_path=f"/in/{n}.wav",
        size_bytes=1,
        inbox=inbox,
        output_dir=None,
        primary=None,
    )


def _pay(session: Session, job_id: int, cost: str, at: datetime) -> None:
    session.add(
        ApiCall(
            job_id=job_id,
            kind="stt",
            model=STT,
            outcome="ok",
            cost_usd=Decimal(cost),
            started_at=at,
        )
    )


def test_running_jobs_count_so_the_cap_holds_and_nobody_fails(
    db: Database, isolated_env: Path
) -> None:
    settings = settings_with(isolated_env, budget={"daily_usd": "0.011"})
    profile = InboxProfile()
    with db.write() as session:
        jobs = [_job(session, n) for n in range(3)]
        # One claim pass, in order; an admitted job starts running before the next is looked at.
        decisions = []
        for job in jobs:
            held = budget.admit(session, settings, profile, job, audio_seconds=100, now=NOW)
            if held is None:
                store_jobs.set_state(session, job, JobState.streaming)
            decisions.append(held)
        assert decisions[0] is None
    estimate = Decimal("0.010")  # 100 s at $0.006/min
    for waiting in decisions[1:]:
        assert waiting is not None
        reason, until = waiting
        assert until == datetime(2026, 11, 25, tzinfo=UTC)
        assert reason == (
            "daily cap $0.011 reached: $0.00 spent today + $0.01 expected from running jobs "
            "+ $0.01 estimated for this job; waits until 2026-11-25 00:00 UTC"
        )
    with db.write() as session:
        states = [(j.state, j.stage) for j in session.exec(select(Job)).all()]
        assert states == [("streaming", None), ("queued", "budget"), ("queued", "budget")]
        # Held again on the next pass: the reason is not repeated in the history.
        job1 = session.get_one(Job, jobs[1].id)
        budget.admit(session, settings, profile, job1, audio_seconds=100, now=NOW)
        waits = [e for e in store_jobs.events_for(session, job1.id or 0) if e.kind == "waiting"]
        assert len(waits) == 1
        assert job1.wait_reason == waits[0].detail

        # The first job finishes having spent a little less than estimated: still no room.
        _pay(session, jobs[0].id or 0, "0.0095", NOW)
        store_jobs.set_state(session, session.get_one(Job, jobs[0].id), JobState.done)
        assert budget.outstanding(session) == 0
        assert budget.spent(session, budget.day_start(NOW)) == Decimal("0.0095")
        waiting = budget.admit(session, settings, profile, job1, audio_seconds=100, now=NOW)
        assert waiting is not None and "$0.0095 spent today" in waiting[0]

        # Tomorrow the daily cap has room again.
        tomorrow = datetime(2026, 11, 25, 0, 0, 1, tzinfo=UTC)
        assert budget.wait_reason(session, settings, profile, estimate, tomorrow) is None

        # Raising the cap lets both run today.
        raised = settings_with(isolated_env, budget={"daily_usd": "0.05"})
        for job in jobs[1:]:
            fresh = session.get_one(Job, job.id)
            assert budget.admit(session, raised, profile, fresh, audio_seconds=100, now=NOW) is None
            assert fresh.stage is None
            store_jobs.set_state(session, fresh, JobState.claimed)
        assert budget.outstanding(session) == Decimal("0.020")
        assert JobState.failed not in {j.state for j in session.exec(select(Job)).all()}


def test_monthly_and_per_inbox_caps(db: Database, isolated_env: Path) -> None:
    settings = settings_with(
        isolated_env,
        budget={"monthly_usd": "1"},
        inbox=[{"path": "a", "budget_daily_usd": "0.1"}, {"path": "b"}],
    )
    a, b = settings.inbox
    with db.write() as session:
        spender = _job(session, 1, inbox="a")
        _pay(session, spender.id or 0, "0.09", NOW)
        _pay(session, spender.id or 0, "0.5", datetime(2026, 11, 2, tzinfo=UTC))
        _pay(session, spender.id or 0, "7", datetime(2026, 10, 31, tzinfo=UTC))  # last month
        small = Decimal("0.02")
        reason = budget.wait_reason(session, settings, a, small, NOW)
        assert reason is not None and reason[0].startswith("inbox a daily cap $0.10 reached")
        assert budget.wait_reason(session, settings, "b", small, NOW) is None  # by name
        assert budget.wait_reason(session, settings, b, Decimal("0.4"), NOW) is None
        monthly = budget.wait_reason(session, settings, b, Decimal("0.42"), NOW)
        assert monthly is not None
        assert monthly[0].startswith("monthly cap $1.00 reached: $0.59 spent this month")
        assert monthly[1] == datetime(2026, 12, 1, tzinfo=UTC)
        # Both reached: the one that lasts longer is the one reported.
        both = budget.wait_reason(session, settings, a, Decimal("0.5"), NOW)
        assert both is not None and both[1] == datetime(2026, 12, 1, tzinfo=UTC)
        huge = budget.wait_reason(session, settings, b, Decimal(2), NOW)
        assert huge is not None and "this job alone exceeds the cap" in huge[0]


@pytest.mark.media
def test_daily_cap_against_the_emulator(
    emulator: Emulator, db: Database, isolated_env: Path, samples: list[Path], monkeypatch: Any
) -> None:
    """Three files, a daily cap just above one job's cost: one runs, two wait, none fails."""
    monkeypatch.setenv("MISTRAL_API_KEY", "test-key-0123456789")
    clips = samples[:3]
    durations = [asyncio.run(probe(c, ffmpeg=find_ffmpeg())).duration_seconds for c in clips]
    base = {"home": str(isolated_env), "mistral": {"base_url": emulator.base_url}}
    profile = InboxProfile()
    first = budget.estimate_job_cost(settings_with(isolated_env), profile, durations[0])
    settings = Settings.model_validate({**base, "budget": {"daily_usd": str(first * 11 / 10)}})
    outbox = isolated_env / "outbox"

    def claim_pass(settings: Settings, pending: list[int]) -> dict[int, str]:
        """What a daemon pass does: check each waiting file's estimate, run what may start."""
        waiting = {}
        for i in pending:
            estimate = budget.estimate_job_cost(settings, profile, durations[i])
            with db.read() as session:
                held = budget.wait_reason(session, settings, profile, estimate, datetime.now(UTC))
            if held is not None:
                waiting[i] = held[0]
                continue
            pipeline = Pipeline.open(settings, db)
            (outcome,) = asyncio.run(
                ProcessRun(pipeline).process_paths([clips[i]], profile=profile, out_dir=outbox)
            )
            assert outcome.ok and outcome.cost_usd <= estimate
        return waiting

    waiting = claim_pass(settings, [0, 1, 2])
    assert sorted(waiting) == [1, 2]
    assert all(
        r.startswith(f"daily cap {budget.usd(first * 11 / 10)} reached") for r in waiting.values()
    )
    assert len(emulator.records.sessions) == 1
    with db.read() as session:
        assert [j.state for j in store_jobs.list_jobs(session)] == ["done"]
        assert budget.spent(session, budget.day_start(datetime.now(UTC))) == first

    raised = Settings.model_validate({**base, "budget": {"daily_usd": "1"}})
    assert claim_pass(raised, sorted(waiting)) == {}
    assert len(emulator.records.sessions) == 3
    with db.read() as session:
        assert [j.state for j in store_jobs.list_jobs(session)] == ["done"] * 3
    # Billed: whole seconds of the audio each session received. The lengths ffmpeg declares are
    # close to it, not equal (ffmpeg 5.1 counts an mp3's encoder padding: 6.06 s, not 5.99 s).
    received = [s.total_bytes / 32_000 for s in emulator.records.sessions]
    for declared, got in zip(durations, received, strict=True):
        assert declared is not None and abs(declared - got) < 0.1, (declared, got)
    expected = sum(
        (stt_charge(raised.prices, STT, math.ceil(r)).cost_usd for r in received), Decimal(0)
    )
    with db.read() as session:
        assert budget.spent(session, budget.day_start(datetime.now(UTC))) == expected
