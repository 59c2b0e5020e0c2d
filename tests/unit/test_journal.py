"""The journal of finished transcriptions: replayed once at start, only for calls still open."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from voxbatch.accounting.paid_calls import Settlement
from voxbatch.documents import TimedText
from voxbatch.stages import journal
from voxbatch.store import calls, jobs, transcripts
from voxbatch.store.db import Database, open_database
from voxbatch.store.models import CallKind, Job, JobState


def streaming_job_with_open_call(db: Database, sha: str) -> tuple[int, int]:
    with db.write() as session:
        job = jobs.create_job(
            session, content_sha256=sha, source_path="/x/a.wav", size_bytes=1, inbox=None,
            output_dir=None, primary=None,
        )  # fmt: skip
        jobs.start_streaming(session, job, 3.0, "probed")
        assert job.id is not None
        call = calls.start_call(session, job_id=job.id, kind=CallKind.stt, model="m")
        assert call.id is not None
        return job.id, call.id


def entry(job_id: int, call_id: int) -> journal.FinishedTranscription:
    return journal.FinishedTranscription(
        call_id=call_id,
        job_id=job_id,
        model="m",
        text="hello",
        language="en",
        audio_seconds=3.0,
        segments=(TimedText(0.0, 1.5, "hello", "s1"),),
        settlement=Settlement(Decimal("0.0003"), "m $0.006/audio minute", audio_seconds=3),
        detail="5 characters",
    )


def test_an_entry_survives_the_disk_exactly(tmp_path: Path) -> None:
    written = entry(1, 2)
    path = journal.write_entry(tmp_path, written)
    assert path == tmp_path / "journal" / "2.json"
    assert journal.FinishedTranscription.from_json(path.read_text()) == written


def test_replay_records_an_open_call_once_and_forgets_settled_ones(tmp_path: Path) -> None:
    db = open_database(tmp_path / "v.db")
    open_job, open_call = streaming_job_with_open_call(db, "a" * 64)
    done_job, done_call = streaming_job_with_open_call(db, "b" * 64)
    with db.write() as session:  # this one was recorded before the daemon died
        calls.finish_call(session, done_call, outcome="ok", cost_usd=Decimal(0),
                          price_basis="", estimated=False)  # fmt: skip
    for job_id, call_id in ((open_job, open_call), (done_job, done_call)):
        journal.write_entry(tmp_path, entry(job_id, call_id))
    (tmp_path / "journal" / "99.json").write_text("{not json")  # left alone, said once

    assert journal.replay(db, tmp_path) == [open_job]
    assert journal.replay(db, tmp_path) == []  # the entries are gone
    assert [p.name for p in (tmp_path / "journal").iterdir()] == ["99.json"]
    with db.read() as session:
        recorded = session.get_one(Job, open_job)
        assert recorded.state == JobState.transcribed and recorded.language == "en"
        transcript = transcripts.transcript_for(session, recorded)
        assert transcript is not None and transcript.text == "hello"
        [call] = calls.calls_for(session, open_job)
        assert (call.outcome, call.cost_usd, call.audio_seconds) == ("ok", Decimal("0.0003"), 3)
        untouched = session.get_one(Job, done_job)
        assert untouched.state == JobState.streaming
        assert transcripts.transcript_for(session, untouched) is None
