"""`voxbatch show JOB` and `voxbatch why PATH` give one answer to "where is the original now"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from voxbatch.cli.main import main
from voxbatch.store import jobs, queue
from voxbatch.store.db import open_database
from voxbatch.store.models import JobState


def cli_json(*args: str) -> Any:
    result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def add_job(home: Path, name: str) -> int:
    with open_database(home / "voxbatch.db").write() as session:
        job = jobs.create_job(
            session, content_sha256=name.encode().hex().ljust(64, "0"),
            source_path=str(home / "inbox" / name), size_bytes=1, inbox=None,
            output_dir=None, primary=None, rel_path=name,
        )  # fmt: skip
        assert job.id is not None
        return job.id


def move_job(home: Path, job_id: int, src: Path, dst: Path, *, made: bool) -> None:
    with open_database(home / "voxbatch.db").write() as session:
        job = session.get_one(jobs.Job, job_id)
        queue.plan_move(session, job, src, dst, None)
        if made:
            queue.settle(job, dst)


@pytest.mark.parametrize("where", ["process", "claiming", "work", "filing", "failed"])
def test_show_and_why_agree_on_where_the_original_is(isolated_env: Path, where: str) -> None:
    home = isolated_env
    job_id = add_job(home, "talk.wav")
    inbox, work = home / "inbox" / "talk.wav", home / "work" / f"{job_id}-talk.wav"
    if where != "process":  # a `process` job's original never leaves its place
        move_job(home, job_id, inbox, work, made=where != "claiming")
    if where in ("filing", "failed"):
        with open_database(home / "voxbatch.db").write() as session:
            jobs.fail(session, session.get_one(jobs.Job, job_id), jobs.ErrorCode.inbox, "no")
        move_job(home, job_id, work, home / "failed" / "talk.wav", made=where == "failed")
    shown = cli_json("show", str(job_id))["original_now"]
    [told] = cli_json("why", str(inbox))["jobs"]
    assert told["id"] == job_id and shown == told["now_at"]
    expected = {
        "process": str(inbox),
        "claiming": f"moving to {work}",
        "work": str(work),
        "filing": f"moving to {home / 'failed' / 'talk.wav'}",
        "failed": str(home / "failed" / "talk.wav"),
    }
    assert shown == expected[where]
    assert cli_json("show", str(job_id))["state"] == (
        JobState.queued if where in ("process", "claiming", "work") else JobState.failed
    )
