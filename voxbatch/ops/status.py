"""What operators ask: the queue's state (`status`), a file's story (`why`), and `retry`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from voxbatch.accounting.budget import BUDGET_WAIT_STAGE, budget_summary
from voxbatch.config import Settings
from voxbatch.store import workers as store_workers
from voxbatch.store.models import ACTIVE_STATES, Event, Job, JobState, utcnow


def status_report(session: Session, settings: Settings) -> dict[str, Any]:
    now = utcnow()
    counts = dict(session.exec(select(Job.state, func.count()).group_by(col(Job.state))).all())
    queued = session.exec(
        select(Job).where(Job.state == JobState.queued).order_by(col(Job.created_at))
    ).all()
    waiting = [
        j
        for j in queued
        if (j.not_before is not None and j.not_before > now) or j.stage == BUDGET_WAIT_STAGE
    ]
    active = session.exec(
        select(Job).where(col(Job.state).in_([s.value for s in ACTIVE_STATES]))
    ).all()
    caps = budget_summary(session, settings, now)
    workers = store_workers.live_workers(session)
    return {
        "queued": len(queued),
        "runnable": len(queued) - len(waiting),
        "waiting": [
            {"id": j.id, "file": j.source_name, "until": j.not_before, "reason": j.wait_reason}
            for j in waiting
        ],
        "in_progress": [
            {"id": j.id, "file": j.source_name, "state": j.state, "stage": j.stage} for j in active
        ],
        "failed": counts.get(JobState.failed, 0),
        "needs_review": counts.get(JobState.needs_review, 0),
        "done": counts.get(JobState.done, 0),
        "oldest_waiting": queued[0].created_at if queued else None,
        "spend_today_usd": caps["spent_today_usd"],
        "spend_month_usd": caps["spent_month_usd"],
        "budget": caps,
        "daemons": [
            {
                "worker": w.owner,
                "state": w.state,
                "provider": w.provider,
                "detail": w.detail,
                "heartbeat_at": w.heartbeat_at,
            }
            for w in workers
        ],
        "provider": _provider(workers),
        "store": store_state(settings.db_path, workers),
    }


# Below this much free space SQLite cannot commit a transaction of any size worth having.
FULL_BELOW_BYTES = 256 * 1024


def store_state(db_path: Path, workers: list[Any]) -> str:
    """ "ok", or why the database refuses writes: what a daemon reported, else a full disk seen
    here (a daemon cannot report that one: its report is a write)."""
    for worker in workers:
        if worker.provider == "store_fault":
            return str(worker.detail)
    try:
        info = os.statvfs(db_path.parent)
    except OSError:
        return "ok"
    free = info.f_bavail * info.f_frsize
    if free < FULL_BELOW_BYTES:
        return (
            f"disk full: {free} bytes free on the filesystem holding {db_path}; "
            "the daemon waits and resumes by itself when there is space"
        )
    return "ok"


def _provider(workers: list[Any]) -> str:
    if not workers:
        return "no daemon running"
    troubled = [w for w in workers if w.provider != "ok"]
    if troubled:
        return f"{troubled[0].provider}: {troubled[0].detail}"
    return "ok"


@dataclass(frozen=True)
class Story:
    jobs: list[Job]
    events: list[Event]


def why(session: Session, path_text: str) -> Story:
    """Jobs and events about a path: matched by full path first, else by file name."""
    full = os.path.abspath(path_text)
    name = os.path.basename(path_text.rstrip("/"))
    path_cols = (Job.source_path, Job.work_path, Job.final_path)
    jobs = list(session.exec(select(Job).where(sa.or_(*(col(c) == full for c in path_cols)))).all())
    events = list(session.exec(select(Event).where(Event.path == full)).all())
    if not jobs and not events:
        jobs = list(session.exec(select(Job).where(Job.source_name == name)).all())
        events = list(session.exec(select(Event).where(col(Event.path).endswith("/" + name))).all())
    ids = [j.id for j in jobs if j.id is not None]
    if ids:
        events += session.exec(select(Event).where(col(Event.job_id).in_(ids))).all()
    unique = {e.id: e for e in events}
    return Story(jobs, sorted(unique.values(), key=lambda e: (e.at, e.id or 0)))


def original_now(job: Job) -> str:
    """Where the job's original is now: the one answer of `show` and `why`. A `process` job's
    stays where it was given; a daemon job's is in the inbox, work/, done/ or failed/, or
    on its way between two of them (the move is planned, and finished by the next start)."""
    if job.move_to:
        return f"moving to {job.move_to}"
    return job.final_path or job.work_path or job.source_path


def age(at: datetime | None) -> str:
    if at is None:
        return ""
    seconds = int((datetime.now(UTC) - at) / timedelta(seconds=1))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
