"""`voxbatch prune`: forget done jobs older than N days and remove their files.

Safe beside a running daemon: each batch is chosen again and deleted inside one write
transaction (a job the daemon took meanwhile is no longer prunable), and only then are the
files removed. Only files inside voxbatch's own done/ and outbox/ are ever deleted: outputs
that `voxbatch process --out DIR` wrote elsewhere are left alone.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from voxbatch.config import Settings
from voxbatch.store import retention
from voxbatch.store.db import Database

log = logging.getLogger(__name__)

BATCH = 200  # audio groups per write transaction: the daemon never waits long for the lock


@dataclass
class PruneReport:
    jobs: int = 0
    files: list[Path] = field(default_factory=list)
    path_events: int = 0
    missing: int = 0


def prune(db: Database, settings: Settings, cutoff: datetime, *, dry_run: bool) -> PruneReport:
    """Remove (or, with `dry_run`, list) what belongs to done jobs finished before `cutoff`."""
    report = PruneReport()
    if dry_run:
        with db.read() as session:
            hashes = retention.prunable_hashes(session, cutoff)
            jobs = retention.jobs_of(session, hashes) if hashes else []
            report.path_events = retention.count_path_events(session, cutoff)
        report.jobs = len(jobs)
        report.files = [f for job in jobs for f in files_of(settings, job) if f.exists()]
        return report
    while True:
        with db.write() as session:
            batch = retention.prunable_hashes(session, cutoff, limit=BATCH)
            jobs = retention.forget(session, batch, cutoff) if batch else []
        if not jobs:
            break
        report.jobs += len(jobs)
        for job in jobs:
            for path in files_of(settings, job):
                try:
                    path.unlink()
                except FileNotFoundError:
                    report.missing += 1
                    continue
                report.files.append(path)
    with db.write() as session:
        report.path_events = retention.forget_path_events(session, cutoff)
    return report


def files_of(settings: Settings, job: retention.PrunedJob) -> list[Path]:
    """The job's original in done/ and its outputs in the outbox (nothing outside them)."""
    found: list[Path] = []
    done = settings.folder("done")
    if job.final_path and _inside(Path(job.final_path), done):
        found.append(Path(job.final_path))
    outbox = settings.folder("outbox")
    if job.output_dir and _inside(Path(job.output_dir), outbox):
        folder = Path(job.output_dir)
        for wrote in job.outputs:
            found.extend(folder / name for name in _names(folder, wrote))
    outboxes = [outbox, *(settings.outbox_dir(profile) for profile in settings.inbox)]
    for path in map(Path, job.output_files):
        if path not in found and path.is_file() and any(_inside(path, o) for o in outboxes):
            found.append(path)
    return found


def _names(folder: Path, wrote: str) -> list[str]:
    """The names in "a.txt, a.srt" that are files in `folder` (a name may hold ", " too)."""
    try:
        present = os.listdir(folder)
    except OSError:
        return []
    listed = f", {wrote},"
    return [name for name in present if f", {name}," in listed]


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False
