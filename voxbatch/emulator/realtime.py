"""The realtime transcription websocket, `/v1/audio/transcriptions/realtime?model=...`.

One task per session reads a message, answers it (pacing events to the configured speed) and only
then reads the next: a slow session back-pressures the client through TCP instead of buffering.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import uuid
from typing import Any, NoReturn

from aiohttp import WSMsgType, web

from voxbatch.emulator.auth import bearer_key, key_accepted, unauthorized
from voxbatch.emulator.recognizer import (
    BYTES_PER_SECOND,
    SAMPLE_RATE,
    IncrementalRecognizer,
    RecognizerEvent,
    Segment,
)
from voxbatch.emulator.records import RefusedConnection, SessionRecord
from voxbatch.emulator.state import STATE_KEY, EmulatorState

PATH = "/v1/audio/transcriptions/realtime"
MAX_APPEND_BYTES = 262_144
# Error codes: 3804 is Mistral's; the others are the emulator's own (Mistral's are undocumented).
CODE_INVALID_MESSAGE = 3000
CODE_SESSION_LOCKED = 3001
CODE_CHUNK_TOO_LARGE = 3002
CODE_UNSUPPORTED = 3003
CODE_SERVER_ERROR = 3500
CODE_IDLE_TIMEOUT = 3804
SESSION_FIELDS = (
    "audio_format",
    "target_streaming_delay_ms",
    "diarize",
    "context_bias",
    "language",
    "speaker_references",
    "turn_detection",
)
# Room for a 262,144-byte chunk in base64 plus JSON, and for speaker references.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class _SessionOver(Exception):
    """Raised inside a session to stop it once its outcome is recorded."""


async def handle_realtime(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES)
    if not ws.can_prepare(request).ok:
        return web.json_response({"detail": "Expected a websocket upgrade"}, status=426)
    given = bearer_key(request)
    if not key_accepted(given, state.config.api_key):
        state.records.refused.append(RefusedConnection(401, "unauthorized"))
        return unauthorized()
    model = request.query.get("model")
    if not model:
        state.records.refused.append(RefusedConnection(400, "missing model"))
        return web.json_response({"detail": "Query parameter 'model' is required"}, status=400)
    refusal = state.faults.admit_connection()
    if refusal is not None:
        state.records.refused.append(RefusedConnection(refusal.status, refusal.reason))
        return web.json_response(
            {"detail": "Service unavailable" if refusal.status == 503 else "Too many requests"},
            status=refusal.status,
            headers=refusal.headers,
        )

    index, faulty = state.faults.start_session()
    record = SessionRecord(
        index=index,
        request_id=uuid.uuid4().hex,
        model=model,
        key_matched=None if state.config.api_key is None else True,
        faulty=faulty,
    )
    state.records.sessions.append(record)
    state.websockets.add(ws)
    try:
        await ws.prepare(request)
        session = RealtimeSession(request, ws, record, state)
        await session.run()
    finally:
        state.websockets.discard(ws)
        state.faults.end_session()
    return ws


class RealtimeSession:
    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        record: SessionRecord,
        state: EmulatorState,
    ) -> None:
        self._request = request
        self._ws = ws
        self._record = record
        self._state = state
        self._config = state.config
        self._faulty = record.faulty
        self._loop = asyncio.get_running_loop()
        self._session: dict[str, Any] = {
            "request_id": record.request_id,
            "model": record.model,
            "audio_format": {"encoding": "pcm_s16le", "sample_rate": SAMPLE_RATE},
            "target_streaming_delay_ms": 480,
            "diarize": False,
            "context_bias": [],
            "language": None,
            "speaker_references": [],
            "turn_detection": None,
        }
        self._recognizer = IncrementalRecognizer()
        self._first_audio_at: float | None = None
        self._idle_deadline = self._loop.time() + self._config.idle_timeout_s

    async def run(self) -> None:
        try:
            if self._faulty and self._config.no_session_created:
                self._record.outcome = "no_session_created"
            else:
                await self._send({"type": "session.created", "session": self._session})
            while True:
                await self._receive_one()
        except _SessionOver:
            pass
        except ConnectionError:
            self._mark_gone()  # the client vanished while we were sending
        except asyncio.CancelledError:
            self._mark_gone()
            raise
        finally:
            if self._record.close_code is None:
                self._record.close_code = self._ws.close_code

    def _mark_gone(self) -> None:
        if self._record.outcome == "open":
            stopped = self._state.stopping.is_set()
            self._record.outcome = "emulator_stopped" if stopped else "client_closed"

    async def _receive_one(self) -> None:
        timeout = max(0.0, self._idle_deadline - self._loop.time())
        try:
            msg = await self._ws.receive(timeout=timeout)
        except TimeoutError:
            if self._record.outcome == "no_session_created":
                await self._close(1000, self._record.outcome)
            await self._send_error(
                "Timeout waiting for response from streaming transcription", CODE_IDLE_TIMEOUT
            )
            await self._close(1000, "idle_timeout")
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            self._mark_gone()
            raise _SessionOver
        if self._record.outcome == "no_session_created":
            return  # a server that never answers the handshake ignores everything
        if msg.type is not WSMsgType.TEXT:
            await self._send_error("Only JSON text frames are accepted", CODE_INVALID_MESSAGE)
            return
        try:
            message = json.loads(msg.data)
        except json.JSONDecodeError:
            await self._send_error("Invalid JSON", CODE_INVALID_MESSAGE)
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "input_audio.append":
            await self._append(message.get("audio"))
        elif kind == "session.update":
            await self._update(message.get("session"))
        elif kind == "input_audio.flush":
            self._record.flushes += 1
            await self._transcription_done(final=False)
        elif kind == "input_audio.end":
            self._record.end_received = True
            await self._transcription_done(final=True)
        else:
            await self._send_error(f"Unknown message type: {kind!r}", CODE_INVALID_MESSAGE)

    async def _update(self, fields: Any) -> None:
        if not isinstance(fields, dict) or not set(fields) <= set(SESSION_FIELDS):
            await self._send_error("Invalid session.update payload", CODE_INVALID_MESSAGE)
            return
        recorded = dict(fields)
        if isinstance(fields.get("speaker_references"), dict):
            recorded["speaker_references"] = sorted(fields["speaker_references"])
        self._record.session_updates.append(recorded)
        if self._first_audio_at is not None:
            await self._send_error(
                "Session fields cannot be changed after audio has started", CODE_SESSION_LOCKED
            )
            return
        audio_format = fields.get("audio_format")
        if audio_format is not None and audio_format != self._session["audio_format"]:
            await self._send_error(
                "The emulator only accepts pcm_s16le at 16000 Hz", CODE_UNSUPPORTED
            )
            return
        merged = {**self._session, **{k: v for k, v in fields.items() if v is not None}}
        if merged["diarize"] and merged["turn_detection"] is not None:
            await self._send_error(
                "Diarization is not compatible with turn detection", CODE_INVALID_MESSAGE
            )
            return
        if isinstance(merged["speaker_references"], dict):
            merged["speaker_references"] = list(merged["speaker_references"])
        self._session = merged
        self._recognizer.diarize = bool(merged["diarize"])
        await self._send({"type": "session.updated", "session": self._session})

    async def _append(self, audio: Any) -> None:
        self._record.appends += 1
        self._record.append_times.append(self._loop.time())
        try:
            pcm = base64.b64decode(audio, validate=True) if isinstance(audio, str) else None
        except binascii.Error:
            pcm = None
        if pcm is None:
            self._record.rejected_appends += 1
            await self._send_error("'audio' must be base64-encoded PCM", CODE_INVALID_MESSAGE)
            return
        self._record.max_chunk_bytes = max(self._record.max_chunk_bytes, len(pcm))
        if len(pcm) > MAX_APPEND_BYTES:
            self._record.rejected_appends += 1
            await self._send_error(
                f"Audio chunk of {len(pcm)} bytes exceeds the maximum of {MAX_APPEND_BYTES}",
                CODE_CHUNK_TOO_LARGE,
            )
            return
        if self._first_audio_at is None:
            self._first_audio_at = self._loop.time()
            language = self._session["language"] or self._config.detected_language
            if language is not None:
                await self._send({"type": "transcription.language", "audio_language": language})
        self._record.add_audio(pcm)
        await self._send_recognized(self._recognizer.feed(pcm))
        await self._pace(self._recognizer.audio_seconds)
        # Idle time counts from when the server is ready for more, not from when audio arrived.
        self._idle_deadline = self._loop.time() + self._config.idle_timeout_s
        await self._maybe_fault(self._recognizer.audio_seconds)

    async def _maybe_fault(self, seconds: float) -> None:
        if not self._faulty:
            return
        config = self._config
        if config.drop_after_s is not None and seconds >= config.drop_after_s:
            await self._close(1011, "dropped")
        if config.error_after_s is not None and seconds >= config.error_after_s:
            await self._send_error("Internal server error (emulated)", CODE_SERVER_ERROR)
            await self._close(1000, "error")
        if config.stall_after_s is not None and seconds >= config.stall_after_s:
            self._record.outcome = "stalled"
            await self._wait_until_gone()
            raise _SessionOver

    async def _transcription_done(self, *, final: bool) -> None:
        if self._faulty and self._config.close_without_done:
            await self._close(1000, "closed_without_done")
        await self._send_recognized(self._recognizer.finish())
        language = self._session["language"] or self._config.detected_language
        segments = [
            _segment_payload("transcription_segment", seg) for seg in self._recognizer.segments
        ]
        seconds: float = math.ceil(self._recognizer.received_bytes / BYTES_PER_SECOND)
        if self._config.usage_seconds is not None:
            seconds = self._config.usage_seconds
        if self._config.malformed_done:
            seconds += 0.5  # the SDK requires an integer: this done will not validate
        done: dict[str, Any] = {
            "type": "transcription.done",
            "model": self._record.model,
            "text": self._recognizer.text,
            "language": language,
            "usage": {
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
                "prompt_audio_seconds": seconds,
            },
        }
        if self._config.segments_in_done:
            done["segments"] = segments
        await self._send(done)
        if final:
            await self._close(1000, "done")

    async def _send_recognized(self, events: list[RecognizerEvent]) -> None:
        for event in events:
            await self._pace(event.at)
            if event.token is not None:
                await self._send({"type": "transcription.text.delta", "text": event.token.text})
            elif event.segment is not None:
                await self._send(_segment_payload("transcription.segment", event.segment))

    async def _pace(self, stream_seconds: float) -> None:
        """Hold events for audio at stream time t until t/speed after the first audio."""
        speed = self._config.speed
        if speed <= 0 or self._first_audio_at is None:
            return
        delay = self._first_audio_at + stream_seconds / speed - self._loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _send(self, payload: dict[str, Any]) -> None:
        self._record.events_sent.append(payload["type"])
        await self._ws.send_str(json.dumps(payload))

    async def _send_error(self, message: str, code: int) -> None:
        self._record.errors_sent.append(message)
        await self._send({"type": "error", "error": {"message": message, "code": code}})

    async def _close(self, code: int, outcome: str) -> NoReturn:
        self._record.outcome = outcome
        self._record.close_code = code
        await self._ws.close(code=code, message=outcome.encode())
        raise _SessionOver

    async def _wait_until_gone(self) -> None:
        """Neither read nor write until the client disconnects or the emulator stops."""
        while not self._state.stopping.is_set():
            transport = self._request.transport
            if transport is None or transport.is_closing():
                return
            try:
                await asyncio.wait_for(self._state.stopping.wait(), timeout=0.2)
            except TimeoutError:
                continue


def _segment_payload(kind: str, segment: Segment) -> dict[str, Any]:
    """A segment as the wire has it: the streamed event and the item inside `done` differ
    only in their `type`."""
    payload: dict[str, Any] = {
        "type": kind,
        "text": segment.text,
        "start": segment.start,
        "end": segment.end,
    }
    if segment.speaker_id is not None:
        payload["speaker_id"] = segment.speaker_id
    return payload
