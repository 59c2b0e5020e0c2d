"""The stages of one job's story, bound to one run: transcribe, publish, summarize.

`voxbatch process` (voxbatch.process) and the daemon (voxbatch.daemon) both drive jobs
through these; `stages.job.run_job` is the story from a started job to its outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sqlmodel import Session

from voxbatch.accounting.paid_calls import settle_abandoned_calls
from voxbatch.accounting.prices import check_prices
from voxbatch.config import InboxProfile, Settings
from voxbatch.errors import (
    ErrorCode,
    VoxbatchError,
    display_path,
)
from voxbatch.media.ffmpeg import find_ffmpeg
from voxbatch.providers.base import Transcriber, TranscriberFactory
from voxbatch.providers.realtime import (
    default_transcriber,
)
from voxbatch.stages.publish import claims_for, cue_shape, document_for, write_outputs
from voxbatch.stages.summary import run_summary_stages
from voxbatch.stages.transcribe import NoProgress, Progress, RunState, TranscriptionStage
from voxbatch.store import jobs
from voxbatch.store.db import Database
from voxbatch.store.models import TERMINAL_STATES, Job, utcnow

log = logging.getLogger(__name__)


class Pipeline:
    """The stages bound to one run. `ffmpeg` is the program found by `open`, which does the
    start-up checks; the constructor does no I/O."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        ffmpeg: str,
        transcriber: TranscriberFactory | None = None,
        reporter: Progress | None = None,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self._make_transcriber = transcriber or default_transcriber(settings)
        self._transcriber: Transcriber | None = None
        self.reporter: Progress = reporter or NoProgress()
        self.ffmpeg = ffmpeg
        self.run = RunState() if owner is None else RunState(owner=owner)
        # Called each time the server accepts a transcription session.
        self.on_connected: Callable[[], None] | None = None
        self.stt = TranscriptionStage(
            settings,
            db,
            ffmpeg=self.ffmpeg,
            run=self.run,
            reporter=self.reporter,
            transcriber=lambda: self.transcriber,
            connected=lambda: self.on_connected,
        )

    @classmethod
    def open(
        cls,
        settings: Settings,
        db: Database,
        *,
        transcriber: TranscriberFactory | None = None,
        reporter: Progress | None = None,
        owner: str | None = None,
    ) -> Pipeline:
        """Find ffmpeg and check that every model the run may pay for has a price (one
        without would be noticed only after paying for it): ConfigError says what is wrong."""
        ffmpeg = find_ffmpeg(settings.ffmpeg)
        check_prices(settings)
        return cls(
            settings, db, ffmpeg=ffmpeg, transcriber=transcriber, reporter=reporter, owner=owner
        )

    @property
    def transcriber(self) -> Transcriber:
        if self._transcriber is None:
            self._transcriber = self._make_transcriber()
        return self._transcriber

    def reset_client(self) -> None:
        """Forget a refused key and the client built with it: the next call reads the key anew."""
        self.run.auth_error = None
        self._transcriber = None

    def abandon(self, session: Session, job: Job) -> None:
        """Fail a dead worker's job and settle its unfinished calls.

        Nobody knows how much audio it sent before dying; the file's length is the most that
        can have been billed, so that is what the ledger shows, marked estimated.
        """
        settle_abandoned_calls(session, self.settings, job)
        jobs.release(job)
        jobs.fail(
            session,
            job,
            ErrorCode.abandoned,
            "its worker stopped before finishing; a new job took over",
        )
        session.flush()

    def abandoned(self, job: Job) -> bool:
        """Is `job` a `process` job whose worker is gone? (The daemon recovers its own jobs.)"""
        if job.state in TERMINAL_STATES or job.work_path is not None:
            return False
        if job.lease_owner == self.run.owner:
            return False
        return job.lease_expires_at is None or job.lease_expires_at < utcnow()

    async def summarize(
        self, job_id: int, profile: InboxProfile, out_dir: Path, written: tuple[Path, ...]
    ) -> tuple[Path, ...]:
        """The written and spoken summary when the profile asks for one (checkpointed stages:
        whatever was bought before is reused). Raises VoxbatchError when a stage fails."""
        if not profile.summary:
            return ()
        outcome = await run_summary_stages(
            self.settings,
            self.db,
            job_id,
            profile,
            out_dir,
            api_key=self.settings.api_key(),
            stem=written[0].stem if written else None,
        )
        return tuple(outcome.paths)

    def write_results(self, job_id: int, profile: InboxProfile, out_dir: Path) -> tuple[Path, ...]:
        """The output files; raises VoxbatchError (with a hint) when they cannot be written."""
        with self.db.read() as session:
            doc = document_for(session, session.get_one(Job, job_id))
            claims = claims_for(session, doc, out_dir, profile.outputs)
        try:  # files are written outside any transaction: no lock held during disk I/O
            return tuple(
                write_outputs(
                    doc, out_dir, profile.outputs, cue_shape(profile), claims, shared=profile.shared
                )
            )
        except OSError as exc:
            raise VoxbatchError(
                f"cannot write results to {display_path(out_dir)}: {exc.strerror}",
                hint=f"the transcript is saved: `voxbatch export {job_id}` or processing the "
                "file again writes them at no cost",
            ) from exc

    async def transcribe(self, job_id: int, path: Path, profile: InboxProfile) -> None:
        """Probe and transcribe with retries, under a renewed lease; raises when it fails.

        The caller decides what a failure means for the job (failed now, or back to the queue).
        """
        await self.stt.transcribe(job_id, path, profile)
