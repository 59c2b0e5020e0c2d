"""Result files in the outbox (.txt, .srt, .vtt, .tsv, .json), written atomically."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session

from voxbatch.config import OUTPUT_FORMATS, InboxProfile
from voxbatch.documents import TranscriptDocument
from voxbatch.documents.formats import render
from voxbatch.documents.subtitles import CueShape
from voxbatch.errors import VoxbatchError, display_path
from voxbatch.ingest.folders import PRIVATE_FILE, file_mode, make_folder, results_dir_mode
from voxbatch.names import fit, shorten
from voxbatch.store import calls, outputs, transcripts
from voxbatch.store.models import Job


def atomic_write(path: Path, content: str, *, mode: int = PRIVATE_FILE) -> None:
    """Readers (and sync tools watching the outbox) never see half a file."""
    atomic_write_bytes(path, content.encode("utf-8"), mode=mode)


@dataclass(frozen=True)
class Claims:
    """What the database knows of the outbox around one job's name: which audio (content hash)
    published each of these paths last, and the stems this audio was published under before,
    newest first."""

    by_path: Mapping[str, str] = field(default_factory=dict)
    earlier_stems: Sequence[str] = ()


def _stem_of(path: Path) -> str | None:
    """`talk-7` of `talk-7.srt`; None for a file that is not a transcript format."""
    stem, dot, fmt = path.name.rpartition(".")
    return stem if dot and fmt in OUTPUT_FORMATS else None


def claims_for(
    session: Session, doc: TranscriptDocument, out_dir: Path, formats: Sequence[str]
) -> Claims:
    base = _base(doc.source_name)
    earlier = outputs.published_from(session, doc.content_sha256, out_dir)
    # Only this name's own stems: a copy under another name gets files of its own name.
    own = re.compile(re.escape(base) + r"(-\d+)?")
    stems = [s for s in dict.fromkeys(_stem_of(p) for p in earlier) if s and own.fullmatch(s)]
    paths = [out_dir / f"{stem}.{fmt}" for stem in [*stems, base] for fmt in formats]
    return Claims(outputs.publishers(session, paths), tuple(stems))


# Room left after a stem, whatever the job: `-<job id>` (10 digits) and the longest ending
# (`.summary.opus`), so every output name fits NAME_MAX and a name always shortens the same way.
_AFTER_STEM = len("-2147483647") + len(".summary.opus") + 3


def _base(source_name: str) -> str:
    return shorten(Path(source_name).stem or "audio", _AFTER_STEM)


def output_stem(
    out_dir: Path,
    source_name: str,
    job_id: int,
    formats: Iterable[str],
    *,
    content_sha256: str = "",
    claims: Claims | None = None,
) -> str:
    """The name this audio's results were published under before, else `<name>`, as long as
    no other audio's results (nor a file voxbatch did not write) have it; else
    `<name>-<job id>`. The same audio run again thus publishes over its own files, while
    another file's results are never overwritten."""
    claims = claims or Claims()
    base = _base(source_name)
    formats = list(formats)
    for stem in dict.fromkeys([*claims.earlier_stems, base]):
        paths = [out_dir / f"{stem}.{fmt}" for fmt in formats]
        if all(_ours(p, content_sha256, job_id, claims) for p in paths if p.exists()):
            return stem
    return f"{base}-{job_id}"


def _ours(path: Path, content_sha256: str, job_id: int, claims: Claims) -> bool:
    recorded = claims.by_path.get(display_path(path.absolute()))
    if recorded is not None:
        return recorded == content_sha256
    # Written but not recorded (before voxbatch recorded outputs, or it stopped in between):
    # the JSON beside it says whose it is.
    found = _json_fields(path.with_name(path.name.rpartition(".")[0] + ".json"))
    return found.get("job_id") == job_id or (
        bool(content_sha256) and found.get("content_sha256") == content_sha256
    )


def _json_fields(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cue_shape(profile: InboxProfile) -> CueShape:
    return CueShape(
        profile.subtitle_line_chars, profile.subtitle_lines, profile.subtitle_cue_seconds
    )


def write_outputs(
    doc: TranscriptDocument,
    out_dir: Path,
    formats: Sequence[str],
    shape: CueShape | None = None,
    claims: Claims | None = None,
    *,
    shared: bool = False,
) -> list[Path]:
    """The result files, private, or readable by the group for a shared inbox."""
    make_folder(out_dir, results_dir_mode(shared))
    stem = output_stem(
        out_dir,
        doc.source_name,
        doc.job_id,
        formats,
        content_sha256=doc.content_sha256,
        claims=claims,
    )
    written = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        atomic_write(path, render(doc, fmt, shape), mode=file_mode(shared))
        written.append(path)
    return written


def atomic_write_bytes(path: Path, content: bytes, *, mode: int = PRIVATE_FILE) -> None:
    """Written to a temporary name with `mode`, fsynced, then renamed into place."""
    prefix = fit(path.name, ".", head=".", reserve=len("XXXXXXXX.tmp"))  # mkstemp's 8 + suffix
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
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
