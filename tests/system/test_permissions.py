"""A config, key file or home the service user cannot read is a one-line error, not a traceback.

The README's old install steps made /etc/voxbatch 0700 root, and `voxbatch run` as the service
user died with a PermissionError traceback and exit 1 (so systemd restarted it for ever).
These run voxbatch without the power to ignore permissions: as root, through capsh with
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped (root is then held to a folder's mode bits
like anyone); as another user, directly. A mode of 000 then locks the thing out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

VOXBATCH = str(Path(sys.executable).parent / "voxbatch")
CAPSH = shutil.which("capsh")


def unprivileged(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`voxbatch ARGS` held to file permissions."""
    if os.geteuid() == 0:
        if CAPSH is None:
            pytest.skip("running as root needs capsh (apt install libcap2-bin) to drop DAC caps")
        drop = "--drop=cap_dac_override,cap_dac_read_search"
        argv = [CAPSH, drop, "--", "-c", 'exec "$0" "$@"', VOXBATCH, *args]
    else:
        argv = [VOXBATCH, *args]
    return subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[list[Path]]:
    """Folders to lock (mode 000) for one test; opened again afterwards for the clean-up."""
    folders: list[Path] = []
    yield folders
    for folder in folders:
        folder.chmod(0o700)


def lock(folders: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o000)
    folders.append(folder)
    return folder


SETUPS = ["system config folder", "config file", "key file", "home"]
COMMANDS = [(["run", "--once"], 3), (["status"], 2), (["jobs"], 2), (["doctor"], 2)]
# status and jobs read no key: a locked key file is no error of theirs.
CASES = [
    pytest.param(what, args, code, id=f"{args[0]}-{what}")
    for what in SETUPS
    for args, code in COMMANDS
    if not (what == "key file" and args[0] in ("status", "jobs"))
]


def setup(what: str, tmp_path: Path, folders: list[Path]) -> tuple[dict[str, str], Path]:
    """The environment for the case and the path the error must name."""
    home = tmp_path / "vbhome"
    home.mkdir(exist_ok=True)
    env = {"VOXBATCH_HOME": str(home), "MISTRAL_BASE_URL": "http://127.0.0.1:9"}
    if what != "key file":
        env["MISTRAL_API_KEY"] = "test-key-0123456789"
    if what == "system config folder":  # the README's literal /etc/voxbatch: 0700 root
        etc = tmp_path / "etc-voxbatch"
        etc.mkdir()
        (etc / "voxbatch.toml").write_text('log_level = "INFO"\n')
        env["VOXBATCH_SYSTEM_CONFIG"] = str(etc / "voxbatch.toml")
        lock(folders, etc)
        return env, etc / "voxbatch.toml"
    if what == "config file":
        config = tmp_path / "voxbatch.toml"
        config.write_text('log_level = "INFO"\n')
        config.chmod(0o000)
        env["VOXBATCH_CONFIG"] = str(config)
        return env, config
    if what == "key file":
        creds = lock(folders, tmp_path / "credentials")
        env["CREDENTIALS_DIRECTORY"] = str(creds)
        return env, creds / "mistral_api_key"
    parent = lock(folders, tmp_path / "locked")
    env["VOXBATCH_HOME"] = str(parent / "home")
    return env, parent / "home"


@pytest.mark.media  # doctor runs ffmpeg -version
@pytest.mark.parametrize(("what", "args", "code"), CASES)
def test_an_unreadable_file_or_home_is_one_line_and_the_right_exit_code(
    tmp_path: Path, locked: list[Path], what: str, args: list[str], code: int
) -> None:
    env, named = setup(what, tmp_path, locked)
    if what == "key file" and args[0] == "doctor":
        code = 1  # doctor reports the key as a failed check among the others
    result = unprivileged(args, env)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    if args[0] == "doctor" and code == 1:
        failed = [line for line in lines if line.startswith("FAIL")]
        assert any(str(named) in line for line in failed), result.stdout
        return
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and str(named) in errors[0], result.stderr
    assert "ermission denied" in errors[0] or "cannot read" in errors[0], errors[0]
    # The error, and at most one line saying what to do.
    assert len(result.stderr.splitlines()) <= 2, result.stderr
