"""The store refusing writes (another process's lock, a full disk) never stops a stream, never
ends the daemon, and never buys the same audio twice."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import (
    assert_invariants,
    daemon_env,
    daemon_ready,
    originals,
    rows,
    voxbatch,
    wait_until,
)
from tests.helpers.media import wav_bytes
from voxbatch.emulator import Emulator

pytestmark = [pytest.mark.slow, pytest.mark.media, pytest.mark.timeout(300)]

HOLD_LOCK = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
    """
)


def _appends(emulator: Emulator) -> int:
    return sum(s.appends for s in emulator.records.sessions)


def _streaming(emulator: Emulator, home: Path, spawn, name: str, seconds: float, appends: int):
    """A daemon paced at real time, streaming a `seconds`-long file: its env and itself."""
    env = daemon_env(emulator, home, VOXBATCH_DAEMON__PACE="1.0")
    daemon = spawn(env)
    wait_until(lambda: daemon_ready(home), 30, "the daemon to start", daemon)
    (home / "inbox" / name).write_bytes(wav_bytes(seconds))
    wait_until(lambda: _appends(emulator) >= appends, 60, "audio to stream", daemon)
    return env, daemon


@contextlib.contextmanager
def _write_lock_held(home: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the database's write lock for `seconds` (or until killed)."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(home / "voxbatch.db"), str(seconds)],
        stdout=subprocess.PIPE, text=True,
    ) as holder:  # fmt: skip
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder


def test_a_write_lock_held_40_s_by_another_process_stops_no_stream(
    emulator: Emulator, tmp_path: Path, spawn
) -> None:
    home = tmp_path / "home"
    # Paced at real time: the 55 s file streams for about 55 s, across the whole lock.
    _, daemon = _streaming(emulator, home, spawn, "long.wav", 55.0, appends=10)
    with _write_lock_held(home, 40) as holder:
        assert holder.wait(60) == 0
    assert daemon.process.poll() is None, daemon.text()[-3000:]
    wait_until(lambda: originals(home / "done") == {"long.wav"}, 90, "the job to end", daemon)

    (session,) = emulator.records.sessions  # bought once
    assert session.outcome == "done"
    gaps = [b - a for a, b in zip(session.append_times, session.append_times[1:], strict=False)]
    assert max(gaps) < 0.5, f"the stream stalled for {max(gaps):.2f} s"
    calls = rows(home, "SELECT kind, outcome, cost_usd FROM api_call")
    assert len(calls) == 1 and calls[0][:2] == ("stt", "ok") and calls[0][2] is not None
    assert rows(home, "SELECT state FROM job") == [("done",)]
    assert "Traceback" not in daemon.text()
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    assert "database locked" in daemon.text()  # said once, with the reason


def _fill(path: Path) -> None:
    """Write until the filesystem is full."""
    with path.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 16))
                fh.flush()
        except OSError:
            pass


@pytest.fixture
def small_home(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs", str(mount)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs in CI: {done.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount / "home"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_pauses_the_daemon_and_nothing_is_bought_twice(
    emulator: Emulator, small_home: Path, spawn
) -> None:
    home = small_home
    env = daemon_env(emulator, home, VOXBATCH_DAEMON__PACE="2.0", VOXBATCH_DAEMON__CONCURRENCY="2")
    daemon = spawn(env)
    wait_until(lambda: daemon_ready(home), 30, "the daemon to start", daemon)
    inputs = {f"call{i}.wav" for i in range(6)}
    for i, name in enumerate(sorted(inputs)):
        (home / "inbox" / name).write_bytes(wav_bytes(8.0, tag=i))
    wait_until(lambda: _appends(emulator) >= 5, 60, "audio to stream", daemon)

    filler = home.parent / "filler"
    _fill(filler)
    # Streams in flight finish at the server while nothing can be written.
    wait_until(
        lambda: "disk full" in voxbatch(env, "status").stdout, 60, "status to say so", daemon
    )
    assert daemon.process.poll() is None, daemon.text()[-3000:]
    wait_until(lambda: "disk full" in daemon.text(), 30, "the daemon to log the fault", daemon)
    filler.unlink()

    def settled() -> bool:
        ended = sum(len(originals(home / f)) for f in ("done", "failed", "quarantine"))
        return ended == len(inputs)

    wait_until(settled, 120, "every file to end", daemon)
    assert daemon.process.poll() is None
    assert rows(home, "SELECT count(*) FROM api_call WHERE outcome = 'started'") == [(0,)]
    assert_invariants(home, inputs, emulator)  # no audio bought twice, nothing misplaced
    assert "Traceback" not in daemon.text(), daemon.text()[-3000:]
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0


def test_a_transcription_finished_during_a_store_fault_survives_kill_9(
    emulator: Emulator, tmp_path: Path, spawn
) -> None:
    home = tmp_path / "home"
    env, daemon = _streaming(emulator, home, spawn, "talk.wav", 4.0, appends=2)
    with _write_lock_held(home, 600) as holder:

        def finished() -> bool:
            return any("transcription.done" in s.events_sent for s in emulator.records.sessions)

        wait_until(finished, 60, "the server to finish the transcription", daemon)
        time.sleep(2.0)  # the daemon holds the result and waits for the store
        daemon.process.kill()  # kill -9 while the fault persists
        daemon.wait(10)
        holder.kill()  # the fault clears
    assert rows(home, "SELECT kind, outcome FROM api_call") == [("stt", "started")]

    again = spawn(env)
    wait_until(lambda: originals(home / "done") == {"talk.wav"}, 90, "the job to end", again)
    assert len(emulator.records.sessions) == 1  # bought once
    assert rows(home, "SELECT kind, outcome FROM api_call") == [("stt", "ok")]
    assert rows(home, "SELECT count(*) FROM transcript") == [(1,)]
    assert rows(home, "SELECT state FROM job") == [("done",)]
    assert not list((home / "journal").glob("*.json"))
    again.process.send_signal(signal.SIGTERM)
    assert again.wait(30) == 0
