"""A deterministic stand-in for speech recognition: the transcript is a function of the PCM.

The emulator cannot recognise speech, so it finds voiced intervals with an energy detector and
names each one with a word chosen by hashing its samples. A test can then tell that the right
audio arrived, whole and in order, by computing `recognize(pcm)` itself.

Input is pcm_s16le, 16 kHz, mono. The incremental recogniser keeps only a bounded look-back
(the current interval's hash state and at most one merge gap of frames), never the whole stream.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from dataclasses import dataclass, field
from operator import mul

from voxbatch.emulator.words import WORDS

SAMPLE_RATE = 16_000
BYTES_PER_SECOND = SAMPLE_RATE * 2
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
# A frame is voiced when its RMS exceeds this (about -36 dBFS): silence and hiss stay below.
VOICED_RMS = 500
_VOICED_ENERGY = VOICED_RMS * VOICED_RMS * FRAME_SAMPLES
# Gaps shorter than 150 ms are merged into the interval; intervals shorter than 60 ms are dropped.
MERGE_GAP_FRAMES = 150 // FRAME_MS + 1  # a gap of 8 frames (160 ms) ends an interval
MIN_INTERVAL_FRAMES = 60 // FRAME_MS
# Segments end at a pause of at least 0.5 s, or once they reach 10 s.
SEGMENT_PAUSE_FRAMES = 500 // FRAME_MS
SEGMENT_MAX_FRAMES = 10_000 // FRAME_MS


def frames_to_seconds(frames: int) -> float:
    """Frame count to seconds, computed so that 3 frames is 0.06, not 0.06000000000000001."""
    return frames * FRAME_MS / 1000


@dataclass(frozen=True)
class Token:
    """One voiced interval: `text` is the delta as emitted, with its leading space."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    text: str
    start: float
    end: float
    speaker_id: str | None = None


@dataclass(frozen=True)
class RecognizerEvent:
    """A token or a closed segment, and the stream time (seconds) at which it became known."""

    at: float
    token: Token | None = None
    segment: Segment | None = None


@dataclass(frozen=True)
class Recognition:
    tokens: tuple[Token, ...]
    segments: tuple[Segment, ...]
    text: str


def word_for(digest: bytes) -> str:
    return WORDS[int.from_bytes(digest[:8], "big") % len(WORDS)]


@dataclass
class _OpenSegment:
    start_frame: int
    end_frame: int
    words: list[str] = field(default_factory=list)


class IncrementalRecognizer:
    """Feed PCM in chunks of any size; get tokens and segments as soon as they are certain.

    `finish()` closes what is pending (an interval in progress, the open segment): the session calls
    it on flush and on end, so a flush in the middle of a voiced interval cuts it there.
    """

    def __init__(self, *, diarize: bool = False) -> None:
        self.diarize = diarize
        self.received_bytes = 0
        self.text = ""
        self.segments: list[Segment] = []
        self._remainder = b""
        self._frame_index = 0
        self._hasher: hashlib.blake2b | None = None
        self._interval_start = 0
        self._voiced_end = 0
        self._gap: list[bytes] = []
        self._segment: _OpenSegment | None = None
        self._last_token_end = 0

    @property
    def audio_seconds(self) -> float:
        return self.received_bytes / BYTES_PER_SECOND

    @property
    def processed_seconds(self) -> float:
        """Stream time up to which whole frames have been analysed."""
        return frames_to_seconds(self._frame_index)

    def feed(self, pcm: bytes) -> list[RecognizerEvent]:
        self.received_bytes += len(pcm)
        data = self._remainder + pcm if self._remainder else pcm
        whole = len(data) - len(data) % FRAME_BYTES
        events: list[RecognizerEvent] = []
        view = memoryview(data)
        for offset in range(0, whole, FRAME_BYTES):
            self._process_frame(bytes(view[offset : offset + FRAME_BYTES]), events)
        self._remainder = bytes(view[whole:])
        return events

    def finish(self) -> list[RecognizerEvent]:
        """Close the pending interval and segment (a trailing partial frame is never analysed)."""
        events: list[RecognizerEvent] = []
        self._close_interval(events)
        self._close_segment(events)
        return events

    def _process_frame(self, frame: bytes, events: list[RecognizerEvent]) -> None:
        samples = array("h", frame)
        if sys.byteorder == "big":
            samples.byteswap()
        voiced = sum(map(mul, samples, samples)) > _VOICED_ENERGY
        index = self._frame_index
        self._frame_index += 1
        if voiced:
            hasher = self._hasher
            if hasher is None:
                hasher = self._hasher = hashlib.blake2b(digest_size=16)
                self._interval_start = index
            for gap_frame in self._gap:
                hasher.update(gap_frame)
            self._gap.clear()
            hasher.update(frame)
            self._voiced_end = index + 1
            return
        if self._hasher is not None:
            self._gap.append(frame)
            if len(self._gap) >= MERGE_GAP_FRAMES:
                self._close_interval(events)
        if (
            self._hasher is None
            and self._segment is not None
            and self._frame_index - self._last_token_end >= SEGMENT_PAUSE_FRAMES
        ):
            self._close_segment(events)

    def _close_interval(self, events: list[RecognizerEvent]) -> None:
        hasher, self._hasher = self._hasher, None
        self._gap.clear()
        if hasher is None or self._voiced_end - self._interval_start < MIN_INTERVAL_FRAMES:
            return
        start, end = self._interval_start, self._voiced_end
        word = word_for(hasher.digest())
        if self._segment is not None and start - self._segment.end_frame >= SEGMENT_PAUSE_FRAMES:
            self._close_segment(events)
        if self._segment is None:
            self._segment = _OpenSegment(start_frame=start, end_frame=end)
        self._segment.words.append(word)
        self._segment.end_frame = end
        self._last_token_end = end
        token = Token(text=" " + word, start=frames_to_seconds(start), end=frames_to_seconds(end))
        self.text += token.text
        events.append(RecognizerEvent(at=self.processed_seconds, token=token))
        if end - self._segment.start_frame >= SEGMENT_MAX_FRAMES:
            self._close_segment(events)

    def _close_segment(self, events: list[RecognizerEvent]) -> None:
        open_segment, self._segment = self._segment, None
        if open_segment is None:
            return
        speaker = f"speaker_{len(self.segments) % 2 + 1}" if self.diarize else None
        segment = Segment(
            text=" ".join(open_segment.words),
            start=frames_to_seconds(open_segment.start_frame),
            end=frames_to_seconds(open_segment.end_frame),
            speaker_id=speaker,
        )
        self.segments.append(segment)
        events.append(RecognizerEvent(at=self.processed_seconds, segment=segment))


def recognize(pcm: bytes, *, diarize: bool = False) -> Recognition:
    """Exactly what a session emits for this PCM sent in one go, then flushed or ended."""
    recognizer = IncrementalRecognizer(diarize=diarize)
    events = recognizer.feed(pcm) + recognizer.finish()
    tokens = tuple(event.token for event in events if event.token is not None)
    return Recognition(tokens=tokens, segments=tuple(recognizer.segments), text=recognizer.text)
