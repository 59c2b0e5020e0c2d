"""Shared fixtures: an isolated home per test, the emulator on a free port, a CLI runner."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from voxbatch.cli.main import main
from voxbatch.emulator import Emulator, EmulatorConfig, running_emulator

SAMPLES = Path(__file__).resolve().parent.parent / "sample_audio"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test sees the developer's configuration, key or state, and none leaves any behind."""
    import os

    for name in list(os.environ):
        if name.startswith(("VOXBATCH_", "MISTRAL_")) or name in (
            "CREDENTIALS_DIRECTORY",
            "STATE_DIRECTORY",
            "NOTIFY_SOCKET",
        ):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("VOXBATCH_HOME", str(home))
    # websockets honours proxy variables; the emulator is always on loopback.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return home


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator(EmulatorConfig()) as emu:
        yield emu


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start an emulator with the given fault switches; stopped at the end of the test."""
    from contextlib import ExitStack

    with ExitStack() as stack:

        def start(**config: Any) -> Emulator:
            return stack.enter_context(running_emulator(EmulatorConfig(**config)))

        yield start


@pytest.fixture(params=[False, True], ids=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A datagram socket standing in for systemd's, as NOTIFY_SOCKET names it: a path, or
    `@name` in the abstract namespace. Yields (socket, address)."""
    import os
    import socket
    import time

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param:
        name = f"voxbatch-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind("\0" + name)
        address = "@" + name
    else:
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
    sock.settimeout(30)
    with sock:
        yield sock, address


@dataclass
class Cli:
    env: dict[str, str]

    def __call__(self, *args: str, ok: bool | None = True) -> Result:
        result = CliRunner().invoke(main, list(args), env=self.env, catch_exceptions=False)
        if ok is True:
            assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(emulator: Emulator) -> Cli:
    """The voxbatch CLI pointed at a fresh emulator, the way a user would configure it."""
    return Cli(
        {
            "MISTRAL_BASE_URL": emulator.base_url,
            "MISTRAL_API_KEY": "test-key-0123456789",
            "VOXBATCH_DAEMON__RETRY_INITIAL_S": "0.05",
        }
    )


def cli_for(emu: Emulator, **env: str) -> Cli:
    return Cli(
        {
            "MISTRAL_BASE_URL": emu.base_url,
            "MISTRAL_API_KEY": "test-key-0123456789",
            "VOXBATCH_DAEMON__RETRY_INITIAL_S": "0.05",
            **env,
        }
    )


@pytest.fixture
def samples() -> list[Path]:
    clips = sorted(SAMPLES.iterdir())
    assert len(clips) >= 4, "sample_audio/ should hold the sample clips"
    return clips


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[object]:
    """Start `voxbatch run` processes (`tests.daemon_helpers.Daemon`); all killed at the end."""
    from tests.daemon_helpers import Daemon

    started: list[Daemon] = []

    def start(env: dict[str, str], *args: str) -> Daemon:
        daemon = Daemon(env, *args, log=tmp_path / f"daemon{len(started)}.log")
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
