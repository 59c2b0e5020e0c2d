"""The result files jobs wrote: listed by `show` and `process`, and asked who published a path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlmodel import Session, col, select

from voxbatch.errors import display_path
from voxbatch.store.models import Job, OutputFile


def _key(path: Path) -> str:
    return display_path(path.absolute())


def record_outputs(session: Session, job_id: int, paths: Iterable[Path]) -> None:
    """The files `job_id` wrote (again: a path it already recorded gets a newer row)."""
    for path in paths:
        session.add(OutputFile(job_id=job_id, path=_key(path)))


def outputs_for(session: Session, job_id: int) -> list[str]:
    """The job's files, each once, in the order it last wrote them."""
    rows = session.exec(
        select(OutputFile.path).where(OutputFile.job_id == job_id).order_by(col(OutputFile.id))
    ).all()
    return list(dict.fromkeys(rows))


def publishers(session: Session, paths: Sequence[Path]) -> dict[str, str]:
    """For each path some job recorded: the content hash of the audio whose job wrote it last."""
    if not paths:
        return {}
    rows = session.exec(
        select(OutputFile.path, Job.content_sha256)
        .join(Job, col(Job.id) == col(OutputFile.job_id))
        .where(col(OutputFile.path).in_([_key(p) for p in paths]))
        .order_by(col(OutputFile.id))
    ).all()
    return dict(rows)  # the newest row of each path wins


def published_from(session: Session, content_sha256: str, out_dir: Path) -> list[Path]:
    """The files that jobs of this audio wrote directly in `out_dir`, newest first."""
    folder = _key(out_dir)
    rows = session.exec(
        select(OutputFile.path)
        .join(Job, col(Job.id) == col(OutputFile.job_id))
        .where(
            Job.content_sha256 == content_sha256,
            col(OutputFile.path).startswith(folder.rstrip("/") + "/"),
        )
        .order_by(col(OutputFile.id).desc())
    ).all()
    return [Path(p) for p in rows if str(Path(p).parent) == folder]
