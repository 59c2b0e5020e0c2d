"""A job's end: its state and the planned move of its original commit together; then the move."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from pathlib import Path

from sqlmodel import Session

from voxbatch.config import Settings
from voxbatch.daemon import recovery
from voxbatch.errors import StoreError, VoxbatchError, display_path
from voxbatch.ingest.folders import (
    crash_point,
    find_inbox,
    free_destination,
    inboxes,
    move,
    results_dir_mode,
    write_note,
)
from voxbatch.ingest.scan import signature
from voxbatch.names import note_name
from voxbatch.store import jobs, queue
from voxbatch.store.db import Database
from voxbatch.store.jobs import mark_done
from voxbatch.store.models import Job, JobState

log = logging.getLogger(__name__)

UNFILED = "unfiled"  # an outcome: the job ended, but its original could not be moved yet


class Filing:
    """Files a finished job's original in done/ or failed/ (with its .error.txt note).

    `owner` is this daemon's lease owner: a job whose lease passed to another is left to it.
    `outcomes` counts each job's end.
    """

    def __init__(self, settings: Settings, db: Database, *, owner: str, outcomes: Counter[str]):
        self.settings = settings
        self.db = db
        self.owner = owner
        self.outcomes = outcomes

    async def file_original(
        self,
        job_id: int,
        state: JobState,
        *,
        written: tuple[Path, ...] = (),
        error: VoxbatchError | None = None,
    ) -> None:
        """The job's end and the planned move of its original commit together; then the move."""
        folder = self.settings.folder("done" if state == JobState.done else "failed")

        def end(session: Session) -> tuple[Path, Path, str | None, str, bool] | None:
            job = session.get_one(Job, job_id)
            if job.lease_owner != self.owner:
                # Another worker took the job over (our lease ran out): it owns the file now.
                log.warning(
                    "job %s: its lease passed to %s; leaving the original to it",
                    job_id,
                    job.lease_owner or "the queue",
                )
                return None
            if state == JobState.done:
                mark_done(session, job, written)
            else:
                assert error is not None
                jobs.mark_failed(session, job, error, hint=error.hint)
            src = Path(job.work_path or "")
            # A shared inbox's failures are for its producers to read (done/ stays private).
            shared = state == JobState.failed and self._shared(job.inbox)
            dst = free_destination(
                folder, job.rel_path or src.name, dir_mode=results_dir_mode(shared)
            )
            queue.plan_move(session, job, src, dst, signature(src))
            return src, dst, job.error_message, job.source_name, shared

        planned = await self.db.write_through_faults(end)
        if planned is None:
            return
        src, dst, message, name, shared = planned
        crash_point("file")
        if state == JobState.failed:
            note = recovery.error_note(job_id, name, message)
            path = dst.with_name(note_name(dst.name))
            try:
                await asyncio.to_thread(write_note, path, note, shared=shared)
            except OSError as exc:  # a full disk, say: the job's story is in the database
                log.warning("job %s: cannot write its .error.txt note (%s)", job_id, exc.strerror)
        self.outcomes[state] += 1
        try:
            await asyncio.to_thread(move, src, dst)
        except OSError as exc:
            # The job's end is recorded; the planned move is finished at the next start. Until
            # then the work is not published where the user looks: `run --once` exits 1.
            self.outcomes[UNFILED] += 1
            log.error(
                "job %s: cannot move its original to %s (%s); it stays in work/ and is moved "
                "when voxbatch starts again",
                job_id,
                display_path(dst),
                exc.strerror,
            )
            return
        # The move is made and planned: if the store refuses this, the next start records it.
        with contextlib.suppress(StoreError):
            await self.db.run(queue.settle_move, self.db, job_id, dst, writes=True)
        if state == JobState.done:
            log.info("job %s done: %s; original in %s", job_id, name, display_path(dst))
        else:
            log.warning("job %s failed: %s — original in %s", job_id, message, display_path(dst))

    def _shared(self, inbox: str | None) -> bool:
        return find_inbox(inboxes(self.settings), inbox).profile.shared
