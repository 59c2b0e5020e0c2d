"""Pre-job estimates come from the audio's real length, and what `costs` reports of them."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import cli_for
from tests.helpers.daemon import rows
from tests.helpers.media import lying_mp3, wav_bytes
from voxbatch.accounting import budget
from voxbatch.accounting.prices import stt_charge
from voxbatch.config import InboxProfile, Settings
from voxbatch.emulator import Emulator
from voxbatch.media import audio
from voxbatch.media.audio import MAX_CHUNK_BYTES
from voxbatch.media.ffmpeg import find_ffmpeg
from voxbatch.store import calls
from voxbatch.store import jobs as store_jobs
from voxbatch.store.db import open_database
from voxbatch.store.models import CostEstimate, JobState, utcnow

pytestmark = pytest.mark.media  # they run ffmpeg
STT = "voxtral-mini-transcribe-realtime-2602"


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


REAL_S, CLAIMED_S = 605.0, 65.0


def test_a_lying_mp3_is_estimated_from_its_real_length(
    emulator: Emulator, isolated_env: Path, tmp_path: Path
) -> None:
    clip = lying_mp3(tmp_path / "lies.mp3", real_seconds=REAL_S, claimed_seconds=CLAIMED_S)
    info = asyncio.run(audio.probe(clip, ffmpeg=find_ffmpeg()))
    assert info.duration_seconds == pytest.approx(CLAIMED_S, abs=0.5)  # what the header says
    assert not info.duration_estimated  # and ffmpeg believes it
    found = cli_for(emulator).json("process", "--dry-run", str(clip))
    settings = Settings.model_validate({"home": str(isolated_env)})
    [row] = found["files"]
    assert float(row["audio_seconds"]) == pytest.approx(REAL_S, abs=0.5)
    assert Decimal(str(row["estimated_usd"])) == budget.estimate_job_cost(
        settings, InboxProfile(), row["audio_seconds"]
    )


def _spend(home: Path) -> Decimal:
    return sum(
        (Decimal(c) for (c,) in rows(home, "SELECT cost_usd FROM api_call") if c is not None),
        Decimal(0),
    )


def test_a_lying_mp3_waits_at_a_daily_cap_instead_of_overshooting_it(
    emulator: Emulator, isolated_env: Path, tmp_path: Path
) -> None:
    inbox = isolated_env / "inbox"
    inbox.mkdir(parents=True)
    lying_mp3(inbox / "lies.mp3", real_seconds=REAL_S, claimed_seconds=CLAIMED_S)
    cap = Decimal("0.02")  # 65 s cost $0.0066; the real 605 s cost $0.0605
    cli = cli_for(
        emulator, VOXBATCH_DAEMON__STABLE_SECONDS="0.2", VOXBATCH_BUDGET__DAILY_USD=str(cap)
    )
    cli("run", "--once", ok=None)
    assert _spend(isolated_env) <= cap
    assert sum(s.total_bytes for s in emulator.records.sessions) == 0
    [(state, stage, reason)] = rows(isolated_env, "SELECT state, stage, wait_reason FROM job")
    assert (state, stage) == ("queued", "budget")
    assert "daily cap $0.02 reached" in reason
    assert "daily cap" in cli("why", "lies.mp3").stdout


def test_a_stream_past_its_estimate_stops_at_the_cap_and_waits(
    emulator: Emulator, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the length cannot be measured the header's claim is the estimate; the stream that
    runs past it re-checks the cap and stops, within the bound the README states."""

    async def unmeasurable(path: Path, *, ffmpeg: str, timeout_s: float = 0) -> None:
        return None

    monkeypatch.setattr(audio, "measure_seconds", unmeasurable, raising=False)
    inbox = isolated_env / "inbox"
    inbox.mkdir(parents=True)
    lying_mp3(inbox / "lies.mp3", real_seconds=REAL_S, claimed_seconds=CLAIMED_S)
    cap = Decimal("0.02")
    cli = cli_for(
        emulator, VOXBATCH_DAEMON__STABLE_SECONDS="0.2", VOXBATCH_BUDGET__DAILY_USD=str(cap)
    )
    cli("run", "--once", ok=None)
    settings = Settings.model_validate({"home": str(isolated_env)})
    # The README's bound: a tenth of the estimated audio plus one message, per running job.
    over = stt_charge(settings.prices, STT, math.ceil(CLAIMED_S / 10 + MAX_CHUNK_BYTES / 32_000))
    assert _spend(isolated_env) <= cap + over.cost_usd
    # It went on past its estimate while the cap allowed ($0.02 buys 200 s), then stopped.
    sent = sum(s.total_bytes for s in emulator.records.sessions) / 32_000
    slack = CLAIMED_S / 10 + MAX_CHUNK_BYTES / 32_000
    assert 200 - slack <= sent <= 200 + slack
    [(state, stage, reason)] = rows(isolated_env, "SELECT state, stage, wait_reason FROM job")
    assert (state, stage) == ("queued", "budget")
    assert "runs past" in reason and "daily cap $0.02 reached" in reason
    [(outcome, estimated)] = rows(isolated_env, "SELECT outcome, estimated FROM api_call")
    assert (outcome, estimated) == ("cancelled", 1)
    assert "runs past" in cli("why", "lies.mp3").stdout
    # Raised, the cap lets it start again and run to the end (the stopped attempt stays paid).
    cli.env["VOXBATCH_BUDGET__DAILY_USD"] = "1"
    cli("run", "--once", ok=None)
    assert rows(isolated_env, "SELECT state FROM job") == [("done",)]
    assert emulator.records.sessions[-1].total_bytes == pytest.approx(REAL_S * 32_000, rel=0.01)
    assert [o for (o,) in rows(isolated_env, "SELECT outcome FROM api_call")] == ["cancelled", "ok"]
