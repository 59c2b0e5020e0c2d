"""The README's "A drop folder shared with a group", step by step, with real users (root only).

The test mirrors the README's commands one for one (systemd itself cannot run here): each step
is quoted from the README's section, and the test fails if the README stops saying it. Paths
move into a temporary "server": /opt/voxbatch, /etc/voxbatch and /var/lib/voxbatch become
folders under it, and VOXBATCH_SYSTEM_CONFIG points at its etc (the unit's values are set
as systemd would: User=, UMask=0077, STATE_DIRECTORY, CREDENTIALS_DIRECTORY, the env file).

voxbatch is installed as the README says, `python3 -m venv` + `pip install`, with Debian's
/usr/bin/python3: the test's own interpreter may live where other users cannot enter (/root).
"""

from __future__ import annotations

import grp
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from voxbatch.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
pytestmark = [pytest.mark.media, pytest.mark.timeout(900)]


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("creates users and runs voxbatch as them: needs root (CI runs as root)")
    for tool in ("useradd", "usermod", "userdel", "groupdel", "runuser", "install"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if not SYSTEM_PYTHON.exists():
        pytest.skip("no /usr/bin/python3 to build a venv every user can run")
    version = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info >= (3, 11))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if version != "True":
        pytest.skip("/usr/bin/python3 is older than voxbatch's 3.11")


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"#### {title}")
    end = text.index("\n## ", start)
    return text[start:end]


SECTION = "A drop folder shared with a group"
# The README's lines this test performs, in order (paths as the README writes them).
STEPS = [
    "usermod -aG voxbatch alice",
    "install -d -o voxbatch -g voxbatch -m 0710 /var/lib/voxbatch",
    "install -d -o voxbatch -g voxbatch -m 2770 /var/lib/voxbatch/drop "
    "/var/lib/voxbatch/drop/.incoming",
    "cat >> /etc/voxbatch/voxbatch.toml <<'EOF'",
    "printf '[Service]\\nStateDirectoryMode=0710\\n'",
    "systemctl daemon-reload && systemctl restart voxbatch",
    "cp talk.wav /var/lib/voxbatch/drop/",
    "cat /var/lib/voxbatch/drop-results/talk.txt",
    "cat /var/lib/voxbatch/failed/talk.wav.error.txt",
]


def test_the_readme_still_says_what_this_test_does() -> None:
    section = readme_section(SECTION)
    at = 0
    for step in STEPS:
        found = section.find(step, at)
        assert found >= 0, f"README's {SECTION!r} no longer says (in this order): {step}"
        at = found + len(step)


def readme_toml() -> str:
    """The TOML the README appends to /etc/voxbatch/voxbatch.toml."""
    match = re.search(r"<<'EOF'\n(.*?)\nEOF\n", readme_section(SECTION), re.S)
    assert match, "the README's cat >> voxbatch.toml <<'EOF' block"
    return match.group(1)


@pytest.fixture(scope="module")
def server() -> Iterator[Path]:
    """The temporary server's root: every user may pass through it (like / on a server)."""
    needs_root()
    base = Path(tempfile.mkdtemp(prefix="vb-server-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def installed(server: Path) -> Path:
    """README: python3 -m venv /opt/voxbatch && /opt/voxbatch/bin/pip install /path/to/voxbatch"""
    source = server / "src"  # a clean copy: pip's build folders stay out of the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "voxbatch", source / "voxbatch", ignore=shutil.ignore_patterns("__pycache__")
    )
    venv = server / "opt-voxbatch"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", venv], check=True, timeout=300)
    pip = subprocess.run(
        [venv / "bin" / "pip", "install", "-q", source],
        capture_output=True, text=True, timeout=800,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-2000:]
    return venv / "bin" / "voxbatch"


@pytest.fixture
def users() -> Iterator[dict[str, str]]:
    """A service user, a producer and an outsider, with random names; removed afterwards."""
    tag = secrets.token_hex(3)
    names = {"service": f"vbsvc-{tag}", "producer": f"vbprod-{tag}", "outsider": f"vbout-{tag}"}
    yield names
    for name in (names["producer"], names["outsider"], names["service"]):
        subprocess.run(["userdel", name], capture_output=True, check=False)
    subprocess.run(["groupdel", names["service"]], capture_output=True, check=False)


def sh(*argv: str | Path) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=60)


def as_user(
    user: str, *argv: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [runuser(), "-u", user, "--", *(str(a) for a in argv)],
        capture_output=True, text=True, timeout=60, env=env or base_env(), cwd="/",
    )  # fmt: skip


def runuser() -> str:
    found = shutil.which("runuser")
    assert found is not None
    return found


