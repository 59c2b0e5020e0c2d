"""Admission: may a queued job start now, and does a copy of bought audio pay or link?

Both rules run inside the dispatcher's transactions (on the store's threads): a copy waits,
without a slot, for the job buying its audio; a new job waits for the spend caps.
"""

from __future__ import annotations

import logging

from sqlmodel import Session

from voxbatch.accounting import budget
from voxbatch.config import Settings
from voxbatch.errors import CONTENT_ERRORS, VoxbatchError
from voxbatch.ingest.folders import Inbox, find_inbox
from voxbatch.stages.dedupe import Verdict, Waiter, copy_verdict
from voxbatch.stages.pipeline import Pipeline
from voxbatch.store import jobs, queue, transcripts
from voxbatch.store.jobs import link_to_primary
from voxbatch.store.models import Job, utcnow

log = logging.getLogger(__name__)

# A job held by a spend cap is looked at again this often (raising the cap takes this long).
BUDGET_RECHECK_S = 15.0


class Admission:
    """The admission rules over a session; `pipeline` settles a dead `voxbatch process`."""

    def __init__(self, settings: Settings, boxes: list[Inbox], pipeline: Pipeline) -> None:
        self.settings = settings
        self.boxes = boxes
        self.pipeline = pipeline

    def admit(self, session: Session, job: Job) -> str | None:
        """May this queued job start? None: yes; else why it waits (it never fails).

        A copy waits, without a slot, for the job buying its audio; a new job waits for the
        spend caps, and is looked at again every BUDGET_RECHECK_S.
        """
        if job.duplicate_of is not None:
            primary = self._live_primary(session, job)
            if primary is not None and primary.id != job.id:
                verdict = _verdict(session, primary)
                if verdict.wait and verdict.reason is not None:
                    return self._hold(session, job, verdict.reason)
        # What this job may still buy: nothing bought before (by it or a copy) is counted.
        profile = find_inbox(self.boxes, job.inbox).profile
        estimate = budget.remaining_estimate(session, self.settings, profile, job)
        session.info.setdefault(budget.PASS_MEMO, {})  # one read of each cap per pass
        held = budget.admit(
            session,
            self.settings,
            profile,
            job,
            audio_seconds=job.audio_seconds,
            now=utcnow(),
            estimate=estimate,
        )
        if held is None:
            return None
        jobs.defer(session, job, BUDGET_RECHECK_S)
        log.info("job %s waits: %s", job.id, held[0])
        return held[0]

    def resolve_duplicate(self, session: Session, job_id: int) -> bool | None:
        """True: linked to a bought transcript; False: this job pays; None: it must wait."""
        job = session.get_one(Job, job_id)
        primary = self._live_primary(session, job)
        if primary is not None and primary.id == job.id:
            primary = None
        if primary is not None and transcripts.transcript_for(session, primary) is not None:
            link_to_primary(session, job, primary)
            return True
        if primary is None:
            old = session.get(Job, job.duplicate_of) if job.duplicate_of else None
            if old is not None and old.error_class in CONTENT_ERRORS:
                raise VoxbatchError(
                    f"same audio as job {old.id}, which failed: {old.error_message}"
                )
            jobs.promote(session, job)
            return False
        jobs.copy_of(session, job, primary)
        reason = _verdict(session, primary).reason or f"waiting for job {primary.id}"
        queue.requeue(session, job, reason=reason, delay_s=5.0)
        return None

    def _live_primary(self, session: Session, job: Job) -> Job | None:
        """The job buying this audio; a dead `voxbatch process` is settled and stepped over."""
        primary = jobs.find_primary(session, job.content_sha256)
        if (
            primary is not None
            and primary.id != job.id
            and transcripts.transcript_for(session, primary) is None
            and self.pipeline.abandoned(primary)
        ):
            self.pipeline.abandon(session, primary)
            primary = jobs.find_primary(session, job.content_sha256)
        return primary

    def _hold(self, session: Session, job: Job, reason: str) -> str:
        if jobs.hold(session, job, reason):
            log.info("job %s waits: %s", job.id, reason)
        return reason


def _verdict(session: Session, primary: Job) -> Verdict:
    """Does a queued copy wait for the job buying its audio (stages.dedupe's rule)?"""
    has_it = transcripts.transcript_for(session, primary) is not None
    return copy_verdict(primary, has_it=has_it, waiter=Waiter.queue, now=utcnow())
