"""Realtime transcription of one PCM stream through the SDK's `connect()`.

The SDK's `transcribe_stream()` cannot be used: it sends `end` even when the audio source
failed (the server would then answer `done` for partial audio), has no timeout on silence,
and ends quietly on a clean close. Here a stream that ends without `transcription.done`
is always an error, and the audio source's errors win over anything the server says.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from mistralai.client import Mistral
from mistralai.client.models import (
    AudioFormat,
    RealtimeTranscriptionError,
    TranscriptionStreamDone,
    TranscriptionStreamLanguage,
    TranscriptionStreamSegmentDelta,
    TranscriptionStreamTextDelta,
)
from mistralai.extra.exceptions import RealtimeTranscriptionException
from mistralai.extra.realtime import RealtimeConnection, UnknownRealtimeEvent
from websockets.exceptions import ConnectionClosed

from voxbatch.config import Settings
from voxbatch.documents import TimedText
from voxbatch.errors import (
    ProviderError,
    StreamIncompleteError,
    VoxbatchError,
    one_line,
)
from voxbatch.media.audio import pcm_seconds
from voxbatch.providers.realtime_errors import close_code, connect_error, sender_error, server_error

_END = object()
CLOSE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class StreamOptions:
    model: str
    language: str | None = None
    context_bias: tuple[str, ...] = ()
    diarize: bool = False
    target_streaming_delay_ms: int | None = 480
    pace: float = 0.0  # 0 = as fast as the server reads; N = N x real time
    # Send at most this many seconds past the end of the last segment heard (None: no limit):
    # what a session cut short had sent but not heard is what must be bought again.
    ahead_s: float | None = None


@dataclass
class StreamProgress:
    """Shared with the caller so a failed attempt can still be charged for what was sent."""

    bytes_sent: int = 0
    request_id: str | None = None
    # Told once the connection is closed (the server has seen the close, or it was dropped).
    on_closed: Callable[[], None] | None = None
    # Told once the server accepted the session (so the key and model are good).
    on_connected: Callable[[], None] | None = None
    # Told how far into the audio the server has transcribed (each segment's end, seconds):
    # what a progress bar should show, since audio sent is far ahead of audio heard.
    on_heard: Callable[[float], None] | None = None
    # Told each segment as it arrives (a part records them, to resume after the last one).
    on_segment: Callable[[TimedText], None] | None = None
    # The end of the last timed segment heard (seconds of this session's audio).
    heard_s: float = 0.0
    heard_changed: asyncio.Event = field(default_factory=asyncio.Event)
    window_lifted: bool = False  # the server gives no segment times: `ahead_s` cannot hold

    @property
    def seconds_sent(self) -> float:
        return pcm_seconds(self.bytes_sent)


@dataclass(frozen=True)
class StreamResult:
    text: str
    language: str | None
    model: str
    segments: list[TimedText]
    billed_audio_seconds: int
    usage_reported: bool
    request_id: str | None
    bytes_sent: int


@dataclass(frozen=True)
class ClientSettings:
    api_key: str = field(repr=False)
    base_url: str
    connect_timeout_s: float = 20.0
    idle_timeout_s: float = 60.0


class RealtimeTranscriber:
    """Streams PCM through one realtime session per call."""

    def __init__(self, settings: ClientSettings) -> None:
        self._settings = settings
        self._client = Mistral(api_key=settings.api_key, server_url=settings.base_url)

    async def _connect(self, options: StreamOptions) -> RealtimeConnection:
        try:
            return await self._client.audio.realtime.connect(
                model=options.model,
                audio_format=AudioFormat(encoding="pcm_s16le", sample_rate=16_000),
                target_streaming_delay_ms=options.target_streaming_delay_ms,
                timeout_ms=int(self._settings.connect_timeout_s * 1000),
                diarize=options.diarize or None,
                context_bias=list(options.context_bias) or None,
                language=options.language,
            )
        except RealtimeTranscriptionException as exc:
            raise connect_error(exc, self._settings.base_url) from exc

    async def handshake(self, model: str) -> str | None:
        """Open a session and close it without sending audio: proves URL, key and model work.

        Nothing is transcribed, so nothing is billed. Returns the server's request id.
        """
        try:
            connection = await self._connect(StreamOptions(model=model))
        except VoxbatchError as exc:
            raise self.redact(exc) from None
        try:
            return connection.request_id
        finally:
            await _close(connection, polite=True)

    def redact(self, exc: BaseException) -> BaseException:
        """Errors can quote request headers (a malformed key, say): never let the key through."""
        key = self._settings.api_key
        # Keys shorter than this are test stand-ins; replacing them would garble words.
        if isinstance(exc, VoxbatchError) and len(key) >= 8 and key in exc.message:
            exc.message = exc.message.replace(key, "***")
            exc.args = (exc.message,)
        return exc

    async def transcribe(
        self,
        audio: AsyncGenerator[bytes, None],
        options: StreamOptions,
        *,
        progress: StreamProgress | None = None,
        on_delta: Callable[[str], None] | None = None,
        deadline_s: float | None = None,
    ) -> StreamResult:
        try:
            return await self._transcribe(audio, options, progress, on_delta, deadline_s)
        except VoxbatchError as exc:
            raise self.redact(exc) from None

    async def _transcribe(
        self,
        audio: AsyncGenerator[bytes, None],
        options: StreamOptions,
        progress: StreamProgress | None,
        on_delta: Callable[[str], None] | None,
        deadline_s: float | None,
    ) -> StreamResult:
        progress = progress if progress is not None else StreamProgress()
        connection = await self._connect(options)
        progress.request_id = connection.request_id
        if progress.on_connected is not None:
            progress.on_connected()
        events: asyncio.Queue[object] = asyncio.Queue()
        state = _Liveness()

        async def receive() -> None:
            try:
                async for event in connection:
                    state.touch()
                    await events.put(event)
            except ConnectionClosed as exc:
                await events.put(exc)
            await events.put(_END)

        sender = asyncio.create_task(self._send(connection, audio, options, progress, state))
        receiver = asyncio.create_task(receive())
        finished = False
        try:
            result = await self._collect(
                events, sender, options, progress, state, on_delta, deadline_s
            )
            finished = True
            return result
        finally:
            if finished:
                # The transcription is done and billed: hand it back to be recorded now, and
                # say goodbye meanwhile. Waiting for the closing handshake first (up to 2 s)
                # was a window in which a crash lost a finished transcription, bought again.
                _closing.add(task := asyncio.create_task(_close(connection, polite=True)))
                task.add_done_callback(_closing.discard)
                if progress.on_closed is not None:
                    closed = progress.on_closed
                    task.add_done_callback(lambda _task: closed())
            else:
                # After a failure the server may be stalled: drop the connection rather than
                # wait for a closing handshake that may never come.
                await _close(connection, polite=False)
                if progress.on_closed is not None:
                    progress.on_closed()
            for task in (sender, receiver):
                task.cancel()
            for task in (sender, receiver):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _send(
        self,
        connection: RealtimeConnection,
        audio: AsyncGenerator[bytes, None],
        options: StreamOptions,
        progress: StreamProgress,
        state: _Liveness,
    ) -> None:
        started = time.monotonic()
        # aclosing: a failed or cancelled stream must stop ffmpeg now, not at garbage collection.
        async with contextlib.aclosing(audio) as chunks:
            async for chunk in chunks:
                if options.pace > 0:
                    due = started + progress.seconds_sent / options.pace
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if options.ahead_s is not None and not progress.window_lifted:
                    await _within_window(progress, options.ahead_s, self._settings.idle_timeout_s)
                await connection.send_audio(chunk)
                progress.bytes_sent += len(chunk)
                state.touch()
        # Only a source that finished cleanly may end the stream: the server bills and
        # answers `done` for whatever it got.
        await connection.end_audio()
        state.touch()

    async def _collect(
        self,
        events: asyncio.Queue[object],
        sender: asyncio.Task[None],
        options: StreamOptions,
        progress: StreamProgress,
        state: _Liveness,
        on_delta: Callable[[str], None] | None,
        deadline_s: float | None,
    ) -> StreamResult:
        idle = self._settings.idle_timeout_s
        deadline = None if deadline_s is None else time.monotonic() + deadline_s
        language: str | None = options.language
        segments: list[TimedText] = []
        getter: asyncio.Task[object] | None = None
        try:
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(events.get())
                waiting = {getter} if sender.done() else {getter, sender}
                done, _ = await asyncio.wait(
                    waiting, timeout=0.5, return_when=asyncio.FIRST_COMPLETED
                )
                if sender in done and sender.exception() is not None:
                    _hand_over_heard(getter, events, progress)
                    raise sender_error(sender.exception())
                if deadline is not None and time.monotonic() > deadline:
                    raise StreamIncompleteError(
                        f"transcription took longer than {deadline_s:g} s, the limit for this file",
                        retryable=True,
                    )
                if getter not in done:
                    if state.silent_for() > idle:
                        raise StreamIncompleteError(
                            f"no answer from the transcription server for {idle:g} s",
                            retryable=True,
                        )
                    continue
                event = getter.result()
                getter = None
                if event is _END:
                    if sender.done() and sender.exception() is not None:
                        raise sender_error(sender.exception())
                    raise StreamIncompleteError(
                        "the transcription stream ended without transcription.done",
                        retryable=True,
                    )
                if isinstance(event, ConnectionClosed):
                    raise StreamIncompleteError(
                        f"the transcription connection dropped (close code {close_code(event)})",
                        retryable=True,
                    )
                if isinstance(event, RealtimeTranscriptionError):
                    detail = event.error.message
                    message = detail if isinstance(detail, str) else getattr(detail, "detail", "")
                    raise server_error(event.error.code, str(message))
                if isinstance(event, TranscriptionStreamTextDelta):
                    if on_delta is not None:
                        on_delta(event.text)
                elif isinstance(event, TranscriptionStreamLanguage):
                    language = event.audio_language or language
                elif isinstance(event, TranscriptionStreamSegmentDelta):
                    segment = TimedText(event.start, event.end, event.text, _speaker(event))
                    segments.append(segment)
                    if event.end is not None and event.end > progress.heard_s:
                        progress.heard_s = event.end
                        progress.heard_changed.set()
                    if progress.on_segment is not None:
                        progress.on_segment(segment)
                    if progress.on_heard is not None and event.end is not None:
                        progress.on_heard(event.end)
                elif isinstance(event, UnknownRealtimeEvent) and event.type in (
                    "transcription.done",
                    "error",
                ):
                    # The server answered, but not in a form the SDK accepts: retrying would
                    # pay again for the same surprise.
                    raise ProviderError(
                        f"the server's {event.type} message did not validate "
                        f"({one_line(event.error, 200)}); is the SDK out of date?",
                        retryable=False,
                        hint="upgrade mistralai, or report the message to Mistral",
                    )
                elif isinstance(event, TranscriptionStreamDone):
                    if not sender.done():
                        # `done` before we ended the audio would be a transcript of part of it.
                        raise StreamIncompleteError(
                            "the server finished before all audio was sent", retryable=True
                        )
                    return _result(event, segments, language, progress)
        finally:
            if getter is not None:
                getter.cancel()


# Polite closes still under way (a reference keeps each task alive until it ends).
_closing: set[asyncio.Task[None]] = set()


async def _close(connection: RealtimeConnection, *, polite: bool) -> None:
    """Close politely after success; otherwise (or if the server does not answer) abort."""
    if polite:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT_S)
            return
    # The SDK exposes no abort; dropping the TCP connection is the only way out.
    websocket = getattr(connection, "_websocket", None)
    transport = getattr(websocket, "transport", None)
    if transport is not None:
        transport.abort()


class _Liveness:
    def __init__(self) -> None:
        self.last = time.monotonic()

    def touch(self) -> None:
        self.last = time.monotonic()

    def silent_for(self) -> float:
        return time.monotonic() - self.last


async def _within_window(progress: StreamProgress, ahead_s: float, idle_s: float) -> None:
    """Wait until what was sent is within `ahead_s` of what was heard. A server that reports
    no timed segment at all for half the idle timeout is not held to it (it cannot be)."""
    while progress.seconds_sent - progress.heard_s >= ahead_s:
        progress.heard_changed.clear()
        try:
            await asyncio.wait_for(progress.heard_changed.wait(), idle_s / 2)
        except TimeoutError:
            if progress.heard_s == 0:
                progress.window_lifted = True  # no segment times from this server: send on
                return
            continue  # the receiver's own idle timeout decides about a silent server


def _hand_over_heard(
    getter: asyncio.Future[object], events: asyncio.Queue[object], progress: StreamProgress
) -> None:
    """Sending failed (the connection dropped): segments already received still count, so
    that a part resumes after the last of them."""
    received = [getter.result()] if getter.done() and not getter.cancelled() else []
    while not events.empty():
        received.append(events.get_nowait())
    for event in received:
        if isinstance(event, TranscriptionStreamSegmentDelta) and progress.on_segment is not None:
            progress.on_segment(TimedText(event.start, event.end, event.text, _speaker(event)))


def _speaker(event: object) -> str | None:
    speaker = getattr(event, "speaker_id", None)
    return None if speaker in (None, "") else str(speaker)


def _result(
    done: TranscriptionStreamDone,
    streamed_segments: list[TimedText],
    language: str | None,
    progress: StreamProgress,
) -> StreamResult:
    if done.segments:
        segments = [TimedText(seg.start, seg.end, seg.text, _speaker(seg)) for seg in done.segments]
    else:
        segments = streamed_segments
    reported = done.usage.prompt_audio_seconds
    usage_reported = isinstance(reported, int) and reported > 0
    billed = reported if usage_reported else math.ceil(progress.seconds_sent)
    return StreamResult(
        text=done.text,
        language=done.language or language,
        model=done.model,
        segments=segments,
        billed_audio_seconds=int(billed or 0),
        usage_reported=usage_reported,
        request_id=progress.request_id,
        bytes_sent=progress.bytes_sent,
    )


def default_transcriber(settings: Settings) -> Callable[[], RealtimeTranscriber]:
    def make() -> RealtimeTranscriber:
        return RealtimeTranscriber(
            ClientSettings(
                api_key=settings.api_key(),
                base_url=settings.mistral.base_url,
                connect_timeout_s=settings.mistral.connect_timeout_s,
                idle_timeout_s=settings.mistral.idle_timeout_s,
            )
        )

    return make
