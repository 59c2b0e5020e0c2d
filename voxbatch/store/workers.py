"""Running daemons (`worker` rows) and who holds a lease: host and pid probes."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlmodel import Session, select

from voxbatch.store.db import Database
from voxbatch.store.models import (
    Worker,
    utcnow,
)


def owner_name() -> str:
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str | None, me: str) -> bool:
    """A lease held by a process of this host that no longer exists can be taken at once."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # This very process, under an earlier owner name: a daemon that has stopped.
    return int(pid_text) == os.getpid() and owner != me


def beat(db: Database, owner: str, *, state: str, provider: str, detail: str) -> None:
    with db.write() as session:
        worker = session.get(Worker, owner) or Worker(owner=owner)
        worker.heartbeat_at = utcnow()
        worker.state, worker.provider, worker.detail = state, provider, detail
        session.add(worker)


def forget_worker(db: Database, owner: str) -> None:
    with db.write() as session:
        worker = session.get(Worker, owner)
        if worker is not None:
            session.delete(worker)


def forget_dead_workers(db: Database, me: str) -> None:
    """Rows of daemons killed without a goodbye (kill -9, power loss) on this host, or silent
    for ten minutes anywhere: `status` must not show them as running."""
    cutoff = utcnow() - timedelta(minutes=10)
    with db.write() as session:
        for worker in session.exec(select(Worker)).all():
            if worker.owner != me and (
                owner_is_dead(worker.owner, me) or worker.heartbeat_at < cutoff
            ):
                session.delete(worker)


def live_workers(session: Session, within_s: float = 120.0) -> list[Worker]:
    since: datetime = utcnow() - timedelta(seconds=within_s)
    return list(session.exec(select(Worker).where(Worker.heartbeat_at >= since)).all())
