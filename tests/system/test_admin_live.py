"""`voxbatch prune` and `voxbatch backup` beside a daemon that is streaming a file."""

from __future__ import annotations

import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers.daemon import (
    daemon_env,
    daemon_ready,
    originals,
    rows,
    run_once,
    voxbatch,
    wait_until,
)
from tests.helpers.media import wav_bytes

pytestmark = pytest.mark.media  # they run ffmpeg


def test_prune_and_backup_while_the_daemon_streams(make_emulator, tmp_path: Path, spawn) -> None:
    home = tmp_path / "home"
    emu = make_emulator()
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "old.wav").write_bytes(wav_bytes(1.0, tag=1))
    env = daemon_env(emu, home)
    assert run_once(env).returncode == 0
    old = (datetime.now(UTC) - timedelta(days=40)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(home / "voxbatch.db") as conn:
        conn.execute("UPDATE job SET finished_at = ?", (old,))
    emu.reconfigure(speed=1.0)  # real time: the next stream lasts seconds
    daemon = spawn(env)
    wait_until(lambda: daemon_ready(home), 30, "the daemon to start", daemon)
    (inbox / "long.wav").write_bytes(wav_bytes(6.0, tag=2))
    wait_until(
        lambda: any(s.total_bytes > 0 and s.outcome == "open" for s in emu.records.sessions),
        60, "a stream under way", daemon,
    )  # fmt: skip
    pruned = voxbatch(env, "prune", "--older-than", "30")
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 1 job(s)" in pruned.stderr
    copy = tmp_path / "backup.db"
    backed = voxbatch(env, "backup", str(copy))
    assert backed.returncode == 0, backed.stderr
    wait_until(lambda: originals(home / "done") == {"long.wav"}, 60, "the stream done", daemon)
    assert rows(home, "SELECT source_name, state FROM job") == [("long.wav", "done")]
    assert len(emu.records.sessions) == 2  # each file bought once
    assert rows(home, "SELECT COUNT(*) FROM api_call")[0][0] == 2  # the old call stays
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT source_name FROM job").fetchall() == [("long.wav",)]
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
