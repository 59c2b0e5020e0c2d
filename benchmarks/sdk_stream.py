"""Baseline: the Mistral SDK's own realtime client streaming ready PCM as fast as it can.

    python -m benchmarks.sdk_stream URL KEY FILE.s16le

The SDK's `connect()` is used as it is (handshake, session update, events), except that its
websocket is opened with compression off: `connect()` calls `websockets.connect` through a
name in its module, which is replaced by the same function with `compression=None`. The run
fails if permessage-deflate was negotiated anyway. Prints one JSON line: seconds from
connecting to `transcription.done`, audio seconds sent, characters of text received.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time
from pathlib import Path

from mistralai.client import Mistral
from mistralai.client.models import (
    AudioFormat,
    RealtimeTranscriptionError,
    TranscriptionStreamDone,
)
from mistralai.extra.realtime import transcription
from websockets.asyncio.client import connect as websockets_connect

MODEL = "voxtral-mini-transcribe-realtime-2602"
CHUNK_BYTES = 262_144  # the largest append the service takes


async def stream(url: str, key: str, pcm: Path) -> dict[str, float]:
    setattr(transcription, "connect", functools.partial(websockets_connect, compression=None))  # noqa: B010
    client = Mistral(api_key=key, server_url=url)
    started = time.monotonic()
    connection = await client.audio.realtime.connect(
        model=MODEL, audio_format=AudioFormat(encoding="pcm_s16le", sample_rate=16_000)
    )
    response = connection._websocket.response
    extensions = response.headers.get("Sec-WebSocket-Extensions") if response else None
    if extensions:
        raise SystemExit(f"compression was negotiated after all: {extensions}")
    sent = 0

    async def send() -> None:
        nonlocal sent
        with pcm.open("rb") as source:
            while chunk := source.read(CHUNK_BYTES):
                await connection.send_audio(chunk)
                sent += len(chunk)
        await connection.end_audio()

    sender = asyncio.create_task(send())
    text = 0
    async for event in connection:
        if isinstance(event, RealtimeTranscriptionError):
            raise SystemExit(f"server error: {event}")
        if isinstance(event, TranscriptionStreamDone):
            text = len(event.text)
            break
    await sender
    elapsed = time.monotonic() - started
    await connection.close()
    return {"stream_s": elapsed, "audio_s": sent / 32_000, "text_chars": text}


def main() -> None:
    url, key, pcm = sys.argv[1:4]
    print(json.dumps(asyncio.run(stream(url, key, Path(pcm)))))


if __name__ == "__main__":
    main()
