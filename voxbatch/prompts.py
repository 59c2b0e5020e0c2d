"""Pure chat-text rules: recipes, token counts, splitting, and the prompts sent."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from voxbatch.config import MistralSettings, Settings

# Changing how prompts are built changes what a summary is: part of the recipe.
PROMPT_VERSION = "1"


# Room kept for the instructions and framing around each part, in tokens.
OVERHEAD_TOKENS = 256


MIN_PART_CHARS = 500


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
