"""One job's story from a started job to its outputs, the same for the daemon and `process`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from voxbatch.config import InboxProfile
from voxbatch.stages.pipeline import Pipeline
from voxbatch.stages.transcribe import stop_task


async def run_job(
    pipeline: Pipeline,
    job_id: int,
    path: Path,
    profile: InboxProfile,
    out_dir: Path,
    *,
    buy: bool,
    on_transcribed: Callable[[], None] | None = None,
) -> tuple[Path, ...]:
    """Buy the transcript when `buy` (else it is already the job's, bought or linked), write
    the outputs, then the summaries the profile asks for; the files written.

    Raises when a stage fails: the caller decides what that means for the job (failed now,
    or back to the daemon's queue) and records its end.
    """
    if buy:
        await pipeline.transcribe(job_id, path, profile)
        if on_transcribed is not None:
            on_transcribed()  # the provider worked (the daemon's circuit breaker hears it)
    # Summaries can take minutes: the lease is renewed meanwhile.
    heartbeat = asyncio.create_task(pipeline.stt.heartbeat(job_id))
    try:
        written = await pipeline.db.run(pipeline.write_results, job_id, profile, out_dir)
        written += await pipeline.summarize(job_id, profile, out_dir, written)
        await pipeline.stt.raise_if_changed(job_id, path)  # not done while the file grows
        return written
    finally:
        await stop_task(heartbeat)
