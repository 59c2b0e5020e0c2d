"""The one rule of a copy and its primary: does a copy of audio bought (or being bought) by
another job wait for that job, or go on without it?

Three kinds of copy ask it: a queued copy in the daemon (admission), a `voxbatch process`
copy, and a running job about to buy its summary. They differ only in what they can count on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from voxbatch.store.models import Job, JobState

STOPPED = "its worker stopped before finishing"


class Waiter(Enum):
    # A queued daemon copy: it holds no slot, and the daemon runs (and recovers) its primary.
    queue = "queue"
    # A `voxbatch process` copy: it holds no slot, but no daemon may be running.
    process = "process"
    # A running job (its summary): it holds a slot, so it waits only for work in progress.
    running = "running"


@dataclass(frozen=True)
class Verdict:
    """`wait`: the copy waits, `reason` says for what. Else `reason` says why the primary
    will not deliver while it waits (None: the primary has delivered, or ended)."""

    wait: bool
    reason: str | None = None


def copy_verdict(primary: Job, *, has_it: bool, waiter: Waiter, now: datetime) -> Verdict:
    """Does a copy wait for `primary`? `has_it`: the primary holds what the copy needs (its
    transcript, or its spoken summary)."""
    if has_it or primary.state in (JobState.done, JobState.failed):
        return Verdict(False)
    if primary.state == JobState.needs_review:
        # Only the daemon's queue can wait for a person to look at it.
        if waiter is Waiter.queue:
            return Verdict(True, f"waiting: job {primary.id} (same audio) needs review")
        return Verdict(False)
    working = f"waiting for job {primary.id} (same audio) to finish"
    if primary.lease_expires_at is not None and primary.lease_expires_at >= now:
        return Verdict(True, working)
    # Nobody works on it right now.
    if primary.work_path is not None:  # a daemon job
        if waiter is Waiter.queue:
            return Verdict(True, working)  # the daemon runs it, or recovers it at its start
        if waiter is Waiter.process:
            return Verdict(False, _daemon_holds(primary))
    return Verdict(False, STOPPED)


def _daemon_holds(primary: Job) -> str:
    """Why `process` does not wait for a daemon job that nobody is working on."""
    if primary.state == JobState.queued:
        why = f" ({primary.wait_reason})" if primary.wait_reason else ""
        return (
            f"it is queued in the daemon{why}; `voxbatch run` transcribes it, then process "
            "this file again at no cost"
        )
    return "the daemon transcribing it stopped; it resumes when `voxbatch run` starts again"