def base_env() -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_producer_in_the_group_drops_a_file_and_reads_its_transcript(
    server: Path, installed: Path, users: dict[str, str], emulator: Emulator, samples: list[Path]
) -> None:
    svc, producer, outsider = users["service"], users["producer"], users["outsider"]
    state, etc = server / "var-lib-voxbatch", server / "etc-voxbatch"
    # The service install (README "Running it as a service"), this server's paths.
    sh("useradd", "--system", "--home-dir", state, "--shell", "/usr/sbin/nologin", svc)
    sh("install", "-d", "-o", "root", "-g", svc, "-m", "0750", etc)
    example = (ROOT / "systemd" / "voxbatch.toml").read_text()
    assert 'home = "/var/lib/voxbatch"' in example
    (server / "voxbatch.toml").write_text(example.replace("/var/lib/voxbatch", str(state)))
    (server / "voxbatch.env").write_text(
        f"MISTRAL_BASE_URL={emulator.base_url}\n"
        "VOXBATCH_DAEMON__STABLE_SECONDS=0.3\n"  # a test's patience, not a server's
        "VOXBATCH_DAEMON__RETRY_INITIAL_S=0.05\n"
    )
    sh("install", "-o", "root", "-g", svc, "-m", "0640",
       server / "voxbatch.toml", server / "voxbatch.env", etc)  # fmt: skip
    # LoadCredential=: systemd reads the root-only key and gives the service its own copy.
    creds = server / "credentials"
    sh("install", "-d", "-o", svc, "-g", svc, "-m", "0500", creds)
    (creds / "mistral_api_key").write_text("test-key-0123456789\n")
    sh("chown", f"{svc}:{svc}", creds / "mistral_api_key")
    sh("chmod", "0400", creds / "mistral_api_key")
    # The producers exist on the server already; the outsider is in no group of ours.
    sh("useradd", "--no-create-home", "--shell", "/bin/sh", producer)
    sh("useradd", "--no-create-home", "--shell", "/bin/sh", outsider)

    # README "A drop folder shared with a group", step by step.
    sh("usermod", "-aG", svc, producer)
    sh("install", "-d", "-o", svc, "-g", svc, "-m", "0710", state)
    drop = state / "drop"
    sh("install", "-d", "-o", svc, "-g", svc, "-m", "2770", drop, drop / ".incoming")
    with (etc / "voxbatch.toml").open("a") as config:
        config.write(readme_toml() + "\n")
    # The drop-in's StateDirectoryMode=0710 is what `install -d ... -m 0710` made above; the
    # restart is the service started as the unit starts it.
    env_file = dict(line.split("=", 1) for line in (etc / "voxbatch.env").read_text().splitlines())
    unit_env = {
        **base_env(),
        **env_file,
        "STATE_DIRECTORY": str(state),
        "CREDENTIALS_DIRECTORY": str(creds),
        "VOXBATCH_SYSTEM_CONFIG": str(etc / "voxbatch.toml"),  # stands for /etc/voxbatch
    }
    log = (server / "daemon.log").open("wb")
    unit = [runuser(), "-u", svc, "--", "/bin/sh", "-c", 'umask 0077 && exec "$0" "$@"']
    daemon = subprocess.Popen(
        [*unit, str(installed), "run"],
        env=unit_env, stdout=subprocess.DEVNULL, stderr=log, cwd="/", start_new_session=True,
    )  # fmt: skip
    try:
        # As the producer: their own recording, and a file that is no audio.
        talk, notes = server / "talk.wav", server / "notes.wav"
        shutil.copy(samples[0], talk)
        notes.write_text("minutes of the meeting, not audio\n")
        for own in (talk, notes):
            own.chmod(0o644)
        # One more, left private by mistake (0600): the daemon cannot read it.
        private = server / "private.wav"
        shutil.copy(samples[1], private)
        sh("chown", producer, private)
        private.chmod(0o600)
        for own in (talk, notes, private):
            assert as_user(producer, "cp", own, state / "drop/").returncode == 0
        transcript = state / "drop-results" / "talk.txt"
        note = state / "failed" / "notes.wav.error.txt"
        deadline = time.monotonic() + 120
        daemon_log = server / "daemon.log"
        while not (transcript.exists() and note.exists() and "chmod g+r" in daemon_log.read_text()):
            assert daemon.poll() is None, daemon_log.read_text()[-3000:]
            assert time.monotonic() < deadline, daemon_log.read_text()[-3000:]
            time.sleep(0.2)

        read = as_user(producer, "cat", transcript)
        assert read.returncode == 0 and read.stdout.strip(), read.stderr
        why = as_user(producer, "cat", note)
        assert why.returncode == 0 and "notes.wav" in why.stdout, why.stderr

        # The modes the README promises, whatever the daemon's umask 0077.
        gid = grp.getgrnam(svc).gr_gid
        assert mode(state / "drop") == 0o2770 and mode(state / "drop-results") == 0o750
        assert mode(transcript) == 0o640 and transcript.stat().st_gid == gid
        assert mode(state / "failed") == 0o750 and mode(note) == 0o640
        for private in ("done", "work", "quarantine", "inbox", "outbox", "voxbatch.db"):
            assert mode(state / private) & 0o077 == 0, private

        # A user outside the group can neither drop a file nor read a transcript or a note.
        for attempt in (
            as_user(outsider, "cp", talk, state / "drop" / "theirs.wav"),
            as_user(outsider, "cat", transcript),
            as_user(outsider, "cat", note),
        ):
            assert attempt.returncode != 0 and "Permission denied" in attempt.stderr, attempt
        # The group passes through the home; it does not see the rest of it.
        for peek in (
            as_user(producer, "ls", state),
            as_user(producer, "ls", state / "done"),
            as_user(producer, "cat", state / "voxbatch.db"),
        ):
            assert peek.returncode != 0 and "Permission denied" in peek.stderr, peek

        # The private file waits in the inbox with a reason, never a traceback.
        assert (state / "drop" / "private.wav").exists()
        logged = daemon_log.read_text()
        assert "Traceback" not in logged, logged[-3000:]
        assert f"not readable by the user {svc} (mode 0600)" in logged, logged[-3000:]

        # README: `sudo -u voxbatch /opt/voxbatch/bin/voxbatch status`, no VOXBATCH_HOME.
        status_env = {**base_env(), "VOXBATCH_SYSTEM_CONFIG": str(etc / "voxbatch.toml")}
        status = as_user(svc, installed, "status", env=status_env)
        assert status.returncode == 0, status.stderr
        assert re.search(r"done:\s+1\b", status.stdout) and re.search(
            r"failed:\s+1\b", status.stdout
        ), status.stdout
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(10)
        log.close()
