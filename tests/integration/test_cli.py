"""The command line as users meet it: help, exit codes, config, the emulator in its own process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tests.conftest import Cli
from voxbatch.cli.main import main
from voxbatch.emulator import Emulator

README = Path(__file__).resolve().parents[2] / "README.md"


def all_commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found += all_commands(command, f"{prefix}{name} ")
    return found


@pytest.mark.parametrize(("name", "command"), all_commands(main))
def test_every_command_has_help_and_is_documented(name: str, command: click.Command) -> None:
    assert command.help, f"{name} has no help text"
    assert f"voxbatch {name}" in README.read_text(), f"README does not document {name}"


def test_missing_key_is_a_configuration_error(tmp_path: Path) -> None:
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"x")
    result = Cli({})("process", str(clip), ok=False)
    assert result.exit_code == 2
    assert "no Mistral API key" in result.stderr and "voxbatch demo" in result.stderr


def test_bad_config_file_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text("[daemon]\nworkers = 3\n")
    result = Cli({})("--config", str(cfg), "jobs", ok=False)
    assert result.exit_code == 2
    assert str(cfg) in result.stderr and "daemon.workers" in result.stderr


def test_config_show_masks_the_key(tmp_path: Path) -> None:
    cli = Cli({"MISTRAL_API_KEY": "sk-abcdefghijklmnop", "VOXBATCH_DAEMON__CONCURRENCY": "3"})
    data = cli.json("config", "show")
    assert data["daemon"]["concurrency"] == 3
    assert data["mistral"]["api_key"] == "*** (set)"
    text = cli("config", "show").stdout
    assert "concurrency = 3" in text and "sk-abcdefghijklmnop" not in text


def test_export_and_show_unknown_job(cli: Cli, isolated_env: Path) -> None:
    from voxbatch.store.db import open_database

    open_database(isolated_env / "voxbatch.db").close()  # a home, without that job
    result = cli("export", "42", ok=False)
    assert result.exit_code == 2 and "no job with id 42" in result.stderr
    result = cli("show", "zz", ok=False)
    assert "neither a job id" in result.stderr


@pytest.mark.media
def test_demo_prints_jobs_and_a_transcript() -> None:
    result = Cli({})("demo")
    assert "done" in result.stdout and "Transcript of" in result.stdout
    assert re.search(r"\[\s*\d+\.\d\d – \s*\d+\.\d\d\] \w+", result.stdout)
    assert "voxbatch-demo-" not in result.stderr  # a home removed at exit is not shown


@pytest.mark.media
def test_demo_keep_prints_the_home_it_keeps(tmp_path: Path, samples: list[Path]) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / samples[0].name).write_bytes(samples[0].read_bytes())
    result = Cli({})("demo", "--keep", "--samples", str(tmp_path / "clips"))
    [kept] = re.findall(r"kept (\S+)", result.stderr)
    try:
        assert (Path(kept) / "voxbatch.db").is_file()
    finally:
        import shutil

        shutil.rmtree(kept)


@pytest.mark.slow
@pytest.mark.media
@pytest.mark.timeout(300)  # six subprocesses, each importing the SDK
def test_emulator_in_its_own_process_then_process_search_costs(
    tmp_path: Path, samples: list[Path], isolated_env: Path
) -> None:
    """The README's trial: `voxbatch emulator` in one shell, `voxbatch process` in another."""
    env = {**os.environ}
    emulator = subprocess.Popen(
        [sys.executable, "-m", "voxbatch", "emulator", "--port", "0"],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert emulator.stderr is not None
        url = re.search(r"http://\S+", emulator.stderr.readline())
        assert url, "emulator did not announce its address"
        env |= {"MISTRAL_BASE_URL": url.group(0), "MISTRAL_API_KEY": "x"}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "voxbatch", *args], env=env, capture_output=True,
                text=True, timeout=120,
            )  # fmt: skip

        done = run("process", *map(str, samples), "--json")
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)
        assert all(r["state"] == "done" for r in rows)
        word = run("show", str(rows[0]["job_id"]), "--json")
        text = json.loads(word.stdout)["transcript"]["text"].split()
        hits = json.loads(run("search", text[0], "--json").stdout)
        assert rows[0]["job_id"] in [h["job_id"] for h in hits]
        again = json.loads(run("process", *map(str, samples), "--json").stdout)
        assert all(r["duplicate_of"] for r in again)
        costs = json.loads(run("costs", "--json").stdout)
        assert costs["rows"][0]["calls"] == len(samples)
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
        assert emulator.stderr is not None
        emulator.stderr.close()
    assert emulator.returncode == 0


@pytest.mark.media
def test_unknown_status_and_unwritable_export_are_clear(cli: Cli, samples: list[Path]) -> None:
    assert cli("jobs", "--status", "bogus", ok=False).exit_code == 2
    [row] = cli.json("process", str(samples[0]))
    result = cli("export", str(row["job_id"]), "-o", "/proc/nope/x.srt", ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot write /proc/nope/x.srt")
    assert "Traceback" not in result.stderr


@pytest.mark.media
def test_job_refs_ids_and_hash_prefixes(cli: Cli, samples: list[Path]) -> None:
    rows = cli.json("process", *map(str, samples[:2]))
    sha = cli.json("show", str(rows[1]["job_id"]))["content_sha256"]
    assert cli.json("show", sha[:8])["id"] == rows[1]["job_id"]
    assert cli.json("show", sha[:8].upper())["id"] == rows[1]["job_id"]


def test_environment_errors_name_the_variable(tmp_path: Path) -> None:
    result = Cli({"VOXBATCH_DAEMON__CONCURRENCY": "many"})("jobs", ok=False)
    assert result.exit_code == 2
    assert "VOXBATCH_DAEMON__CONCURRENCY" in result.stderr
    result = Cli({"MISTRAL_BASE_URL": "ftp://x"})("jobs", ok=False)
    assert "MISTRAL_BASE_URL" in result.stderr


def test_model_without_a_price_is_refused_before_paying(
    cli: Cli, samples: list[Path], emulator: Emulator
) -> None:
    cli.env["VOXBATCH_MISTRAL__TRANSCRIPTION_MODEL"] = "voxtral-mini-transcribe-realtime-3"
    result = cli("process", str(samples[0]), ok=False)
    assert result.exit_code == 2
    assert "no price for model 'voxtral-mini-transcribe-realtime-3'" in result.stderr
    assert emulator.records.sessions == []


@pytest.mark.media
def test_a_symlink_named_on_the_command_line_is_followed(
    cli: Cli, samples: list[Path], tmp_path: Path
) -> None:
    link = tmp_path / "link.flac"
    link.symlink_to(samples[0])
    [row] = cli.json("process", str(link))
    assert row["state"] == "done" and row["file"] == str(samples[0])
