"""Costs follow the dated price table exactly, in Decimal."""

from __future__ import annotations

from decimal import Decimal

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
