"""A stream that runs past its job's estimate checks the spend caps again before going on.

The estimate comes from the audio's measured length, but a file can still outrun it (its
length could not be measured and its header lied, or it grew after the claim). Past the
estimated length by more than a tenth, the stream's spend so far is put in the ledger (as a
provisional charge, so that the caps see it), and it may only go on another tenth of the
estimate while the job's cost at that length fits under every cap; else it stops with
SpendCapError and the job waits for the budget. So a cap is overshot by at most, for each
running job, what a tenth of its estimated audio plus one message of audio cost.
"""

from __future__ import annotations

import logging
import math

from sqlmodel import Session

from voxbatch.accounting import budget
from voxbatch.accounting.prices import stt_charge
from voxbatch.config import InboxProfile, Settings
from voxbatch.errors import SpendCapError, StoreError
from voxbatch.store import calls
from voxbatch.store.db import Database
from voxbatch.store.models import utcnow

log = logging.getLogger(__name__)

OVERRUN_STEP = 0.1  # of the estimated length: how far a stream goes between two checks


class OverrunGuard:
    """Told each chunk before it is sent; raises SpendCapError to stop the stream at a cap.

    Inert for a job without a recorded estimate (`voxbatch process`, which the caps do not
    hold, or a length never known).
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        profile: InboxProfile,
        *,
        job_id: int,
        call_id: int,
        estimated_seconds: float | None,
    ) -> None:
        self.db, self.settings, self.profile = db, settings, profile
        self.job_id, self.call_id = job_id, call_id
        self.estimated = estimated_seconds
        self.step = (estimated_seconds or 0) * OVERRUN_STEP
        self.allowed = (estimated_seconds or 0) + self.step  # sent freely up to here
        self.sent = 0.0

    @classmethod
    async def start(
        cls,
        db: Database,
        settings: Settings,
        profile: InboxProfile,
        job_id: int,
        call_id: int,
        *,
        estimated_s: float | None = None,
    ) -> OverrunGuard:
        """`estimated_s`: what this stream should send (a part's stretch); by default the
        job's recorded estimate."""

        def estimated(session: Session) -> float | None:
            recorded = calls.estimate_for(session, job_id)
            return recorded.audio_seconds if recorded is not None else None

        seconds = estimated_s if estimated_s is not None else await db.read_async(estimated)
        return cls(db, settings, profile, job_id=job_id, call_id=call_id, estimated_seconds=seconds)

    async def before_send(self, seconds: float) -> None:
        """`seconds` of audio are about to be sent: go on, or raise SpendCapError."""
        if self.estimated is None or self.sent + seconds <= self.allowed:
            self.sent += seconds
            return
        expected = self.sent + seconds + self.step
        sent = self.sent
        model = self.settings.mistral.transcription_model
        so_far = stt_charge(self.settings.prices, model, math.ceil(sent)).cost_usd

        def check(session: Session) -> str | None:
            calls.provisional_cost(session, self.call_id, so_far, audio_seconds=sent)
            session.flush()
            return budget.overrun_reason(
                session,
                self.settings,
                self.profile,
                self.job_id,
                sent_seconds=sent,
                expected_seconds=expected,
                now=utcnow(),
            )

        try:
            reason = await self.db.write_async(check)
        except StoreError as exc:
            # The store's fault must not stop a stream; the next step checks again.
            log.warning("job %s: cannot check the caps past its estimate: %s", self.job_id, exc)
            reason = None
        if reason is not None:
            log.warning("job %s stops: %s", self.job_id, reason)
            raise SpendCapError(reason, expected_seconds=expected)
        log.info(
            "job %s: %.0f s sent, past its %.0f s estimate; the caps allow going on",
            self.job_id,
            sent,
            self.estimated,
        )
        self.allowed = expected
        self.sent += seconds
