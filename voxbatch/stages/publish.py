"""Result files in the outbox: .txt, .srt, .vtt and .json, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import pysubs2
from sqlmodel import Session

from voxbatch.documents import TimedText, TranscriptDocument
from voxbatch.errors import (
    VoxbatchError,
)
from voxbatch.names import fit, shorten
from voxbatch.store import calls, transcripts
from voxbatch.store.models import Job


def _cues(doc: TranscriptDocument) -> list[TimedText]:
    """Segments with usable times; missing times borrow their neighbours' so cues never go back."""
    cues: list[TimedText] = []
    cursor = 0.0
    for seg in doc.segments:
        text = seg.text.strip()
        if not text:
            continue
        start = seg.start if seg.start is not None else cursor
        end = seg.end if seg.end is not None and seg.end > start else start + 1.0
        start = max(start, cursor)
        end = max(end, start + 0.001)
        cues.append(TimedText(start, end, text, seg.speaker))
        cursor = end
    if not cues and doc.text.strip():
        cues.append(TimedText(0.0, doc.duration_seconds or 1.0, doc.text.strip()))
    return cues


def _subtitles(doc: TranscriptDocument, fmt: str) -> str:
    subs = pysubs2.SSAFile()
    for cue in _cues(doc):
        assert cue.start is not None and cue.end is not None
        text = f"[{cue.speaker}] {cue.text}" if cue.speaker else cue.text
        event = pysubs2.SSAEvent(start=round(cue.start * 1000), end=round(cue.end * 1000))
        event.plaintext = text
        subs.append(event)
    return subs.to_string(fmt)


def _json(doc: TranscriptDocument) -> str:
    data = {
        "job_id": doc.job_id,
        "file": doc.source_name,
        "content_sha256": doc.content_sha256,
        "text": doc.text,
        "language": doc.language,
        "model": doc.model,
        "duration_seconds": doc.duration_seconds,
        "cost_usd": str(doc.cost_usd),
        "segments": [asdict(seg) for seg in doc.segments],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def render(doc: TranscriptDocument, fmt: str) -> str:
    if fmt == "txt":
        return doc.text.strip() + "\n"
    if fmt in ("srt", "vtt"):
        return _subtitles(doc, fmt)
    if fmt == "json":
        return _json(doc)
    raise ValueError(f"unknown output format {fmt!r}")


def atomic_write(path: Path, content: str) -> None:
    """Readers (and sync tools watching the outbox) never see half a file."""
    atomic_write_bytes(path, content.encode("utf-8"))


# Room left after a stem, whatever the job: `-<job id>` (10 digits) and the longest ending
# (`.summary.opus`), so every output name fits NAME_MAX and a name always shortens the same way.
_AFTER_STEM = len("-2147483647") + len(".summary.opus") + 3


def output_stem(out_dir: Path, source_name: str, job_id: int, formats: Iterable[str]) -> str:
    """`<name>` unless another job's result already has that name, then `<name>-<job id>`."""
    stem = shorten(Path(source_name).stem or "audio", _AFTER_STEM)
    formats = list(formats)
    if any((out_dir / f"{stem}.{fmt}").exists() for fmt in formats):
        owned = out_dir / f"{stem}.json"
        if owned.exists() and _json_job_id(owned) == job_id:
            return stem
        return f"{stem}-{job_id}"
    return stem


def _json_job_id(path: Path) -> int | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("job_id")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def write_outputs(doc: TranscriptDocument, out_dir: Path, formats: Sequence[str]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = output_stem(out_dir, doc.source_name, doc.job_id, formats)
    written = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        atomic_write(path, render(doc, fmt))
        written.append(path)
    return written


def atomic_write_bytes(path: Path, content: bytes) -> None:
    """Written to a temporary name, fsynced, then renamed into place."""
    prefix = fit(path.name, ".", head=".", reserve=len("XXXXXXXX.tmp"))  # mkstemp's 8 + suffix
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def document_for(session: Session, job: Job) -> TranscriptDocument:
    transcript = transcripts.transcript_for(session, job)
    if transcript is None or transcript.id is None:
        raise VoxbatchError(f"job {job.id} has no transcript yet (state {job.state})")
    return TranscriptDocument(
        job_id=job.id or 0,
        source_name=job.source_name,
        content_sha256=job.content_sha256,
        text=transcript.text,
        language=transcript.language,
        model=transcript.model,
        duration_seconds=transcript.audio_seconds,
        cost_usd=calls.job_cost(session, transcript.job_id),
        segments=tuple(transcripts.segments_for(session, transcript.id)),
    )
