"""What a transcription backend offers the stages: a handshake and one streamed request.

`realtime.RealtimeTranscriber` is Mistral's realtime API through the SDK; tests use fakes of
the same shape, and a batch backend would be another implementation.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Protocol

from voxbatch.providers.realtime import StreamOptions, StreamProgress, StreamResult


class Transcriber(Protocol):
    async def handshake(self, model: str) -> str | None:
        """Prove URL, key and model work without sending audio (nothing billed)."""
        ...

    async def transcribe(
        self,
        audio: AsyncGenerator[bytes, None],
        options: StreamOptions,
        *,
        progress: StreamProgress | None = None,
        on_delta: Callable[[str], None] | None = None,
        deadline_s: float | None = None,
    ) -> StreamResult:
        """Stream `audio` (16 kHz mono s16le) and return the finished transcription."""
        ...


# Builds the transcriber when it is first needed (it reads the key then).
TranscriberFactory = Callable[[], Transcriber]
