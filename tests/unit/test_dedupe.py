"""The one "a copy waits for its primary" rule (stages.dedupe), as each kind of copy sees it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from voxbatch.stages.dedupe import STOPPED, Waiter, copy_verdict
from voxbatch.store.models import Job, JobState, utcnow

NOW = utcnow()
LEASED = NOW + timedelta(seconds=30)
EXPIRED = NOW - timedelta(seconds=30)
Q, P, R = Waiter.queue, Waiter.process, Waiter.running


def primary(state: JobState, *, lease: object = None, daemon: bool = False) -> Job:
    return Job(
        id=7,
        content_sha256="a" * 64,
        source_path="/in/a.wav",
        source_name="a.wav",
        size_bytes=1,
        state=state,
        lease_expires_at=lease,
        work_path="/work/7-a.wav" if daemon else None,
        wait_reason="daily cap" if state == JobState.queued else None,
    )


@pytest.mark.parametrize("waiter", list(Waiter))
def test_nobody_waits_once_the_primary_has_it_or_is_done_or_failed(waiter: Waiter) -> None:
    streaming = primary(JobState.streaming, lease=LEASED, daemon=True)
    assert not copy_verdict(streaming, has_it=True, waiter=waiter, now=NOW).wait
    for state in (JobState.done, JobState.failed):
        verdict = copy_verdict(primary(state), has_it=False, waiter=waiter, now=NOW)
        assert not verdict.wait and verdict.reason is None


@pytest.mark.parametrize("waiter", list(Waiter))
def test_everybody_waits_for_a_primary_being_worked_on(waiter: Waiter) -> None:
    for daemon in (True, False):
        job = primary(JobState.streaming, lease=LEASED, daemon=daemon)
        verdict = copy_verdict(job, has_it=False, waiter=waiter, now=NOW)
        assert verdict.wait and verdict.reason == "waiting for job 7 (same audio) to finish"


def test_only_the_daemon_queue_waits_for_a_review() -> None:
    job = primary(JobState.needs_review, daemon=True)
    assert copy_verdict(job, has_it=False, waiter=Q, now=NOW).reason == (
        "waiting: job 7 (same audio) needs review"
    )
    assert copy_verdict(job, has_it=False, waiter=Q, now=NOW).wait
    for waiter in (P, R):
        assert copy_verdict(job, has_it=False, waiter=waiter, now=NOW).wait is False


def test_a_daemon_job_nobody_works_on_now() -> None:
    queued = primary(JobState.queued, daemon=True)
    stale = primary(JobState.streaming, lease=EXPIRED, daemon=True)
    for job in (queued, stale):  # the daemon runs or recovers its own jobs: its copies wait
        assert copy_verdict(job, has_it=False, waiter=Q, now=NOW).wait
        assert copy_verdict(job, has_it=False, waiter=R, now=NOW).wait is False  # holds a slot
    # `process` cannot count on a daemon running: it says why it stops waiting.
    said = copy_verdict(queued, has_it=False, waiter=P, now=NOW)
    assert not said.wait and said.reason is not None
    assert said.reason.startswith("it is queued in the daemon (daily cap)")
    said = copy_verdict(stale, has_it=False, waiter=P, now=NOW)
    assert not said.wait and said.reason is not None
    assert said.reason.startswith("the daemon transcribing it stopped")


@pytest.mark.parametrize("waiter", list(Waiter))
def test_a_process_job_whose_worker_is_gone(waiter: Waiter) -> None:
    for lease in (None, EXPIRED):
        job = primary(JobState.streaming, lease=lease)
        assert copy_verdict(job, has_it=False, waiter=waiter, now=NOW).reason == STOPPED
