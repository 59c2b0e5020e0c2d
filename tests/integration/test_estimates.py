"""Pre-job estimates come from the audio's real length, and what `costs` reports of them."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import cli_for
from tests.helpers.daemon import rows
from tests.helpers.media import wav_bytes
from voxbatch.accounting import budget
from voxbatch.config import InboxProfile, Settings
from voxbatch.emulator import Emulator
from voxbatch.store import calls
from voxbatch.store import jobs as store_jobs
from voxbatch.store.db import open_database
from voxbatch.store.models import CostEstimate, JobState, utcnow

pytestmark = pytest.mark.media  # they run ffmpeg


def test_estimates_without_caps_follow_each_files_length(
    emulator: Emulator, isolated_env: Path
) -> None:
    inbox = isolated_env / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "short.wav").write_bytes(wav_bytes(3, tag=1))
    (inbox / "long.wav").write_bytes(wav_bytes(9, tag=2))
    cli = cli_for(emulator, VOXBATCH_DAEMON__STABLE_SECONDS="0.2")  # no cap set anywhere
    assert cli("run", "--once").exit_code == 0
    found = rows(
        isolated_env,
        "SELECT job.source_name, cost_estimate.audio_seconds, cost_estimate.estimated_usd "
        "FROM cost_estimate JOIN job ON job.id = cost_estimate.job_id ORDER BY job.source_name",
    )
    settings = Settings.model_validate({"home": str(isolated_env)})
    expected = {
        name: budget.estimate_job_cost(settings, InboxProfile(), seconds)
        for name, seconds in (("long.wav", 9), ("short.wav", 3))
    }
    assert [(name, round(seconds or 0), Decimal(usd)) for name, seconds, usd in found] == [
        ("long.wav", 9, expected["long.wav"]),
        ("short.wav", 3, expected["short.wav"]),
    ]
    report = cli.json("costs")["estimates"]
    assert report["jobs"] == 2
    placeholder = budget.estimate_job_cost(settings, InboxProfile(), budget.ASSUMED_AUDIO_SECONDS)
    assert Decimal(report["estimated_usd"]) == sum(expected.values())
    assert Decimal(report["estimated_usd"]) < placeholder


def test_no_placeholder_estimate_is_recorded_or_reported(
    emulator: Emulator, isolated_env: Path
) -> None:
    """A job of unknown length records no estimate, and an old placeholder row is skipped."""
    settings = Settings.model_validate({"home": str(isolated_env)})
    with open_database(isolated_env / "voxbatch.db") as db, db.write() as session:
        job = store_jobs.create_job(
            session, content_sha256="0" * 64, source_path="/in/x.wav", size_bytes=1,
            inbox=None, output_dir=None, primary=None,
        )  # fmt: skip
        assert budget.admit(session, settings, InboxProfile(), job, audio_seconds=None,
                            now=utcnow()) is None  # fmt: skip
        assert job.id is not None and calls.estimate_for(session, job.id) is None
        # What an older version recorded for every job it had not probed: one hour.
        old = store_jobs.create_job(
            session, content_sha256="1" * 64, source_path="/in/y.wav", size_bytes=1,
            inbox=None, output_dir=None, primary=None,
        )  # fmt: skip
        assert old.id is not None
        store_jobs.set_state(session, old, JobState.done)
        placeholder = budget.estimate_job_cost(settings, InboxProfile(), 3600)
        session.add(CostEstimate(job_id=old.id, estimated_usd=placeholder, audio_seconds=None))
    report = cli_for(emulator).json("costs")["estimates"]
    assert report["jobs"] == 0
    assert Decimal(report["estimated_usd"]) == 0
