"""The realtime client against the emulator: what counts as a finished transcript."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from tests.helpers.media import tone_bursts
from voxbatch.emulator import EmulatorConfig, running_emulator
from voxbatch.errors import AuthError, ConversionError, ProviderError, StreamIncompleteError
from voxbatch.media.audio import stream_pcm
from voxbatch.media.ffmpeg import find_ffmpeg
from voxbatch.providers.realtime import (
    ClientSettings,
    RealtimeTranscriber,
    StreamOptions,
    StreamProgress,
)

OPTIONS = StreamOptions(model="voxtral-mini-transcribe-realtime-2602")


def client(url: str, **kw: float) -> RealtimeTranscriber:
    return RealtimeTranscriber(ClientSettings(api_key="test-key-0123456789", base_url=url, **kw))


def test_audio_source_failure_wins_and_end_is_never_sent() -> None:
    """If ffmpeg fails part-way, the server must not be asked for a transcript of the rest."""

    async def failing() -> AsyncGenerator[bytes, None]:
        yield b"\x00\x10" * 16_000
        raise ConversionError("ffmpeg failed (exit status 1) after 1.0 s of audio")

    with running_emulator(EmulatorConfig()) as emu:
        progress = StreamProgress()
        with pytest.raises(ConversionError, match="exit status 1"):
            asyncio.run(client(emu.base_url).transcribe(failing(), OPTIONS, progress=progress))
        [session] = emu.records.sessions
    assert progress.bytes_sent == 32_000
    assert session.end_received is False and "transcription.done" not in session.events_sent


@pytest.mark.media
def test_deadline_fires_even_while_events_keep_coming(tmp_path: Path) -> None:
    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 8.0, on_s=0.3, off_s=0.3)
    with running_emulator(EmulatorConfig(speed=2)) as emu:
        transcriber = client(emu.base_url, idle_timeout_s=30)
        audio = stream_pcm(clip, ffmpeg=find_ffmpeg())
        with pytest.raises(StreamIncompleteError, match=r"took longer than 1\.5 s"):
            asyncio.run(transcriber.transcribe(audio, OPTIONS, deadline_s=1.5))
        assert len(emu.records.sessions[0].events_sent) > 3  # it was not silent


@pytest.mark.media
def test_deltas_are_reported_live(tmp_path: Path) -> None:
    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 3.0)
    seen: list[str] = []
    with running_emulator(EmulatorConfig()) as emu:
        result = asyncio.run(
            client(emu.base_url).transcribe(
                stream_pcm(clip, ffmpeg=find_ffmpeg()), OPTIONS, on_delta=seen.append
            )
        )
    assert "".join(seen) == result.text and len(seen) == 3
    assert result.billed_audio_seconds == 3 and result.usage_reported


def test_connect_errors_are_classified() -> None:
    async def connect(url: str) -> None:
        await client(url, connect_timeout_s=2)._connect(OPTIONS)

    with (
        running_emulator(EmulatorConfig(api_key="right")) as emu,
        pytest.raises(AuthError) as auth,
    ):
        asyncio.run(connect(emu.base_url))
    assert auth.value.status == 401 and not auth.value.retryable
    with (
        running_emulator(EmulatorConfig(refuse_first=1, retry_after=7)) as emu,
        pytest.raises(ProviderError) as refused,
    ):
        asyncio.run(connect(emu.base_url))
    assert refused.value.status == 503 and refused.value.retry_after == 7
    assert refused.value.retryable


def test_errors_never_quote_the_key() -> None:
    transcriber = client("http://127.0.0.1:9")
    err = ProviderError("invalid Authorization header: Bearer test-key-0123456789")
    assert "test-key-0123456789" not in str(transcriber.redact(err))


@pytest.mark.media
def test_how_far_the_server_has_transcribed_is_reported(tmp_path: Path) -> None:
    """Progress comes from the server's segments, not from the audio handed to the socket."""
    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 6.0, on_s=0.6, off_s=0.7)  # pauses of 0.7 s end the emulator's segments
    heard: list[float] = []
    progress = StreamProgress(on_heard=heard.append)
    with running_emulator(EmulatorConfig()) as emu:
        result = asyncio.run(
            client(emu.base_url).transcribe(
                stream_pcm(clip, ffmpeg=find_ffmpeg()), OPTIONS, progress=progress
            )
        )
    assert heard == sorted(heard) and len(heard) == len(result.segments) >= 3
    assert heard[-1] == result.segments[-1].end and 4.0 < heard[-1] <= 6.0


@pytest.mark.media
def test_a_session_sends_no_further_than_its_window_past_what_it_heard(tmp_path: Path) -> None:
    """What a session cut short had sent but not heard is bought again: `ahead_s` bounds it."""
    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 40.0, off_s=0.6)
    progress = StreamProgress()
    ahead: list[float] = []

    async def watched() -> AsyncGenerator[bytes, None]:
        async for chunk in stream_pcm(clip, ffmpeg=find_ffmpeg(), chunk_bytes=32_000):
            yield chunk
            # Sent once the next chunk is asked for: how far it ran ahead of what was heard.
            ahead.append(progress.seconds_sent - progress.heard_s)

    options = StreamOptions(model=OPTIONS.model, ahead_s=5.0)
    with running_emulator(EmulatorConfig(speed=20)) as emu:
        result = asyncio.run(client(emu.base_url).transcribe(watched(), options, progress=progress))
    assert result.billed_audio_seconds == 40
    assert progress.heard_s > 38 and not progress.window_lifted
    assert max(ahead) <= 5.0 + 1.0, ahead  # the window, plus the message in flight
