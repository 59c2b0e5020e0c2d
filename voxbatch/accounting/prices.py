"""Prices applied to API usage. Money is Decimal from the price table to the report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from voxbatch.config import ModelPrice, PriceTable, Settings
from voxbatch.errors import ConfigError

MILLION = Decimal(1_000_000)
SIXTY = Decimal(60)


@dataclass(frozen=True)
class Charge:
    cost_usd: Decimal
    price_basis: str


def _price(prices: PriceTable, model: str) -> ModelPrice:
    try:
        return prices.models[model]
    except KeyError:
        raise ConfigError(
            f"no price for model {model!r} in the price table",
            hint=f'add [prices] "{model}" = {{ ... }} to the configuration',
        ) from None


def _basis(prices: PriceTable, model: str, rate: str) -> str:
    return f"{model} {rate} (prices effective {prices.effective.isoformat()})"


def stt_charge(prices: PriceTable, model: str, audio_seconds: Decimal | int) -> Charge:
    rate = _price(prices, model).per_audio_minute
    if rate is None:
        raise ConfigError(f"price table entry {model!r} has no per_audio_minute")
    cost = Decimal(audio_seconds) * rate / SIXTY
    return Charge(cost, _basis(prices, model, f"${rate}/audio minute"))


def chat_charge(prices: PriceTable, model: str, input_tokens: int, output_tokens: int) -> Charge:
    entry = _price(prices, model)
    if entry.per_million_input_tokens is None or entry.per_million_output_tokens is None:
        raise ConfigError(f"price table entry {model!r} has no token prices")
    cost = (
        Decimal(input_tokens) * entry.per_million_input_tokens
        + Decimal(output_tokens) * entry.per_million_output_tokens
    ) / MILLION
    rate = (
        f"${entry.per_million_input_tokens}/M input tokens, "
        f"${entry.per_million_output_tokens}/M output tokens"
    )
    return Charge(cost, _basis(prices, model, rate))


def tts_charge(prices: PriceTable, model: str, characters: int) -> Charge:
    rate = _price(prices, model).per_million_chars
    if rate is None:
        raise ConfigError(f"price table entry {model!r} has no per_million_chars")
    return Charge(Decimal(characters) * rate / MILLION, _basis(prices, model, f"${rate}/M chars"))


def check_prices(settings: Settings) -> None:
    """ConfigError unless every model the settings may pay for has a price (one without
    would be noticed only after paying for it)."""
    stt_charge(settings.prices, settings.mistral.transcription_model, 0)
    if any(p.summary for p in settings.inbox):
        chat_charge(settings.prices, settings.mistral.chat_model, 0, 0)
        tts_charge(settings.prices, settings.mistral.tts_model, 0)


def format_usd(amount: Decimal) -> str:
    """Six decimals: the micro-dollar is the unit people reconcile against."""
    return f"${amount.quantize(Decimal('0.000001'))}"


# Tokens a context_bias item may take of a session's window: a word or two of a few tokens
# each, plus separators (conservative: items are at most a few dozen characters).
BIAS_TOKENS_PER_CHAR = 0.5
AUDIO_TOKEN_S = 0.08  # an audio token is 80 ms (Voxtral 3)


def session_window_seconds(
    prices: PriceTable, model: str, context_bias: Sequence[str] = ()
) -> float | None:
    """The most audio one realtime session of `model` may take with this bias list (None:
    the table does not know its window)."""
    entry = prices.models.get(model)
    if entry is None or entry.session_window_seconds is None:
        return None
    bias_tokens = sum(2 + math.ceil(len(item) * BIAS_TOKENS_PER_CHAR) for item in context_bias)
    return max(0.0, entry.session_window_seconds - bias_tokens * AUDIO_TOKEN_S)
