"""Written summaries from the chat model, in parts when a transcript exceeds its context.

A transcript that fits is summarised in one call. A longer one is cut at paragraph, sentence
or word boundaries into parts that each fit (map), every part is summarised, and the part
summaries are combined (reduce) — again in parts if even they do not fit — so a ten-hour
transcript works. The summary is written in the transcript's language.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mistralai.client import Mistral
from mistralai.client.models import ChatCompletionResponse

from voxbatch.config import MistralSettings, Settings
from voxbatch.costs import chat_charge
from voxbatch.db import Database
from voxbatch.errors import ProviderError
from voxbatch.models import CallKind
from voxbatch.paid_calls import PaidCall, Settlement, call_with_retries

# Changing how prompts are built changes what a summary is: part of the recipe.
PROMPT_VERSION = "1"
# Room kept for the instructions and framing around each part, in tokens.
OVERHEAD_TOKENS = 256
MIN_PART_CHARS = 500
# Reduce rounds beyond this mean the part summaries do not get shorter: stop paying.
MAX_ROUNDS = 6


@dataclass(frozen=True)
class ChatSummary:
    text: str
    model: str
    parts: int  # parts the transcript was cut into (1 = it fitted)


def summary_recipe(settings: Settings, prompt: str) -> str:
    """What makes two summaries of the same transcript the same: model, prompt, prompt design."""
    key = "\x1f".join((PROMPT_VERSION, settings.mistral.chat_model, prompt))
    return hashlib.sha256(key.encode()).hexdigest()


def tokens_for(mistral: MistralSettings, chars: int) -> int:
    """Tokens assumed for this much text (`mistral.chat_chars_per_token`, kept cautious)."""
    return math.ceil(chars / mistral.chat_chars_per_token)


def framing_tokens(mistral: MistralSettings, prompt: str) -> int:
    """What one chat call carries besides transcript text: system message, prompt, labels."""
    return tokens_for(mistral, len(prompt) + len(_system(None)) + 200)


def part_chars(mistral: MistralSettings, prompt: str) -> int:
    """Most transcript characters one chat call may carry, from the model's context size."""
    instructions = framing_tokens(mistral, prompt)
    room = mistral.chat_context_tokens - mistral.summary_max_tokens - OVERHEAD_TOKENS - instructions
    return max(MIN_PART_CHARS, int(room * mistral.chat_chars_per_token))


_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"[.!?…。！？]\s"), re.compile(r"\s"))


def split_text(text: str, max_chars: int) -> list[str]:
    """Consecutive pieces of at most `max_chars`, cut at the best boundary in the last third."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > max_chars:
        window = rest[:max_chars]
        cut = max_chars
        for pattern in _BREAKS:
            ends = [m.end() for m in pattern.finditer(window) if m.end() >= max_chars * 2 // 3]
            if ends:
                cut = ends[-1]
                break
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return pieces


def _system(language: str | None) -> str:
    where = (
        f"the language of the transcript (ISO 639-1 code '{language}')"
        if language
        else "the same language as the transcript"
    )
    return (
        "You summarise transcripts of recorded speech accurately and concisely. "
        f"Always write in {where}, whatever language these instructions are in."
    )


def _messages(system: str, body: str, instruction: str) -> list[dict[str, Any]]:
    # The document first, the request after it: what long-context models follow best.
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{body}\n\n{instruction}"},
    ]


def _part_instruction(index: int, total: int) -> str:
    return (
        f"Above is part {index} of {total} of one transcript. Summarise this part in a "
        "paragraph, keeping names, figures, decisions and open questions."
    )


def _combine_instruction(prompt: str) -> str:
    return (
        "Above are summaries of consecutive parts of one transcript, in order. "
        f"Combine them into a single summary of the whole. {prompt}"
    )


class ChatSummarizer:
    """Map-reduce summaries through the SDK's chat completions, every attempt in the ledger."""

    def __init__(
        self, settings: Settings, db: Database, client: Mistral, *, job_id: int | None
    ) -> None:
        self.settings = settings
        self.db = db
        self.client = client
        self.job_id = job_id

    async def summarize(self, text: str, *, language: str | None, prompt: str) -> ChatSummary:
        mistral = self.settings.mistral
        limit = part_chars(mistral, prompt)
        system = _system(language)
        parts = split_text(text, limit)
        if len(parts) <= 1:
            summary = await self._complete(_messages(system, text.strip(), prompt))
            return ChatSummary(summary, mistral.chat_model, 1)
        pieces = [
            await self._complete(_messages(system, part, _part_instruction(i, len(parts))))
            for i, part in enumerate(parts, 1)
        ]
        for _ in range(MAX_ROUNDS):
            joined = "\n\n".join(f"Part {i}: {s}" for i, s in enumerate(pieces, 1))
            if len(joined) <= limit:
                combine = _messages(system, joined, _combine_instruction(prompt))
                final = await self._complete(combine)
                return ChatSummary(final, mistral.chat_model, len(parts))
            groups = split_text(joined, limit)
            pieces = [
                await self._complete(_messages(system, group, _combine_instruction("")))
                for group in groups
            ]
        raise ProviderError(
            f"the part summaries did not get shorter after {MAX_ROUNDS} rounds",
            hint="raise mistral.chat_context_tokens or shorten the summary prompt",
        )

    async def _complete(self, messages: list[dict[str, Any]]) -> str:
        mistral = self.settings.mistral
        model = mistral.chat_model
        prices = self.settings.prices
        prompt_chars = sum(len(m["content"]) for m in messages)

        async def send() -> ChatCompletionResponse:
            return await self.client.chat.complete_async(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=mistral.summary_max_tokens,
                timeout_ms=int(mistral.http_timeout_s * 1000),
            )

        def settle(response: ChatCompletionResponse) -> Settlement:
            usage = response.usage
            reported = usage is not None and bool(usage.prompt_tokens)
            if reported:
                input_tokens = usage.prompt_tokens or 0
                output_tokens = usage.completion_tokens or 0
            else:  # no usage: bill what the text suggests, and say it is an estimate
                input_tokens = tokens_for(mistral, prompt_chars)
                output_tokens = tokens_for(mistral, len(_reply(response)))
            charge = chat_charge(prices, model, input_tokens, output_tokens)
            return Settlement(
                charge.cost_usd,
                charge.price_basis,
                estimated=not reported,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                request_id=response.id,
            )

        def uncertain() -> Settlement:
            input_tokens = tokens_for(mistral, prompt_chars)
            charge = chat_charge(prices, model, input_tokens, mistral.summary_max_tokens)
            return Settlement(
                charge.cost_usd,
                charge.price_basis,
                estimated=True,
                input_tokens=input_tokens,
                output_tokens=mistral.summary_max_tokens,
            )

        response = await call_with_retries(
            self.db,
            self.settings.daemon,
            self.job_id,
            PaidCall(CallKind.chat, model, send, settle, uncertain),
            timeout_s=mistral.http_timeout_s,
        )
        reply = _reply(response).strip()
        if not reply:
            raise ProviderError("the chat model answered with an empty summary", retryable=True)
        return reply


def _reply(response: ChatCompletionResponse) -> str:
    message = response.choices[0].message if response.choices else None
    if message is None:
        return ""
    content = message.content
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content chunks: keep the text ones
        return "".join(getattr(chunk, "text", "") or "" for chunk in content)
    return ""


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
