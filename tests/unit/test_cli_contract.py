"""Exit codes as the contract says, for arguments a user can get wrong: 2 with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli

KEYED = {"MISTRAL_API_KEY": "test-key-0123456789"}


@pytest.mark.parametrize("command", ["show", "export", "tail", "retry"])
@pytest.mark.parametrize("ref", ["zz", "-1", "12", "abc", "12345678901234567890123", " "])
def test_an_unknown_or_malformed_job_exits_2(command: str, ref: str) -> None:
    result = Cli(KEYED)(command, "--", ref, ok=False)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "error" in result.stderr.lower()


def test_a_malformed_job_is_refused_before_any_is_retried() -> None:
    result = Cli(KEYED)("retry", "1", "not-a-job", ok=False)
    assert result.exit_code == 2 and "not-a-job" in result.stderr


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)], ids=["process", "dry-run"])
def test_process_on_a_missing_file_or_a_folder_exits_2(
    tmp_path: Path, dry_run: tuple[str, ...]
) -> None:
    cli = Cli(KEYED)
    missing = cli("process", *dry_run, str(tmp_path / "nope.wav"), ok=False)
    assert missing.exit_code == 2 and "nope.wav" in missing.stderr
    assert "does not exist" in missing.stderr
    folder = cli("process", *dry_run, str(tmp_path), ok=False)
    assert folder.exit_code == 2 and "is a directory" in folder.stderr
    assert "Traceback" not in missing.stderr + folder.stderr


def test_emulator_port_out_of_range_exits_2_without_a_traceback() -> None:
    result = Cli({})("emulator", "--port", "99999", ok=False)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "99999" in result.stderr and "Traceback" not in result.stderr
