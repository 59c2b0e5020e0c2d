"""The CLI over summaries and spend: show, export, search, costs --by, process --dry-run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import Cli, cli_for
from tests.helpers.summary import (
    KEY,
    make_settings,
    summarise,
    summary_profile,
    transcribe,
)
from voxbatch.accounting import budget
from voxbatch.config import InboxProfile, Settings
from voxbatch.emulator import Emulator
from voxbatch.media.audio import probe, probe_length
from voxbatch.media.ffmpeg import find_ffmpeg
from voxbatch.store import calls as store_calls
from voxbatch.store import jobs, search
from voxbatch.store.db import Database, open_database
from voxbatch.store.models import Job, JobState

pytestmark = pytest.mark.media  # they run ffmpeg


@pytest.fixture
def summarised(
    emulator: Emulator, isolated_env: Path, samples: list[Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Cli, int]]:
    """One job transcribed and summarised (written and spoken) against the emulator."""
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    with open_database(isolated_env / "voxbatch.db") as db:
        settings = make_settings(isolated_env, emulator)
        job_id = transcribe(settings, db, samples[0], isolated_env / "outbox")
        summarise(settings, db, job_id, summary_profile(), isolated_env / "outbox")
        with db.write() as session:
            store_calls.record_estimate(session, job_id, Decimal("0.5"), audio_seconds=6.0)
            # What the pipeline does after the summary stages: publish.
            jobs.set_state(session, session.get_one(Job, job_id), JobState.done, stage="done")
    yield cli_for(emulator), job_id


def test_show_and_export_include_the_summary(
    summarised: tuple[Cli, int], tmp_path: Path, isolated_env: Path
) -> None:
    cli, job_id = summarised
    shown = cli.json("show", str(job_id))
    (summary,) = shown["summaries"]
    assert summary["text"].startswith("Summary: ")
    assert summary["speech"]["format"] == "mp3" and summary["speech"]["bytes"] > 0
    assert shown["estimated_cost_usd"] == "0.5"
    human = cli("show", str(job_id)).stdout
    assert "Summary (mistral-small-latest, 1 part(s), spoken: mp3" in human
    assert summary["text"] in human

    markdown = cli("export", str(job_id), "--format", "summary").stdout
    outbox_md = next((isolated_env / "outbox").glob("*.summary.md"))
    assert markdown == outbox_md.read_text()
    audio_file = tmp_path / "spoken.mp3"
    cli("export", str(job_id), "--format", "speech", "-o", str(audio_file))
    info = asyncio.run(probe(audio_file, ffmpeg=find_ffmpeg()))
    assert (info.duration_seconds or 0) > 0
    piped = cli("export", str(job_id), "--format", "speech").stdout_bytes
    assert piped == audio_file.read_bytes()


def test_export_without_a_summary_says_so(cli: Cli, samples: list[Path]) -> None:
    (row,) = cli.json("process", str(samples[0]))
    result = cli("export", str(row["job_id"]), "--format", "summary", ok=False)
    assert result.exit_code == 1 and "has no summary" in result.stderr


def test_search_covers_summaries(summarised: tuple[Cli, int]) -> None:
    cli, job_id = summarised
    # "Summary" is in the summary only: the emulator's transcripts are made-up words.
    hits = cli.json("search", "summary")
    assert [(h["job_id"], h["in"]) for h in hits] == [(job_id, "summary")]
    assert "[Summary]" in hits[0]["snippet"]
    word = cli.json("show", str(job_id))["transcript"]["text"].split()[0]
    assert {h["in"] for h in cli.json("search", word)} == {"transcript", "summary"}


def test_costs_by_every_grouping_with_estimates(summarised: tuple[Cli, int]) -> None:
    cli, job_id = summarised
    calls = cli.json("show", str(job_id))["api_calls"]
    total = sum(Decimal(c["cost_usd"]) for c in calls)
    today = datetime.now(UTC).date().isoformat()
    by_kind = cli.json("costs", "--by", "kind")
    assert [(r["kind"], r["calls"]) for r in by_kind["rows"]] == [
        ("chat", 1),
        ("stt", 1),
        ("tts", 1),
    ]
    for row in by_kind["rows"]:
        (call,) = [c for c in calls if c["kind"] == row["kind"]]
        assert row["cost_usd"] == call["cost_usd"] and row["estimated_usd"] == "0"
    for by, key in (("day", today), ("month", today[:7]), ("inbox", "(none)")):
        report = cli.json("costs", "--by", by)
        assert [(r[by], Decimal(r["cost_usd"])) for r in report["rows"]] == [(key, total)]
    models = {r["model"] for r in cli.json("costs", "--by", "model")["rows"]}
    assert models == {
        "voxtral-mini-transcribe-realtime-2602",
        "mistral-small-latest",
        "voxtral-mini-tts-2603",
    }
    report = cli.json("costs", "--since", "1d")
    assert Decimal(report["total_usd"]) == total and report["by"] is None
    assert report["estimates"] == {
        "jobs": 1,
        "estimated_usd": "0.5",
        "actual_usd": str(total),
        "difference_usd": str(total - Decimal("0.5")),
        "jobs_over_estimate": 0,
    }
    assert cli.json("costs", "--since", "2999-01-01")["rows"] == []
    human = cli("costs", "--by", "kind").stdout
    assert "tts" in human and "pre-job estimates: 1 finished jobs" in human
    assert cli("costs", "--by", "week", ok=False).exit_code == 2


def test_process_dry_run_estimates_and_calls_nothing(
    emulator: Emulator, isolated_env: Path, samples: list[Path], tmp_path: Path
) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    # No key needed, and nothing at all is written: no database, no job, no outputs.
    cli = Cli({"MISTRAL_BASE_URL": emulator.base_url})
    report = cli.json("process", "--dry-run", *map(str, samples[:3]), str(junk))
    settings = Settings.model_validate({"home": str(isolated_env)})
    expected = []
    for row, clip in zip(report["files"], samples[:3], strict=False):
        # The length measured from the packets, not the header's claim (they may differ).
        seconds = asyncio.run(probe_length(clip, ffmpeg=find_ffmpeg())).duration_seconds
        estimate = budget.estimate_job_cost(settings, InboxProfile(), seconds)
        assert (row["audio_seconds"], Decimal(row["estimated_usd"])) == (seconds, estimate)
        expected.append(estimate)
    assert report["files"][3]["error"] and report["files"][3]["estimated_usd"] is None
    assert Decimal(report["total_usd"]) == sum(expected, Decimal(0))
    assert not isolated_env.exists() or not (isolated_env / "voxbatch.db").exists()
    assert emulator.records.sessions == [] and emulator.records.chat == []

    with_summary = Cli({"VOXBATCH_INBOX__SUMMARY": "true"})
    more = with_summary.json("process", "--dry-run", str(samples[0]))
    assert Decimal(more["total_usd"]) > expected[0] and more["summary"] is True
    human = with_summary("process", "--dry-run", str(samples[0])).stdout
    assert "transcription, summary and speech" in human and "nothing was called" in human


def test_database_rows_hold_the_summary(summarised: tuple[Cli, int], isolated_env: Path) -> None:
    cli, job_id = summarised
    with open_database(isolated_env / "voxbatch.db") as db:
        assert _fts_count(db, "summary") == 1
    assert json.loads(cli("show", str(job_id), "--json").stdout)["summaries"][0]["parts"] == 1


def _fts_count(db: Database, word: str) -> int:
    with db.read() as session:
        return len(search.search_summaries(session, word))
