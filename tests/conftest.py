"""Shared fixtures: an isolated home per test, the emulator on a free port, a CLI runner.

Hermetic: from the start of the session, and again per test, HOME, the XDG user folders,
VOXBATCH_HOME and VOXBATCH_SYSTEM_CONFIG point into temporary folders, in this process and in
every subprocess a test starts (they inherit os.environ), so neither /etc/voxbatch nor the real
home is ever read. The ffmpeg under test is chosen by VOXBATCH_TEST_FFMPEG (`bundled`, the
default: imageio-ffmpeg's; `system`: the one on PATH, e.g. Debian's /usr/bin/ffmpeg; or an
absolute path) and put first on PATH, so voxbatch's own lookup finds it in-process and in
daemons alike. A test that runs it must be marked `media` (`pytest -m media` re-runs them all).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest
from click.testing import CliRunner, Result

import voxbatch.config
from voxbatch.cli.main import main
from voxbatch.emulator import Emulator, EmulatorConfig, running_emulator

SAMPLES = Path(__file__).resolve().parent.parent / "voxbatch" / "sample_audio"
TEST_FFMPEG = "VOXBATCH_TEST_FFMPEG"
_XDG_USER_DIRS = {
    "XDG_CONFIG_HOME": ".config",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
    "XDG_CACHE_HOME": ".cache",
}
SYSTEM_CONFIG = voxbatch.config.SYSTEM_CONFIG  # /etc/voxbatch/voxbatch.toml, never read here
_session: dict[str, Any] = {}


def _chosen_ffmpeg(choice: str) -> str:
    if choice == "bundled":
        return imageio_ffmpeg.get_ffmpeg_exe()
    if choice == "system":
        found = shutil.which("ffmpeg")
        if found is None or "imageio_ffmpeg" in found:
            raise pytest.UsageError(f"{TEST_FFMPEG}=system, but there is no ffmpeg on PATH")
        return os.path.realpath(found)
    if os.path.isabs(choice) and os.access(choice, os.X_OK):
        return choice
    raise pytest.UsageError(f"{TEST_FFMPEG} must be bundled, system or an executable's path")


def _point_user_dirs_at(home: Path, set_env: Callable[[str, str], object]) -> None:
    set_env("HOME", str(home))
    for name, relative in _XDG_USER_DIRS.items():
        set_env(name, str(home / relative))


def pytest_configure(config: pytest.Config) -> None:
    """Before collection and any fixture: a temporary home, no system config, one ffmpeg."""
    choice = os.environ.get(TEST_FFMPEG) or "bundled"
    real = _chosen_ffmpeg(choice)
    root = Path(tempfile.mkdtemp(prefix="voxbatch-tests-"))
    names = ("PATH", "HOME", TEST_FFMPEG, "VOXBATCH_SYSTEM_CONFIG", *_XDG_USER_DIRS)
    saved = {name: os.environ.get(name) for name in names}
    os.environ.pop(TEST_FFMPEG, None)  # a VOXBATCH_* variable voxbatch itself would refuse
    # A stand-in that notes which test ran it (PYTEST_CURRENT_TEST reaches subprocesses too).
    log = root / "ffmpeg-runs.log"
    shim = root / "bin" / "ffmpeg"
    shim.parent.mkdir()
    shim.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$PYTEST_CURRENT_TEST" >> {shlex.quote(str(log))}\n'
        f'exec {shlex.quote(real)} "$@"\n'
    )
    shim.chmod(0o755)
    os.environ["PATH"] = f"{shim.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    _point_user_dirs_at(root / "home", os.environ.__setitem__)
    os.environ["VOXBATCH_SYSTEM_CONFIG"] = str(root / "etc" / "voxbatch.toml")
    voxbatch.config.SYSTEM_CONFIG = root / "etc" / "voxbatch.toml"  # for explicit environ={}
    version = subprocess.run(
        [real, "-hide_banner", "-version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    _session.update(
        root=root, saved=saved, log=log, ffmpeg=(choice, real, version), default=SYSTEM_CONFIG
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    if "root" not in _session:
        return
    for name, value in _session["saved"].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    voxbatch.config.SYSTEM_CONFIG = _session["default"]
    shutil.rmtree(_session.pop("root"), ignore_errors=True)


def ffmpeg_under_test() -> tuple[str, str, str]:
    """(VOXBATCH_TEST_FFMPEG's value, the binary, the first line of its -version)."""
    return _session["ffmpeg"]


def pytest_report_header(config: pytest.Config) -> str:
    choice, real, version = ffmpeg_under_test()
    return f"ffmpeg under test ({TEST_FFMPEG}={choice}): {real}: {version}"


def ffmpeg_runs(nodeid: str) -> list[str]:
    """The phases of test `nodeid` in which ffmpeg ran (through the PATH stand-in)."""
    log: Path = _session["log"]
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.rsplit(" (", 1)[0] == nodeid]


@pytest.fixture(autouse=True)
def ffmpeg_needs_the_media_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    """`-m media` must select every test that runs ffmpeg, or the second pass misses some."""
    yield
    if request.node.get_closest_marker("media") is None and ffmpeg_runs(request.node.nodeid):
        pytest.fail(f"{request.node.nodeid} runs ffmpeg: mark it @pytest.mark.media")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test sees the developer's configuration, key or state, and none leaves any behind."""
    for name in list(os.environ):
        if name.startswith(("VOXBATCH_", "MISTRAL_")) or name in (
            "CREDENTIALS_DIRECTORY",
            "STATE_DIRECTORY",
            "NOTIFY_SOCKET",
        ):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("VOXBATCH_HOME", str(home))
    _point_user_dirs_at(tmp_path / "user-home", monkeypatch.setenv)
    # The system-wide file is looked for here, also by load_settings(environ={...}) calls.
    system_config = tmp_path / "etc" / "voxbatch.toml"
    monkeypatch.setenv("VOXBATCH_SYSTEM_CONFIG", str(system_config))
    monkeypatch.setattr(voxbatch.config, "SYSTEM_CONFIG", system_config)
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
    assert len(clips) >= 4, "voxbatch/sample_audio/ should hold the sample clips"
    return clips


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[object]:
    """Start `voxbatch run` processes (`tests.helpers.daemon.Daemon`); all killed at the end."""
    from tests.helpers.daemon import Daemon

    started: list[Daemon] = []

    def start(env: dict[str, str], *args: str) -> Daemon:
        daemon = Daemon(env, *args, log=tmp_path / f"daemon{len(started)}.log")
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The system tier (real daemons, signals, mounts) is slow by definition."""
    system = Path(__file__).resolve().parent / "system"
    for item in items:
        if system in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)
