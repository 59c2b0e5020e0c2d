"""Costs follow the dated price table exactly, in Decimal."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxbatch.accounting.prices import chat_charge, format_usd, stt_charge, tts_charge
from voxbatch.config import PriceTable, Settings
from voxbatch.errors import ConfigError

PRICES = Settings(home="/tmp").prices  # type: ignore[arg-type]


def test_stt_per_audio_minute() -> None:
    charge = stt_charge(PRICES, "voxtral-mini-transcribe-realtime-2602", 90)
    assert charge.cost_usd == Decimal("0.009")
    assert "0.006/audio minute" in charge.price_basis and "2026-08-11" in charge.price_basis


def test_chat_and_tts() -> None:
    chat = chat_charge(PRICES, "mistral-small-latest", 1_000_000, 500_000)
    assert chat.cost_usd == Decimal("0.45")
    assert tts_charge(PRICES, "voxtral-mini-tts-2603", 1234).cost_usd == Decimal("0.019744")


def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no price"):
        stt_charge(PRICES, "nope", 1)
    with pytest.raises(ConfigError, match="per_audio_minute"):
        stt_charge(PRICES, "mistral-small-latest", 1)


@given(st.integers(min_value=0, max_value=10**7))
def test_stt_cost_is_exact(seconds: int) -> None:
    cost = stt_charge(PRICES, "voxtral-mini-transcribe-realtime-2602", seconds).cost_usd
    assert cost * 60 == Decimal("0.006") * seconds
    assert isinstance(cost, Decimal)


def test_format_usd_micro_dollars() -> None:
    assert format_usd(Decimal("0.0001")) == "$0.000100"


def test_price_table_flat_form() -> None:
    table = PriceTable.model_validate({"effective": "2027-02-03", "m": {"per_audio_minute": 1}})
    assert table.models["m"].per_audio_minute == Decimal(1)


SETTINGS = Settings(home="/tmp")  # type: ignore[arg-type]
STT, CHAT, TTS = (
    "voxtral-mini-transcribe-realtime-2602",
    "mistral-small-latest",
    "voxtral-mini-tts-2603",
)


def test_an_unknown_call_costs_the_most_it_can_have_billed_as_an_estimate() -> None:
    from voxbatch.accounting.paid_calls import unknown_call_cost
    from voxbatch.store.models import CallKind

    stt = unknown_call_cost(SETTINGS, CallKind.stt, STT, audio_seconds=89.2)
    assert (stt.audio_seconds, stt.cost_usd, stt.estimated) == (90, Decimal("0.009"), True)
    mistral = SETTINGS.mistral
    chat = unknown_call_cost(SETTINGS, CallKind.chat, CHAT, input_chars=10**9)
    assert chat.input_tokens == mistral.chat_context_tokens  # never more than one context
    assert chat.output_tokens == mistral.summary_max_tokens and chat.estimated
    tts = unknown_call_cost(SETTINGS, CallKind.tts, TTS, characters=1234)
    assert (tts.characters, tts.cost_usd, tts.estimated) == (1234, Decimal("0.019744"), True)


def test_a_dead_workers_calls_are_settled_as_unknown_calls(tmp_path: Path) -> None:
    from voxbatch.accounting.budget import ASSUMED_SUMMARY_CHARS
    from voxbatch.accounting.paid_calls import settle_abandoned_calls, unknown_call_cost
    from voxbatch.store import calls, jobs
    from voxbatch.store.db import open_database
    from voxbatch.store.models import CallKind

    db = open_database(tmp_path / "v.db")
    with db.write() as session:
        job = jobs.create_job(
            session, content_sha256="d" * 64, source_path="/x/a.wav", size_bytes=1,
            inbox=None, output_dir=None, primary=None,
        )  # fmt: skip
        jobs.start_streaming(session, job, 89.2, "probed")
        assert job.id is not None
        for kind, model in ((CallKind.stt, STT), (CallKind.tts, TTS)):
            calls.start_call(session, job_id=job.id, kind=kind, model=model)
        assert settle_abandoned_calls(session, SETTINGS, job)
        rows = calls.calls_for(session, job.id)
    expected = [
        unknown_call_cost(SETTINGS, CallKind.stt, STT, audio_seconds=89.2),
        unknown_call_cost(SETTINGS, CallKind.tts, TTS, characters=ASSUMED_SUMMARY_CHARS),
    ]
    assert [(r.outcome, r.cost_usd, r.estimated, r.audio_seconds, r.characters) for r in rows] == [
        ("abandoned", e.cost_usd, True, e.audio_seconds, e.characters) for e in expected
    ]
