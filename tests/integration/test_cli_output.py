"""What people and pipelines read from the CLI: tables that fit, CSV and NL, doctor, config."""

from __future__ import annotations

import csv
import io
import json
import tomllib
from pathlib import Path

import pytest
from wcwidth import wcswidth

from tests.conftest import Cli


@pytest.fixture
def processed(cli: Cli, samples: list[Path], tmp_path: Path) -> Cli:
    """Two finished jobs, one with a long name of wide characters."""
    long_name = tmp_path / ("会議の録音と議事録の確認_" * 4 + ".wav")
    long_name.write_bytes(samples[-1].read_bytes())
    cli("process", str(samples[0]), str(long_name))
    return cli


@pytest.mark.media
def test_jobs_table_fits_a_narrow_terminal(processed: Cli) -> None:
    processed.env["COLUMNS"] = "80"
    out = processed("jobs").stdout
    assert max(wcswidth(line) for line in out.splitlines()) <= 80, out
    assert "…" in out
    assert "created_at (UTC)" in out.splitlines()[0]


@pytest.mark.media
def test_jobs_as_csv_and_as_newline_json(processed: Cli) -> None:
    rows = list(csv.DictReader(io.StringIO(processed("jobs", "--csv").stdout)))
    assert len(rows) == 2 and {r["state"] for r in rows} == {"done"}
    assert all(r["cost_usd"].startswith("0.") for r in rows)
    lines = processed("jobs", "--nl").stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [int(r["id"]) for r in rows]
    costs = list(csv.DictReader(io.StringIO(processed("costs", "--csv").stdout)))
    assert costs and costs[0]["kind"] == "stt"


def test_two_output_modes_at_once_is_a_usage_error(cli: Cli) -> None:
    result = cli("jobs", "--json", "--csv", ok=False)
    assert result.exit_code == 2 and "choose one of --json, --csv and --nl" in result.stderr


@pytest.mark.media
def test_an_empty_search_says_so_once(processed: Cli) -> None:
    result = processed("search", "zebra-that-was-never-said")
    said = (result.stdout + result.stderr).lower()
    assert said.count("no matches") + said.count("(none)") == 1, said


@pytest.mark.media  # doctor runs ffmpeg -version
def test_doctor_passes_for_a_process_only_user(cli: Cli, isolated_env: Path) -> None:
    """No daemon folders, no database yet: warnings, not failures."""
    result = cli("doctor")
    assert result.exit_code == 0, result.stdout
    assert "warn  folders" in result.stdout and "FAIL" not in result.stdout
    checks = {c["check"]: c for c in cli.json("doctor")}
    assert checks["folders"]["level"] == "warn" and checks["folders"]["ok"] is True
    assert checks["api"]["level"] == "ok"
    assert not isolated_env.exists() or not (isolated_env / "voxbatch.db").exists()


@pytest.mark.media
def test_doctor_shows_modes_as_chmod_does_and_warns_on_a_world_readable_home(
    cli: Cli, isolated_env: Path
) -> None:
    cli("run", "--once")  # creates the daemon's folders
    isolated_env.chmod(0o755)
    result = cli("doctor")
    assert result.exit_code == 0
    folders = next(line for line in result.stdout.splitlines() if " folders " in line)
    assert folders.startswith("warn") and "mode 0755" in folders and "0o" not in result.stdout


def test_config_show_is_toml_that_loads_back(cli: Cli, tmp_path: Path) -> None:
    cli.env["VOXBATCH_DAEMON__CONCURRENCY"] = "3"
    text = cli("config", "show").stdout
    saved = tmp_path / "saved.toml"
    saved.write_text(text)
    assert tomllib.loads(text)["daemon"]["concurrency"] == 3
    assert "test-key-0123456789" not in text
    before = cli.json("config", "show")
    del cli.env["VOXBATCH_DAEMON__CONCURRENCY"]
    after = cli.json("--config", str(saved), "config", "show")
    assert after.pop("config_file") == str(saved)
    before.pop("config_file")
    assert after == before
