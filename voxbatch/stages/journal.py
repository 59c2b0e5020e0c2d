"""The journal of finished transcriptions: what the server sold, kept on disk until the
database has it.

A finished transcription is written to `<home>/journal/<call id>.json` (atomically) before its
database write is tried, and removed once that write commits. A daemon killed while the store
refused the write (kill -9, or SIGTERM past the drain) records it at its next start, before
settling dead workers' calls as abandoned: the audio is not bought again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlmodel import Session

from voxbatch.accounting.paid_calls import Settlement, settle_call
from voxbatch.documents import TimedText
from voxbatch.errors import display_path
from voxbatch.stages.publish import atomic_write
from voxbatch.store import jobs, parts, transcripts
from voxbatch.store.db import Database
from voxbatch.store.models import ApiCall, Job, JobState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinishedTranscription:
    """Everything the database needs of one answered stt call."""

    call_id: int
    job_id: int
    model: str
    text: str
    language: str | None
    audio_seconds: float  # the audio sent
    segments: tuple[TimedText, ...]
    settlement: Settlement
    detail: str  # for the job's history
    # A part's session: its part, and where in the file the session started.
    part_id: int | None = None
    from_s: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> FinishedTranscription:
        data: dict[str, Any] = json.loads(text)
        money = data["settlement"]
        money["cost_usd"] = Decimal(money["cost_usd"])
        data["settlement"] = Settlement(**money)
        data["segments"] = tuple(TimedText(**s) for s in data["segments"])
        return cls(**data)


def journal_dir(home: Path) -> Path:
    return home / "journal"


def write_entry(home: Path, entry: FinishedTranscription) -> Path:
    """The entry on disk (fsynced, renamed into place): a crash leaves all of it or nothing."""
    folder = journal_dir(home)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{entry.call_id}.json"
    atomic_write(path, entry.to_json())
    return path


def record(session: Session, entry: FinishedTranscription, *, advance: bool = True) -> None:
    """The transcript, and (`advance`) the job on to publishing. Another worker may have
    bought the same audio meanwhile: the first transcript is kept (this call was paid all
    the same)."""
    if entry.part_id is not None:
        parts.finish(
            session,
            entry.part_id,
            from_s=entry.from_s,
            text=entry.text,
            language=entry.language,
            segments=entry.segments,
        )
        jobs.add_event(session, "part_done", entry.detail, job_id=entry.job_id)
        return
    job = session.get_one(Job, entry.job_id)
    if transcripts.transcript_for(session, job) is None:
        transcripts.save_transcript(
            session,
            job,
            model=entry.model,
            text=entry.text,
            language=entry.language,
            audio_seconds=entry.audio_seconds,
            segments=entry.segments,
        )
    if advance:
        jobs.mark_transcribed(
            session,
            job,
            language=entry.language,
            audio_seconds=entry.audio_seconds,
            detail=entry.detail,
        )


def replay(db: Database, home: Path) -> list[int]:
    """At start: record every journalled transcription whose call is still `started`, then
    forget the entries (the calls already settled were recorded). The job ids recorded."""
    folder = journal_dir(home)
    if not folder.is_dir():
        return []
    recorded: list[int] = []
    for path in sorted(folder.glob("*.json")):
        try:
            entry = FinishedTranscription.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("cannot read the journal entry %s (%s); left there", display_path(path), exc)
            continue
        with db.write() as session:
            call = session.get(ApiCall, entry.call_id)
            if call is not None and call.outcome == "started":
                settle_call(session, entry.call_id, "ok", entry.settlement, None)
                # A job requeued meanwhile keeps its state: only the transcript is new.
                streaming = session.get_one(Job, entry.job_id).state == JobState.streaming
                record(session, entry, advance=streaming)
                jobs.add_event(
                    session,
                    "journal_replayed",
                    "a transcription finished before voxbatch stopped was recorded now",
                    job_id=entry.job_id,
                )
                recorded.append(entry.job_id)
        path.unlink(missing_ok=True)
    return recorded
