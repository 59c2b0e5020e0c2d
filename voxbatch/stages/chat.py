"""Written summaries from the chat model, in parts when a transcript exceeds its context.

A transcript that fits is summarised in one call. A longer one is cut at paragraph, sentence
or word boundaries into parts that each fit (map), every part is summarised, and the part
summaries are combined (reduce) — again in parts if even they do not fit — so a ten-hour
transcript works. The summary is written in the transcript's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mistralai.client import Mistral
from mistralai.client.models import ChatCompletionResponse

from voxbatch.accounting.paid_calls import (
    PaidCall,
    Settlement,
    call_with_retries,
    unknown_call_cost,
)
from voxbatch.accounting.prices import chat_charge
from voxbatch.config import Settings
from voxbatch.errors import ProviderError
from voxbatch.prompts import (
    _combine_instruction,
    _messages,
    _part_instruction,
    _system,
    part_chars,
    split_text,
    tokens_for,
)
from voxbatch.store.db import Database
from voxbatch.store.models import CallKind

# Reduce rounds beyond this mean the part summaries do not get shorter: stop paying.
MAX_ROUNDS = 6


@dataclass(frozen=True)
class ChatSummary:
    text: str
    model: str
    parts: int  # parts the transcript was cut into (1 = it fitted)


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
            return unknown_call_cost(self.settings, CallKind.chat, model, input_chars=prompt_chars)

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
