"""A transcript document rendered as txt, srt, vtt, tsv or json (pure: text in, text out)."""

from __future__ import annotations

import json
from itertools import groupby

import pysubs2

from voxbatch.documents import TranscriptDocument, money_text
from voxbatch.documents.subtitles import (
    Cue,
    CueShape,
    shape_cues,
    speaker_label,
    timed_segments,
)

# Version 1 was the JSON before `schema_version` existed: text kept the recognizer's
# leading spaces. Version 2: texts stripped, speaker null when unknown, money as a string.
JSON_SCHEMA_VERSION = 2


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _cues(doc: TranscriptDocument, shape: CueShape, *, speaker_prefix: bool) -> list[Cue]:
    return shape_cues(
        doc.segments,
        shape,
        fallback_text=doc.text,
        duration=doc.duration_seconds,
        speaker_prefix=speaker_prefix,
    )


def _srt(doc: TranscriptDocument, shape: CueShape) -> str:
    subs = pysubs2.SSAFile()
    for cue in _cues(doc, shape, speaker_prefix=True):
        event = pysubs2.SSAEvent(start=_ms(cue.start), end=_ms(cue.end))
        event.plaintext = speaker_label(cue.speaker) + "\n".join(cue.lines)
        subs.append(event)
    return subs.to_string("srt")


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt_time(seconds: float) -> str:
    ms = _ms(seconds)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _vtt(doc: TranscriptDocument, shape: CueShape) -> str:
    """WebVTT written by hand: pysubs2 neither escapes `&<>` nor knows voice spans."""
    blocks = ["WEBVTT\n"]
    for cue in _cues(doc, shape, speaker_prefix=False):
        body = "\n".join(_vtt_escape(line) for line in cue.lines)
        if cue.speaker:
            body = f"<v {_vtt_escape(cue.speaker)}>{body}"
        blocks.append(f"{_vtt_time(cue.start)} --> {_vtt_time(cue.end)}\n{body}\n")
    return "\n".join(blocks)


def _tsv(doc: TranscriptDocument) -> str:
    """As whisper writes it: a header, then one segment a row, times in integer milliseconds."""
    rows = ["start\tend\ttext"]
    for seg in timed_segments(doc.segments, fallback_text=doc.text, duration=doc.duration_seconds):
        assert seg.start is not None and seg.end is not None
        rows.append(f"{_ms(seg.start)}\t{_ms(seg.end)}\t{seg.text}")
    return "\n".join(rows) + "\n"


def _txt(doc: TranscriptDocument) -> str:
    """The text; with speakers, one paragraph a turn, each opened by `[speaker]`."""
    segments = timed_segments(doc.segments)
    if not any(seg.speaker for seg in segments):
        return doc.text.strip() + "\n"
    turns = [
        speaker_label(speaker) + " ".join(seg.text for seg in turn)
        for speaker, turn in groupby(segments, key=lambda seg: seg.speaker)
    ]
    return "\n\n".join(turns) + "\n"


def _json(doc: TranscriptDocument) -> str:
    data = {
        "schema_version": JSON_SCHEMA_VERSION,
        "job_id": doc.job_id,
        "file": doc.source_name,
        "content_sha256": doc.content_sha256,
        "text": doc.text.strip(),
        "language": doc.language,
        "model": doc.model,
        "duration_seconds": doc.duration_seconds,
        "cost_usd": money_text(doc.cost_usd),
        "segments": [
            {
                "start": seg.start,
                "end": seg.end,
                "text": seg.text.strip(),
                "speaker": seg.speaker or None,
            }
            for seg in doc.segments
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def render(doc: TranscriptDocument, fmt: str, shape: CueShape | None = None) -> str:
    shape = shape or CueShape()
    if fmt == "txt":
        return _txt(doc)
    if fmt == "srt":
        return _srt(doc, shape)
    if fmt == "vtt":
        return _vtt(doc, shape)
    if fmt == "tsv":
        return _tsv(doc)
    if fmt == "json":
        return _json(doc)
    raise ValueError(f"unknown output format {fmt!r}")
