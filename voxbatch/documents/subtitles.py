"""Subtitle-shaped cues: short lines, few lines a cue, a few seconds a cue.

The recognizer's segments can last minutes and hold paragraphs; a subtitle cue must be read
at a glance. Segments are cut at word boundaries into cues of at most `max_lines` lines of at
most `max_line_chars` characters, lasting at most `max_cue_seconds`. The segments carry no
word timings, so a segment's time is shared among its words in proportion to their length
in characters. Words are never broken: a word longer than a line gets a line of its own (and
a word that alone lasts longer than a cue gets a cue of its own).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from voxbatch.documents import TimedText

# The common norms (Netflix, BBC and EBU guidelines are all close to these).
DEFAULT_LINE_CHARS = 42
DEFAULT_LINES = 2
DEFAULT_CUE_SECONDS = 7.0
# A segment whose end is unknown (or not after its start) is given this long.
_MISSING_DURATION = 1.0
_MIN_DURATION = 0.001


@dataclass(frozen=True)
class CueShape:
    max_line_chars: int = DEFAULT_LINE_CHARS
    max_lines: int = DEFAULT_LINES
    max_cue_seconds: float = DEFAULT_CUE_SECONDS


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]
    speaker: str | None = None

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def timed_segments(
    segments: Iterable[TimedText], *, fallback_text: str = "", duration: float | None = None
) -> list[TimedText]:
    """Segments with text and usable times that never go back: missing times borrow their
    neighbours'. With no segments, the whole text is one segment over the whole file."""
    out: list[TimedText] = []
    cursor = 0.0
    for seg in segments:
        text = " ".join(seg.text.split())
        if not text:
            continue
        start = max(seg.start if seg.start is not None else cursor, cursor)
        end = seg.end if seg.end is not None and seg.end > start else start + _MISSING_DURATION
        end = max(end, start + _MIN_DURATION)
        out.append(TimedText(start, end, text, seg.speaker or None))
        cursor = end
    fallback = " ".join(fallback_text.split())
    if not out and fallback:
        out.append(TimedText(0.0, duration or _MISSING_DURATION, fallback))
    return out


def words_of(segment: TimedText) -> list[Word]:
    """The segment's words, its time shared among them in proportion to their length."""
    assert segment.start is not None and segment.end is not None
    texts = segment.text.split()
    total = sum(len(t) for t in texts)
    span = segment.end - segment.start
    words: list[Word] = []
    done = 0
    for i, text in enumerate(texts):
        start = segment.start + span * done / total
        done += len(text)
        # The last word ends exactly where the segment does (no rounding drift).
        end = segment.end if i == len(texts) - 1 else segment.start + span * done / total
        words.append(Word(text, start, end))
    return words


def _wrap(words: Sequence[str], width: int, indent: int) -> list[str]:
    """Greedy wrap at word boundaries; the first line starts `indent` characters in."""
    lines: list[str] = []
    current = ""
    room = width - indent
    for word in words:
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= room:
            current += " " + word
        else:
            lines.append(current)
            current, room = word, width
    if current:
        lines.append(current)
    return lines


def _cues_of(segment: TimedText, shape: CueShape, indent: int) -> list[Cue]:
    cues: list[Cue] = []
    pending: list[Word] = []

    def flush() -> None:
        if pending:
            lines = _wrap([w.text for w in pending], shape.max_line_chars, indent)
            cues.append(Cue(pending[0].start, pending[-1].end, tuple(lines), segment.speaker))
            pending.clear()

    for word in words_of(segment):
        if pending:
            texts = [w.text for w in pending] + [word.text]
            too_long = len(_wrap(texts, shape.max_line_chars, indent)) > shape.max_lines
            too_slow = word.end - pending[0].start > shape.max_cue_seconds
            if too_long or too_slow:
                flush()
        pending.append(word)
    flush()
    return cues


def shape_cues(
    segments: Iterable[TimedText],
    shape: CueShape = CueShape(),
    *,
    fallback_text: str = "",
    duration: float | None = None,
    speaker_prefix: bool = False,
) -> list[Cue]:
    """Cues in time order, never overlapping; each segment's words in order, none lost.

    `speaker_prefix`: the first line of a cue with a speaker will be shown as `[speaker] ...`,
    so its width counts against that line.
    """
    cues: list[Cue] = []
    for segment in timed_segments(segments, fallback_text=fallback_text, duration=duration):
        indent = len(speaker_label(segment.speaker)) if speaker_prefix and segment.speaker else 0
        cues += _cues_of(segment, shape, indent)
    return cues


def speaker_label(speaker: str | None) -> str:
    """How SRT and TXT show a speaker in front of their words."""
    return f"[{speaker}] " if speaker else ""
