"""A stream past its estimate: its spend so far counts against the caps, and is never lost."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session

from voxbatch.accounting import budget
from voxbatch.accounting.paid_calls import settle_abandoned_calls
from voxbatch.accounting.prices import stt_charge
from voxbatch.config import InboxProfile, Settings
from voxbatch.store import calls
from voxbatch.store import jobs as store_jobs
from voxbatch.store.db import Database, open_database
from voxbatch.store.models import ApiCall, Job, JobState, utcnow

STT = "voxtral-mini-transcribe-realtime-2602"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with open_database(tmp_path / "voxbatch.db") as database:
        yield database


def _streaming_job(session: Session, settings: Settings, seconds: float) -> tuple[Job, int]:
    job = store_jobs.create_job(
        session,
        content_sha256="a" * 64, source_path="/in/x.mp3", size_bytes=1, inbox=None,
        output_dir=None, primary=None,
    )  # fmt: skip
    job.audio_seconds = seconds
    assert budget.admit(session, settings, InboxProfile(), job, audio_seconds=seconds,
                        now=utcnow()) is None  # fmt: skip
    store_jobs.set_state(session, job, JobState.streaming)
    call = calls.start_call(session, job_id=job.id, kind="stt", model=STT)
    assert call.id is not None
    return job, call.id


def test_a_streams_provisional_spend_counts_and_the_growth_is_checked(
    db: Database, tmp_path: Path
) -> None:
    settings = Settings.model_validate({"home": str(tmp_path), "budget": {"daily_usd": "0.02"}})
    profile = InboxProfile()
    with db.write() as session:
        job, call_id = _streaming_job(session, settings, 65)
        assert job.id is not None
        assert budget.spent(session, budget.day_start(utcnow())) == 0
        sent = stt_charge(settings.prices, STT, 150).cost_usd
        calls.provisional_cost(session, call_id, sent, audio_seconds=150)
        session.flush()
        assert budget.spent(session, budget.day_start(utcnow())) == sent
        assert budget.outstanding(session) == 0  # spent past its estimate: nothing more expected
        fits = budget.overrun_reason(
            session, settings, profile, job.id, sent_seconds=150, expected_seconds=190,
            now=utcnow(),
        )  # fmt: skip
        assert fits is None  # 190 s cost $0.019
        crosses = budget.overrun_reason(
            session, settings, profile, job.id, sent_seconds=150, expected_seconds=215,
            now=utcnow(),
        )  # fmt: skip
        assert crosses is not None
        assert "runs past the 65 s it was estimated at" in crosses
        assert "daily cap $0.02 reached" in crosses


def test_an_abandoned_stream_is_charged_at_least_what_it_was_seen_to_send(
    db: Database, tmp_path: Path
) -> None:
    settings = Settings.model_validate({"home": str(tmp_path)})
    with db.write() as session:
        job, call_id = _streaming_job(session, settings, 65)  # the header's claim
        calls.provisional_cost(
            session, call_id, stt_charge(settings.prices, STT, 200).cost_usd, audio_seconds=200
        )
        session.flush()
        assert settle_abandoned_calls(session, settings, job)
        call = session.get_one(ApiCall, call_id)
        assert (call.outcome, call.audio_seconds) == ("abandoned", 200)
        assert call.cost_usd == Decimal("0.02")
