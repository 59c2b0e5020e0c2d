"""A typo in --home, or `status` without VOXBATCH_HOME, must not invent an empty database.

Commands that read refuse a home with no database (exit 2, naming the home and how to choose
one); only `run`, `process` and `demo` create one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli
from voxbatch.emulator import Emulator

READERS = [
    ["status"],
    ["jobs"],
    ["show", "1"],
    ["why", "a.wav"],
    ["tail", "1"],
    ["costs"],
    ["export", "1"],
    ["search", "word"],
    ["retry", "--failed"],
]


def refused(result_stderr: str, home: Path) -> None:
    lines = result_stderr.splitlines()
    assert len(lines) == 1, result_stderr
    assert lines[0].startswith("error: no voxbatch database in ") and str(home) in lines[0]
    assert "VOXBATCH_HOME" in lines[0] and "--home" in lines[0], lines[0]


@pytest.mark.parametrize("args", READERS, ids=[a[0] for a in READERS])
def test_a_reader_refuses_a_home_without_a_database(
    tmp_path: Path, isolated_env: Path, args: list[str]
) -> None:
    result = Cli({})(*args, ok=False)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    refused(result.stderr, isolated_env)
    assert not isolated_env.exists(), "the home was created"


def test_a_typo_in_home_creates_nothing(tmp_path: Path, isolated_env: Path) -> None:
    typo = tmp_path / "hmoe"
    result = Cli({})("--home", str(typo), "status", ok=False)
    assert result.exit_code == 2, result.stderr
    refused(result.stderr, typo)
    assert not typo.exists()
    # An existing folder that is no voxbatch home is refused the same way, and left as it was.
    typo.mkdir()
    result = Cli({})("--home", str(typo), "jobs", "--json", ok=False)
    assert result.exit_code == 2 and result.stdout == ""
    assert list(typo.iterdir()) == []


def test_a_named_database_that_does_not_exist_is_named(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "vb.db"
    result = Cli({"VOXBATCH_DATABASE": str(database)})("status", ok=False)
    assert result.exit_code == 2
    assert str(database) in result.stderr and not database.parent.exists()


@pytest.mark.media  # process runs ffmpeg
def test_process_creates_the_database_then_readers_use_it(
    emulator: Emulator, isolated_env: Path, samples: list[Path]
) -> None:
    cli = Cli({"MISTRAL_BASE_URL": emulator.base_url, "MISTRAL_API_KEY": "test-key-0123456789"})
    cli("process", str(samples[0]))
    assert (isolated_env / "voxbatch.db").is_file()
    assert cli.json("status")["done"] == 1


@pytest.mark.media  # doctor runs ffmpeg -version
def test_doctor_reports_a_missing_database_and_creates_nothing(
    emulator: Emulator, isolated_env: Path
) -> None:
    cli = Cli({"MISTRAL_BASE_URL": emulator.base_url, "MISTRAL_API_KEY": "test-key-0123456789"})
    result = cli("doctor", ok=False)
    assert "Traceback" not in result.stderr, result.stderr
    database = [line for line in result.stdout.splitlines() if line.split()[1:2] == ["database"]]
    # Not "ok": a failure or a warning (for a `process`-only user), naming the missing file.
    assert database and not database[0].startswith("ok"), result.stdout
    assert str(isolated_env / "voxbatch.db") in database[0]
    assert "voxbatch run" in result.stdout  # the hint: what creates it
    assert not isolated_env.exists(), "doctor created the home"
