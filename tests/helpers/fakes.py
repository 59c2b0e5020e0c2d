"""A fake `Transcriber` for the fast tier: it reads the audio it is given and answers at once."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from voxbatch.documents import TimedText
from voxbatch.media.audio import pcm_seconds
from voxbatch.providers.realtime import StreamOptions, StreamProgress, StreamResult


@dataclass
class FakeTranscriber:
    """Counts every request; `before_answer` runs once the audio is all read (to inject a
    fault between the server finishing and the result being recorded)."""

    text: str = "hello from the fake transcriber"
    before_answer: Callable[[], None] | None = None
    requests: list[StreamOptions] = field(default_factory=list)

    async def handshake(self, model: str) -> str | None:
        return "fake-handshake"

    async def transcribe(
        self,
        audio: AsyncGenerator[bytes, None],
        options: StreamOptions,
        *,
        progress: StreamProgress | None = None,
        on_delta: Callable[[str], None] | None = None,
        deadline_s: float | None = None,
    ) -> StreamResult:
        self.requests.append(options)
        request_id = f"fake-{len(self.requests)}"
        if progress is not None:
            progress.request_id = request_id
            if progress.on_connected is not None:
                progress.on_connected()
        try:
            sent = 0
            async for chunk in audio:
                sent += len(chunk)
                if progress is not None:
                    progress.bytes_sent = sent
            if on_delta is not None:
                on_delta(self.text)
            if self.before_answer is not None:
                self.before_answer()
        finally:  # as the real one, it says when its session is closed
            if progress is not None and progress.on_closed is not None:
                progress.on_closed()
        seconds = pcm_seconds(sent)
        return StreamResult(
            text=self.text,
            language="en",
            model=options.model,
            segments=[TimedText(0.0, seconds, self.text)],
            billed_audio_seconds=math.ceil(seconds),
            usage_reported=True,
            request_id=request_id,
            bytes_sent=sent,
        )
