"""Job lookup, deduplication rules and user-facing messages at the store level."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxbatch.errors import JobNotFoundError, one_line
from voxbatch.store import jobs, transcripts
from voxbatch.store.db import Database, open_database
from voxbatch.store.models import JobState


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(tmp_path / "v.db")


def add_job(db: Database, sha: str, state: JobState = JobState.done) -> int:
    with db.write() as session:
        job = jobs.create_job(
            session, content_sha256=sha, source_path=f"/x/{sha[:6]}.wav", size_bytes=1,
            inbox=None, output_dir=None, primary=jobs.find_primary(session, sha),
        )  # fmt: skip
        job.state = state
        assert job.id is not None
        return job.id


def test_all_digit_hash_prefix_falls_back_from_ids(db: Database) -> None:
    first = add_job(db, "1234" + "a" * 60)
    second = add_job(db, "12345678" + "b" * 56, JobState.failed)
    with db.read() as session:
        assert jobs.resolve_job(session, str(first)).id == first  # an id wins
        assert jobs.resolve_job(session, "123456").id == second  # no job 123456: a prefix
        with pytest.raises(JobNotFoundError, match="ambiguous"):
            jobs.resolve_job(session, "1234")
        with pytest.raises(JobNotFoundError, match="no job with id 99"):
            jobs.resolve_job(session, "99")
        with pytest.raises(JobNotFoundError, match="neither"):
            jobs.resolve_job(session, "xyz!")


def test_a_bought_transcript_is_reused_even_if_its_job_failed(db: Database) -> None:
    sha = "c" * 64
    first = add_job(db, sha)
    with db.write() as session:
        job = session.get_one(jobs.Job, first)
        transcripts.save_transcript(
            session, job, model="m", text="t", language=None, audio_seconds=1.0, segments=[]
        )
        job.state = JobState.failed  # e.g. its outputs could not be written
    second = add_job(db, sha)
    with db.read() as session:
        assert session.get_one(jobs.Job, second).duplicate_of == first


def test_one_line_is_one_bounded_line() -> None:
    err = RuntimeError("first line\n[SQL: SELECT ...]\nparameters")
    assert one_line(err) == "first line"
    assert len(one_line(RuntimeError("x" * 1000), 50)) == 50
    assert one_line(None) == "unknown problem" and one_line(KeyError()) == "KeyError"
