"""Result files in the outbox (.txt, .srt, .vtt, .tsv, .json), written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlmodel import Session

from voxbatch.config import InboxProfile
from voxbatch.documents import TranscriptDocument
from voxbatch.documents.formats import render
from voxbatch.documents.subtitles import CueShape
from voxbatch.errors import (
    VoxbatchError,
)
from voxbatch.store import calls, transcripts
from voxbatch.store.models import Job


def atomic_write(path: Path, content: str) -> None:
    """Readers (and sync tools watching the outbox) never see half a file."""
    atomic_write_bytes(path, content.encode("utf-8"))


def output_stem(out_dir: Path, source_name: str, job_id: int, formats: Iterable[str]) -> str:
    """`<name>` unless another job's result already has that name, then `<name>-<job id>`."""
    stem = Path(source_name).stem or "audio"
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


def cue_shape(profile: InboxProfile) -> CueShape:
    return CueShape(
        profile.subtitle_line_chars, profile.subtitle_lines, profile.subtitle_cue_seconds
    )


def write_outputs(
    doc: TranscriptDocument,
    out_dir: Path,
    formats: Sequence[str],
    shape: CueShape | None = None,
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = output_stem(out_dir, doc.source_name, doc.job_id, formats)
    written = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        atomic_write(path, render(doc, fmt, shape))
        written.append(path)
    return written


def atomic_write_bytes(path: Path, content: bytes) -> None:
    """Written to a temporary name, fsynced, then renamed into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
