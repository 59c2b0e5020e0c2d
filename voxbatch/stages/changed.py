"""Did the daemon's claimed original change after its claim?

A producer that pauses longer than `stable_seconds` has its half-written upload claimed; its
open handle then writes on into the moved file. What was read of it then is not the file: the
job is told (FileChangedError), and the whole file is processed again once it has settled.
Only the daemon's jobs are looked at (their original is in work/); `voxbatch process` reads
files in place.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlmodel import Session

from voxbatch.errors import FileChangedError, StoreError, VoxbatchError
from voxbatch.media import audio
from voxbatch.store.db import Database
from voxbatch.store.models import Job

log = logging.getLogger(__name__)


async def claimed_file_change(
    db: Database, job_id: int, path: Path, *, ffmpeg: str
) -> FileChangedError | None:
    """The change, when the work file's size or content is not what the claim recorded. Only a
    file whose size or mtime moved since the claim is hashed again."""

    def claimed(session: Session) -> tuple[str | None, int, str, float]:
        job = session.get_one(Job, job_id)
        # The daemon's job is made at the claim: a write since then is a write after it.
        return job.work_path, job.size_bytes, job.content_sha256, job.created_at.timestamp()

    try:
        work_path, size, sha, claimed_at = await db.read_async(claimed)
    except StoreError:
        return None  # unknown now: a finished transcription is never lost for this check
    if work_path is None or Path(work_path) != path:
        return None
    try:
        st = os.stat(path)
        if st.st_size == size and st.st_mtime <= claimed_at:
            return None  # untouched since the claim: no need to read it all again
        now = st.st_size
        new_sha = await audio.file_sha256(path)
    except (OSError, VoxbatchError):
        return None  # gone or unreadable: the stages that read it say so
    if now == size and new_sha == sha:
        return None
    try:
        seconds = (await audio.probe_length(path, ffmpeg=ffmpeg)).duration_seconds
    except VoxbatchError:
        seconds = None  # still being written, say: estimated when it is claimed again
    reason = (
        f"the file changed after it was claimed (size {size} → {now} bytes): "
        "processing it again, whole, once it has settled"
    )
    log.warning("job %s: %s", job_id, reason)
    return FileChangedError(reason, sha256=new_sha, size_bytes=now, audio_seconds=seconds)
