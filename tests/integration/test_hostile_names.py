"""File names chosen to hurt: shell metacharacters in a note's command, line breaks in logs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli_for
from voxbatch.emulator import Emulator

pytestmark = pytest.mark.media  # the daemon probes every file with ffmpeg


def _fails_in_the_daemon(emulator: Emulator, home: Path, name: str) -> str:
    """Drop a file that is not audio under `name`; run the daemon once; its stderr."""
    inbox = home / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_text("this is not audio")
    result = cli_for(emulator, VOXBATCH_DAEMON__STABLE_SECONDS="0.2")("run", "--once", ok=None)
    assert result.exit_code == 1, result.stderr
    return result.stderr


def test_the_notes_suggested_command_is_shell_quoted(
    emulator: Emulator, isolated_env: Path, tmp_path: Path
) -> None:
    name = "x'; touch PWNED; echo '.wav"
    _fails_in_the_daemon(emulator, isolated_env, name)
    note = (isolated_env / "failed" / f"{name}.error.txt").read_text()
    [line] = [line for line in note.splitlines() if "voxbatch why" in line]
    # Pasted into a shell, the whole line asks about exactly this file and runs nothing else.
    pasted = line.replace("voxbatch why", "printf %s", 1)
    shell = tmp_path / "shell"
    shell.mkdir()
    done = subprocess.run(
        ["sh", "-c", pasted], cwd=shell, capture_output=True, text=True, check=False, timeout=10
    )
    assert done.returncode == 0, (line, done.stderr)
    assert done.stdout == name, line
    assert not (shell / "PWNED").exists()


def test_a_line_break_in_a_name_cannot_forge_a_log_line(
    emulator: Emulator, isolated_env: Path
) -> None:
    name = "talk\n2026-12-04 12:00:00,000 ERROR forged: \x1b[31mred.wav"
    stderr = _fails_in_the_daemon(emulator, isolated_env, name)
    lines = stderr.splitlines()
    assert not any(line.startswith("2026-12-04 12:00:00,000 ERROR forged") for line in lines)
    assert "\x1b" not in stderr
    assert any("talk\\n2026-12-04" in line for line in lines), stderr
