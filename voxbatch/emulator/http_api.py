"""The emulator's HTTP endpoints: chat completions, text to speech, and the records it kept."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import math
import re
import time
import uuid
from typing import Any

from aiohttp import web

from voxbatch.emulator.auth import bearer_key, key_accepted, unauthorized
from voxbatch.emulator.faults import Refusal
from voxbatch.emulator.records import HttpRequestRecord
from voxbatch.emulator.state import STATE_KEY, EmulatorState
from voxbatch.emulator.tones import SPEECH_FORMATS, encode, tone_pattern

SUMMARY_WORDS = 40
SPEECH_CHUNK_BYTES = 8192


def estimate_tokens(text_length: int) -> int:
    """The emulator's tokenizer: a token per four characters, rounded up."""
    return math.ceil(text_length / 4)


def summarize(text: str) -> str:
    """The deterministic "summary" the chat endpoint answers: the first 40 words."""
    words = text.split()
    return "Summary: " + (" ".join(words[:SUMMARY_WORDS]) if words else "(empty)")


def _content_text(content: Any) -> str:
    """Message content is a string or a list of chunks, of which text chunks count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            chunk.get("text", "")
            for chunk in content
            if isinstance(chunk, dict) and isinstance(chunk.get("text"), str)
        )
    return ""


def _validation_error(field: str, message: str, kind: str = "value_error") -> web.Response:
    """A 422 shaped like Mistral's (FastAPI's), which the SDK turns into HTTPValidationError."""
    detail = [{"type": kind, "loc": ["body", field], "msg": message, "input": None}]
    return web.json_response({"detail": detail}, status=422)


def _failure(refusal: Refusal) -> web.Response:
    body = {
        "object": "error",
        "message": f"Emulated failure ({refusal.reason})",
        "type": "service_unavailable" if refusal.status >= 500 else "rate_limited",
        "param": None,
        "code": str(refusal.status),
    }
    return web.json_response(body, status=refusal.status, headers=refusal.headers)


async def _admit(
    request: web.Request, endpoint: str, log: list[HttpRequestRecord]
) -> tuple[HttpRequestRecord, dict[str, Any] | None, web.Response | None]:
    """Record the request and decide auth and faults: (record, body, early response)."""
    state = request.app[STATE_KEY]
    record = HttpRequestRecord(endpoint=endpoint, body=None)
    log.append(record)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    record.body = body
    if not key_accepted(bearer_key(request), state.config.api_key):
        return record, None, unauthorized()
    refusal = state.faults.http_failure(endpoint)
    if refusal is not None:
        return record, None, _failure(refusal)
    delay = state.faults.http_delay(endpoint)
    if delay:
        await asyncio.sleep(delay)
    if not isinstance(body, dict):
        return record, None, _validation_error("body", "A JSON object is required")
    return record, body, None


async def handle_chat(request: web.Request) -> web.StreamResponse:
    state: EmulatorState = request.app[STATE_KEY]
    record, body, early = await _admit(request, "chat", state.records.chat)
    response = early or await _chat(request, state, body or {})
    record.status = response.status
    return response


async def _chat(
    request: web.Request, state: EmulatorState, body: dict[str, Any]
) -> web.StreamResponse:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _validation_error("messages", "Field required", "missing")
    if not all(isinstance(m, dict) and "role" in m for m in messages):
        return _validation_error("messages", "Each message needs a role")
    model = body.get("model") or "mistral-small-latest"
    prompt_chars = sum(len(_content_text(m.get("content"))) for m in messages)
    prompt_tokens = estimate_tokens(prompt_chars)
    limit = state.config.max_context_tokens
    if prompt_tokens > limit:
        error = {
            "object": "error",
            "message": f"Prompt contains {prompt_tokens} tokens and 0 draft tokens, too large "
            f"for model with {limit} maximum context length",
            "type": "invalid_request_message_error",
            "param": None,
            "code": "3051",
        }
        return web.json_response(error, status=400)
    users = [m for m in messages if m.get("role") == "user"] or messages
    reply = summarize(_content_text(users[-1].get("content")))
    finish_reason = "stop"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens > 0 and estimate_tokens(len(reply)) > max_tokens:
        reply, finish_reason = reply[: max_tokens * 4], "length"
    completion_tokens = estimate_tokens(len(reply))
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    completion_id = uuid.uuid4().hex
    created = int(time.time())
    if not body.get("stream"):
        return web.json_response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "model": model,
                "created": created,
                "usage": usage,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": finish_reason,
                        "message": {"role": "assistant", "content": reply},
                    }
                ],
            }
        )

    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        base = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
        return {**base, "model": model, "choices": [choice], **extra}

    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": piece}, None) for piece in re.findall(r"\S+\s*", reply)]
    events.append(chunk({"content": ""}, finish_reason, usage=usage))
    response = await _start_sse(request)
    for event in events:
        await response.write(f"data: {json.dumps(event)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def handle_speech(request: web.Request) -> web.StreamResponse:
    state: EmulatorState = request.app[STATE_KEY]
    record, body, early = await _admit(request, "speech", state.records.speech)
    response = early or await _speech(request, state, body or {})
    record.status = response.status
    return response


async def _speech(
    request: web.Request, state: EmulatorState, body: dict[str, Any]
) -> web.StreamResponse:
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        return _validation_error("input", "Field required", "missing")
    response_format = body.get("response_format") or "mp3"
    if response_format not in SPEECH_FORMATS:
        return _validation_error("response_format", f"Input should be one of {SPEECH_FORMATS}")
    voice = body.get("voice_id") or "default"
    ref_audio = body.get("ref_audio")
    if ref_audio:
        try:
            clip = base64.b64decode(ref_audio, validate=True)
        except (binascii.Error, TypeError, ValueError):
            return web.json_response({"detail": "ref_audio is not valid base64"}, status=400)
        voice = "ref:" + hashlib.sha256(clip).hexdigest()
    config = state.config
    samples = await asyncio.to_thread(
        tone_pattern,
        text,
        voice=voice,
        ms_per_char=config.speech_ms_per_char,
        max_s=config.speech_max_s,
    )
    audio = await encode(samples, response_format)
    prompt_tokens = estimate_tokens(len(text))
    # Mistral bills speech by input characters; prompt_characters is the emulator's extra key.
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 0,
        "total_tokens": prompt_tokens,
        "prompt_characters": len(text),
    }
    if not body.get("stream"):
        return web.json_response({"audio_data": base64.b64encode(audio).decode("ascii")})
    response = await _start_sse(request)
    for offset in range(0, len(audio), SPEECH_CHUNK_BYTES):
        piece = base64.b64encode(audio[offset : offset + SPEECH_CHUNK_BYTES]).decode("ascii")
        await _write_event(response, "speech.audio.delta", {"audio_data": piece})
    await _write_event(response, "speech.audio.done", {"usage": usage})
    await response.write_eof()
    return response


async def _start_sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Cache-Control": "no-cache"})
    response.content_type = "text/event-stream"
    await response.prepare(request)
    return response


async def _write_event(response: web.StreamResponse, kind: str, data: dict[str, Any]) -> None:
    payload = json.dumps({"type": kind, **data})
    await response.write(f"event: {kind}\ndata: {payload}\n\n".encode())


async def handle_records(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].records.to_json())
