"""The emulator, driven through the real Mistral SDK (never mocked)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import tracemalloc
import urllib.request
import wave
from array import array
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest
import websockets
from hypothesis import given, settings
from hypothesis import strategies as st
from mistralai.client import Mistral, errors
from mistralai.client.models import (
    RealtimeTranscriptionError,
    RealtimeTranscriptionSessionCreated,
    RealtimeTranscriptionSessionUpdated,
    TranscriptionStreamDone,
    TranscriptionStreamLanguage,
    TranscriptionStreamSegmentDelta,
    TranscriptionStreamTextDelta,
)
from mistralai.extra.exceptions import RealtimeTranscriptionException
from mistralai.extra.realtime import UnknownRealtimeEvent

from voxbatch.emulator import Emulator, EmulatorConfig, recognize, running_emulator
from voxbatch.emulator.recognizer import IncrementalRecognizer
from voxbatch.emulator.words import WORDS

MODEL = "voxtral-mini-transcribe-realtime-2602"
RATE = 16_000


def speech_like(pattern: list[tuple[float, int]], *, seed: int = 1) -> bytes:
    """pcm_s16le: (seconds, Hz) bursts of a wobbling tone, Hz 0 = near-silence with a faint hiss."""
    samples = array("h")
    noise = seed
    for seconds, hz in pattern:
        for i in range(int(seconds * RATE)):
            noise = (noise * 1103515245 + 12345) & 0x7FFFFFFF
            hiss = noise % 61 - 30
            if hz:
                wobble = 1 + 0.05 * math.sin(2 * math.pi * 3 * i / RATE)
                envelope = 0.6 + 0.4 * math.sin(math.pi * i / (seconds * RATE))
                tone = 9000 * envelope * math.sin(2 * math.pi * hz * wobble * i / RATE)
                samples.append(int(tone) + hiss)
            else:
                samples.append(hiss)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


# Five voiced intervals (the 0.1 s gap is merged, the 40 ms click dropped), three segments.
PATTERN = [
    (0.2, 0),
    (0.35, 220),
    (0.1, 0),
    (0.25, 330),
    (0.3, 0),
    (0.4, 440),
    (0.7, 0),
    (0.04, 500),
    (0.5, 0),
    (0.3, 550),
    (0.26, 0),
    (0.5, 180),
    (0.6, 0),
    (0.3, 260),
    (0.2, 0),
]
PCM = speech_like(PATTERN)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # websockets and httpx honour proxy variables; the emulator is on loopback.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def emulator() -> Iterator[Callable[..., Emulator]]:
    """Start emulators with the given config fields; all are stopped after the test."""
    with contextlib.ExitStack() as stack:

        def start(**fields: Any) -> Emulator:
            return stack.enter_context(running_emulator(EmulatorConfig(**fields)))

        yield start


def client(emu: Emulator, key: str = "test-key") -> Mistral:
    return Mistral(api_key=key, server_url=emu.base_url)


async def chunks(pcm: bytes, size: int = 3200) -> AsyncIterator[bytes]:
    for offset in range(0, len(pcm), size):
        yield pcm[offset : offset + size]


async def transcribe(emu: Emulator, pcm: bytes, **kwargs: Any) -> list[Any]:
    stream = client(emu).audio.realtime.transcribe_stream(
        chunks(pcm), model=MODEL, timeout_ms=5000, **kwargs
    )
    return [event async for event in stream]


async def events_after_stream(emu: Emulator, pcm: bytes, wait_s: float = 3.0) -> list[Any]:
    """Connect, send everything plus end, and collect events until the server ends the stream."""
    connection = await client(emu).audio.realtime.connect(model=MODEL, timeout_ms=5000)
    events: list[Any] = []
    async with connection:
        async for chunk in chunks(pcm, 16000):
            await connection.send_audio(chunk)
        await connection.end_audio()

        async def collect() -> None:
            async for event in connection:
                events.append(event)

        await asyncio.wait_for(collect(), wait_s)
    return events


def wait_for_outcome(emu: Emulator, index: int = 0, timeout: float = 3.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(emu.records.sessions) > index and emu.records.sessions[index].outcome != "open":
            return emu.records.sessions[index].outcome
        time.sleep(0.02)
    return "open"


# --- the recogniser -----------------------------------------------------------------------


def test_recognize_finds_voiced_intervals_with_their_times() -> None:
    result = recognize(PCM)
    assert [(t.start, t.end) for t in result.tokens] == [
        (0.2, 0.9),
        (1.2, 1.6),
        (2.84, 3.14),
        (3.4, 3.9),
        (4.5, 4.8),
    ]
    assert all(t.text.startswith(" ") and t.text[1:] in WORDS for t in result.tokens)
    assert result.text == "".join(t.text for t in result.tokens)
    # Pauses of 0.5 s or more split segments; 0.26 s does not.
    assert [(s.start, s.end) for s in result.segments] == [(0.2, 1.6), (2.84, 3.9), (4.5, 4.8)]
    assert " ".join(s.text for s in result.segments) == result.text.strip()
    assert all(s.speaker_id is None for s in result.segments)


def test_recognize_depends_on_the_samples_and_their_order() -> None:
    words = [t.text for t in recognize(PCM).tokens]
    other = [t.text for t in recognize(speech_like(PATTERN, seed=2)).tokens]
    half = len(PCM) // 2 - (len(PCM) // 2) % 2
    swapped = [t.text for t in recognize(PCM[half:] + PCM[:half]).tokens]
    assert words != other
    assert words != swapped
    assert recognize(b"").text == ""
    assert recognize(bytes(RATE * 4)).tokens == ()


def test_long_speech_is_cut_into_segments_of_at_most_ten_seconds() -> None:
    pcm = speech_like([(0.3, 300), (0.2, 0)] * 45)  # 22.5 s with 0.2 s pauses only
    segments = recognize(pcm, diarize=True).segments
    assert len(segments) == 3
    assert all(s.end - s.start <= 10.3 for s in segments)
    assert [s.speaker_id for s in segments] == ["speaker_1", "speaker_2", "speaker_1"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=9000), min_size=1, max_size=40))
def test_incremental_recognizer_is_independent_of_chunking(sizes: list[int]) -> None:
    recognizer = IncrementalRecognizer()
    offset, index = 0, 0
    while offset < len(PCM):
        size = sizes[index % len(sizes)]
        recognizer.feed(PCM[offset : offset + size])
        offset, index = offset + size, index + 1
    recognizer.finish()
    expected = recognize(PCM)
    assert recognizer.text == expected.text
    assert tuple(recognizer.segments) == expected.segments


def test_recognizer_memory_does_not_grow_with_the_stream() -> None:
    minute = PCM * math.ceil(60 * 32000 / len(PCM))
    recognizer = IncrementalRecognizer()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for offset in range(0, len(minute), 16000):
            recognizer.feed(minute[offset : offset + 16000])
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert recognizer.audio_seconds >= 60
    assert peak < 150_000  # the minute of PCM is 1.9 MB; text and segments are a few KB


# --- realtime through the SDK -------------------------------------------------------------


def test_handshake_and_session_update_are_recorded(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(api_key="test-key")

    async def scenario() -> tuple[Any, list[Any]]:
        connection = await client(emu).audio.realtime.connect(
            model=MODEL,
            timeout_ms=5000,
            target_streaming_delay_ms=960,
            language="de",
            diarize=True,
            context_bias=["Voxtral", "Kubernetes"],
        )
        async with connection:
            events = []
            async for event in connection:
                events.append(event)
                if isinstance(event, RealtimeTranscriptionSessionUpdated):
                    break
            return connection.session, events

    session, events = asyncio.run(scenario())
    assert isinstance(events[0], RealtimeTranscriptionSessionCreated)
    assert events[0].session.model == MODEL
    assert events[0].session.audio_format.encoding == "pcm_s16le"
    assert session.language == "de"
    assert session.target_streaming_delay_ms == 960
    assert session.context_bias == ["Voxtral", "Kubernetes"]
    record = emu.records.sessions[0]
    assert record.model == MODEL
    assert record.key_matched is True
    assert record.session_updates == [
        {
            "target_streaming_delay_ms": 960,
            "diarize": True,
            "context_bias": ["Voxtral", "Kubernetes"],
            "language": "de",
        }
    ]
    assert record.request_id == session.request_id
    assert wait_for_outcome(emu) == "client_closed"


def test_transcript_equals_recognize_of_the_audio_sent(emulator: Callable[..., Emulator]) -> None:
    emu = emulator()
    events = asyncio.run(transcribe(emu, PCM, diarize=True))
    expected = recognize(PCM, diarize=True)

    deltas = [e.text for e in events if isinstance(e, TranscriptionStreamTextDelta)]
    segments = [e for e in events if isinstance(e, TranscriptionStreamSegmentDelta)]
    languages = [e for e in events if isinstance(e, TranscriptionStreamLanguage)]
    done = events[-1]
    assert not [e for e in events if isinstance(e, UnknownRealtimeEvent)]
    assert isinstance(done, TranscriptionStreamDone)
    assert deltas == [t.text for t in expected.tokens]
    assert "".join(deltas) == done.text == expected.text
    assert [(s.text, s.start, s.end, s.speaker_id) for s in segments] == [
        (s.text, s.start, s.end, s.speaker_id) for s in expected.segments
    ]
    starts = [s.start for s in segments]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert [(s.text, s.start, s.end) for s in done.segments or []] == [
        (s.text, s.start, s.end) for s in expected.segments
    ]
    assert [e.audio_language for e in languages] == ["en"]
    assert done.language == "en"
    assert done.model == MODEL
    assert done.usage.prompt_audio_seconds == math.ceil(len(PCM) / 32000)
    assert isinstance(done.usage.prompt_audio_seconds, int)

    assert wait_for_outcome(emu) == "done"
    record = emu.records.sessions[0]
    assert record.sha256 == hashlib.sha256(PCM).hexdigest()
    assert record.total_bytes == len(PCM)
    assert record.appends == math.ceil(len(PCM) / 3200)
    assert record.max_chunk_bytes == 3200
    assert record.flushes == 1 and record.end_received
    assert record.close_code == 1000
    assert record.events_sent.count("transcription.done") == 2  # one for flush, one for end


def test_speed_paces_events_to_real_time(emulator: Callable[..., Emulator]) -> None:
    pcm = speech_like([(0.2, 0), (0.3, 300), (0.3, 0), (0.3, 400), (0.9, 0)])  # 2.0 s
    emu = emulator(speed=4.0)

    async def timed() -> tuple[float, list[float]]:
        start = time.monotonic()
        arrivals = []
        async for event in client(emu).audio.realtime.transcribe_stream(
            chunks(pcm), model=MODEL, timeout_ms=5000
        ):
            if isinstance(event, TranscriptionStreamTextDelta):
                arrivals.append(time.monotonic() - start)
        return time.monotonic() - start, arrivals

    elapsed, arrivals = asyncio.run(timed())
    assert elapsed >= 2.0 / 4.0
    tokens = recognize(pcm).tokens
    assert len(arrivals) == len(tokens) == 2
    # A token is known only once its interval has ended: not before end / speed.
    assert arrivals[1] >= tokens[1].end / 4.0


def test_refuse_first_gives_503_with_retry_after_then_accepts(
    emulator: Callable[..., Emulator],
) -> None:
    emu = emulator(refuse_first=1, retry_after=7)
    with pytest.raises(RealtimeTranscriptionException) as refused:
        asyncio.run(transcribe(emu, PCM))
    cause = refused.value.__cause__
    assert isinstance(cause, websockets.exceptions.InvalidStatus)
    assert cause.response.status_code == 503
    assert cause.response.headers["Retry-After"] == "7"
    assert refused.value.code is None
    events = asyncio.run(transcribe(emu, PCM))
    assert isinstance(events[-1], TranscriptionStreamDone)
    assert [(r.status, r.reason) for r in emu.records.refused] == [(503, "refuse_first")]


def test_sessions_beyond_max_sessions_get_429(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(max_sessions=1)

    async def scenario() -> int:
        first = await client(emu).audio.realtime.connect(model=MODEL, timeout_ms=5000)
        async with first:
            with pytest.raises(RealtimeTranscriptionException) as refused:
                await client(emu).audio.realtime.connect(model=MODEL, timeout_ms=5000)
            assert isinstance(refused.value.__cause__, websockets.exceptions.InvalidStatus)
            return refused.value.__cause__.response.status_code

    assert asyncio.run(scenario()) == 429
    wait_for_outcome(emu)
    assert isinstance(asyncio.run(transcribe(emu, PCM))[-1], TranscriptionStreamDone)


def test_wrong_or_missing_key_gets_401(
    emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator(api_key="right-key")
    with pytest.raises(RealtimeTranscriptionException) as refused:
        asyncio.run(
            client(emu, key="wrong-key").audio.realtime.connect(model=MODEL, timeout_ms=5000)
        )
    assert refused.value.__cause__.response.status_code == 401  # type: ignore[union-attr]
    assert json.loads(refused.value.__cause__.response.body) == {"detail": "Unauthorized"}  # type: ignore[union-attr]

    async def no_key() -> None:
        async with websockets.connect(
            f"ws://127.0.0.1:{emu.port}/v1/audio/transcriptions/realtime?model=m"
        ):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus) as missing:
        asyncio.run(no_key())
    assert missing.value.response.status_code == 401
    with pytest.raises(errors.SDKError) as chat_refused:
        client(emu, key="wrong-key").chat.complete(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    assert chat_refused.value.status_code == 401
    assert [r.status for r in emu.records.refused] == [401, 401]
    assert emu.records.chat[0].status == 401
    assert emu.records.sessions == []


def test_drop_after_closes_with_1011(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(drop_after_s=1.0)
    with pytest.raises(websockets.exceptions.ConnectionClosedError) as dropped:
        asyncio.run(events_after_stream(emu, PCM))
    assert dropped.value.rcvd is not None and dropped.value.rcvd.code == 1011
    record = emu.records.sessions[0]
    assert record.outcome == "dropped" and record.close_code == 1011
    assert 32000 <= record.total_bytes < len(PCM)


def test_close_without_done_ends_the_stream_quietly(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(close_without_done=True)
    events = asyncio.run(transcribe(emu, PCM))
    assert events  # session.created and the deltas came
    assert not [e for e in events if isinstance(e, TranscriptionStreamDone)]
    assert wait_for_outcome(emu) == "closed_without_done"
    assert emu.records.sessions[0].close_code == 1000


def test_error_after_sends_an_error_event(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(error_after_s=1.0)
    events = asyncio.run(transcribe(emu, PCM))
    assert isinstance(events[-1], RealtimeTranscriptionError)
    assert isinstance(events[-1].error.code, int)
    assert wait_for_outcome(emu) == "error"


def test_stall_sends_nothing_more() -> None:
    async def scenario() -> tuple[list[Any], bool, Emulator]:
        # In the test's own loop, so that stopping the emulator can end the stalled stream.
        emu = Emulator(EmulatorConfig(stall_after_s=0.5))
        await emu.start()
        connection = await client(emu).audio.realtime.connect(model=MODEL, timeout_ms=5000)
        events: list[Any] = []

        async def collect() -> None:
            async for event in connection:
                events.append(event)

        async with connection:
            await connection.send_audio(PCM[:48000])  # 1.5 s: the first token is complete
            await connection.end_audio()
            reader = asyncio.create_task(collect())
            done, _ = await asyncio.wait({reader}, timeout=0.6)
            stalled_events = list(events)
            await emu.stop()  # closes the stalled session with 1001
            await asyncio.wait_for(reader, 5)
        return stalled_events, bool(done), emu

    events, ended_early, emu = asyncio.run(scenario())
    assert not ended_early
    # The SDK's events() swallows cancellation, so a caller needs its own silence timeout.
    assert [type(e) for e in events] == [
        RealtimeTranscriptionSessionCreated,
        TranscriptionStreamLanguage,
        TranscriptionStreamTextDelta,
    ]
    assert emu.records.sessions[0].outcome == "stalled"
    assert not emu.records.sessions[0].end_received


def test_no_session_created_times_out_the_sdk(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(no_session_created=True)
    with pytest.raises(RealtimeTranscriptionException, match="Timeout waiting for session"):
        asyncio.run(client(emu).audio.realtime.connect(model=MODEL, timeout_ms=300))
    assert emu.records.sessions[0].outcome == "no_session_created"
    assert emu.records.sessions[0].events_sent == []


def test_faults_hit_only_the_first_sessions(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(drop_after_s=0.5, fault_sessions=1)
    with pytest.raises(websockets.exceptions.ConnectionClosedError):
        asyncio.run(events_after_stream(emu, PCM))
    events = asyncio.run(transcribe(emu, PCM))
    assert isinstance(events[-1], TranscriptionStreamDone)
    assert events[-1].text == recognize(PCM).text
    assert [s.faulty for s in emu.records.sessions] == [True, False]


def test_protocol_errors_keep_the_session_open(emulator: Callable[..., Emulator]) -> None:
    emu = emulator()

    async def scenario() -> list[Any]:
        connection = await client(emu).audio.realtime.connect(model=MODEL, timeout_ms=5000)
        events: list[Any] = []
        async with connection:
            await connection.send_audio(bytes(262_145))
            await connection.send_audio(PCM[:64000])
            await connection.update_session(language="fr")
            await connection.flush_audio()
            async for event in connection:
                events.append(event)
                if isinstance(event, TranscriptionStreamDone):
                    break
        return events

    events = asyncio.run(scenario())
    errors_seen = [e.error.message for e in events if isinstance(e, RealtimeTranscriptionError)]
    assert len(errors_seen) == 2
    assert "262145" in errors_seen[0]
    assert errors_seen[1] == "Session fields cannot be changed after audio has started"
    done = events[-1]
    assert done.text == recognize(PCM[:64000]).text
    assert done.usage.prompt_audio_seconds == 2
    record = emu.records.sessions[0]
    assert record.rejected_appends == 1 and record.max_chunk_bytes == 262_145
    assert record.total_bytes == 64000


def test_idle_session_gets_error_3804(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(idle_timeout_s=0.3)

    async def scenario() -> list[Any]:
        connection = await client(emu).audio.realtime.connect(model=MODEL, timeout_ms=5000)
        async with connection:
            return [event async for event in connection]

    events = asyncio.run(scenario())
    assert isinstance(events[-1], RealtimeTranscriptionError)
    assert events[-1].error.code == 3804
    assert "Timeout waiting for response" in str(events[-1].error.message)


# --- HTTP: chat, speech, records ----------------------------------------------------------


def test_chat_completion_plain_and_streamed(emulator: Callable[..., Emulator]) -> None:
    emu = emulator()
    sdk = client(emu)
    text = " ".join(f"w{i}" for i in range(60))
    messages = [
        {"role": "system", "content": "Summarise."},
        {"role": "user", "content": text},
    ]
    response = sdk.chat.complete(model="mistral-small-latest", messages=messages)
    reply = response.choices[0].message.content
    assert reply == "Summary: " + " ".join(text.split()[:40])
    assert response.usage.prompt_tokens == math.ceil((len("Summarise.") + len(text)) / 4)
    assert response.usage.completion_tokens == math.ceil(len(reply) / 4)

    stream = sdk.chat.stream(model="mistral-small-latest", messages=messages)
    pieces = [event.data.choices[0].delta.content or "" for event in stream]
    assert "".join(pieces) == reply
    assert [r.body["messages"][1]["content"] for r in emu.records.chat] == [text, text]


def test_chat_refuses_prompts_beyond_the_context(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(max_context_tokens=10)
    with pytest.raises(errors.SDKError) as refused:
        client(emu).chat.complete(
            model="mistral-small-latest", messages=[{"role": "user", "content": "x" * 41}]
        )
    assert refused.value.status_code == 400
    assert "maximum context length" in refused.value.body


def test_http_failures_carry_retry_after(emulator: Callable[..., Emulator]) -> None:
    emu = emulator(http_fail_first=1, http_fail_status=429, retry_after=3)
    messages = [{"role": "user", "content": "hello"}]
    with pytest.raises(errors.SDKError) as failed:
        client(emu).chat.complete(model="m", messages=messages)
    assert failed.value.status_code == 429
    assert failed.value.headers["retry-after"] == "3"
    assert client(emu).chat.complete(model="m", messages=messages).choices
    with pytest.raises(errors.SDKError):
        client(emu).audio.speech.complete(input="hi", response_format="wav")
    assert [r.status for r in emu.records.chat + emu.records.speech] == [429, 200, 429]


def ffmpeg_decoded_seconds(data: bytes, tmp_path: Path, suffix: str) -> float:
    path = tmp_path / f"speech{suffix}"
    path.write_bytes(data)
    decode = ["-nostdin", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "8000"]
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), *decode, "pipe:1"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return len(result.stdout) / 16000


def test_speech_mp3_is_playable_audio(emulator: Callable[..., Emulator], tmp_path: Path) -> None:
    emu = emulator()
    text = "Five short words of speech."
    response = client(emu).audio.speech.complete(input=text, voice_id="en_paul")
    seconds = ffmpeg_decoded_seconds(base64.b64decode(response.audio_data), tmp_path, ".mp3")
    assert seconds == pytest.approx(len(text) * 0.05, abs=0.15)
    assert emu.records.speech[0].body["voice_id"] == "en_paul"


def test_speech_formats_and_streaming(emulator: Callable[..., Emulator], tmp_path: Path) -> None:
    emu = emulator()
    sdk = client(emu)
    text = "Hello there"
    pcm = base64.b64decode(sdk.audio.speech.complete(input=text, response_format="pcm").audio_data)
    assert len(pcm) == 4 * 24000 * len(text) * 50 // 1000
    assert max(abs(x) for x in array("f", pcm)) > 0.1

    ref = base64.b64encode(b"a reference clip").decode()
    wav = base64.b64decode(
        sdk.audio.speech.complete(input=text, response_format="wav", ref_audio=ref).audio_data
    )
    with wave.open(io.BytesIO(wav)) as reader:
        assert (reader.getframerate(), reader.getnchannels()) == (24000, 1)
        assert reader.getnframes() == 24000 * len(text) * 50 // 1000

    flac = base64.b64decode(
        sdk.audio.speech.complete(input=text, response_format="flac").audio_data
    )
    assert flac.startswith(b"fLaC")
    assert ffmpeg_decoded_seconds(flac, tmp_path, ".flac") == pytest.approx(0.55, abs=0.05)

    stream = sdk.audio.speech.complete(input=text, response_format="opus", stream=True)
    events = list(stream)
    kinds = [event.event for event in events]
    assert kinds[-1] == "speech.audio.done" and set(kinds[:-1]) == {"speech.audio.delta"}
    audio = b"".join(base64.b64decode(e.data.audio_data) for e in events[:-1])
    assert ffmpeg_decoded_seconds(audio, tmp_path, ".ogg") > 0.3
    assert events[-1].data.usage.prompt_tokens == math.ceil(len(text) / 4)


def test_records_endpoint_serves_json(emulator: Callable[..., Emulator]) -> None:
    emu = emulator()
    asyncio.run(transcribe(emu, PCM[:32000]))
    client(emu).chat.complete(model="m", messages=[{"role": "user", "content": "hi"}])
    wait_for_outcome(emu)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{emu.base_url}/_emulator/records", timeout=5) as reply:
        records = json.load(reply)
    assert records["sessions"][0]["sha256"] == hashlib.sha256(PCM[:32000]).hexdigest()
    assert records["sessions"][0]["outcome"] == "done"
    assert records["chat"][0]["body"]["messages"] == [{"role": "user", "content": "hi"}]
    assert "test-key" not in json.dumps(records)


# --- running it ---------------------------------------------------------------------------


def test_emulator_runs_in_the_callers_loop() -> None:
    async def scenario() -> tuple[str, str]:
        emu = Emulator(EmulatorConfig())
        assert await emu.start() == emu.port > 0
        try:
            events = await transcribe(emu, PCM)
        finally:
            await emu.stop()
        return emu.base_url, events[-1].text

    base_url, text = asyncio.run(scenario())
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
    assert text == recognize(PCM).text


def test_cli_listens_until_sigterm(tmp_path: Path) -> None:
    code = "from voxbatch.emulator.cli import emulator; emulator()"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--speed", "2"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"voxbatch emulator listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            match.group(1) + "/_emulator/records", timeout=5
        ) as reply:
            assert json.load(reply)["sessions"] == []
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "stopped" in process.stderr.read()
