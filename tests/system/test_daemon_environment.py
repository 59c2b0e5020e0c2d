"""A running daemon whose surroundings change under it: an inbox removed and made again, the
database deleted."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.helpers.daemon import daemon_env, daemon_ready, originals, rows, wait_until
from tests.helpers.media import wav_bytes
from voxbatch.emulator import Emulator

pytestmark = pytest.mark.media  # they run ffmpeg


def test_an_inbox_removed_and_made_again_is_watched_again_at_once(
    emulator: Emulator, tmp_path: Path, spawn
) -> None:
    home = tmp_path / "home"
    # No rescan for ten minutes: only the watcher's events can find a file.
    env = daemon_env(emulator, home, VOXBATCH_DAEMON__RESCAN_SECONDS="600")
    daemon = spawn(env)
    wait_until(lambda: daemon_ready(home), 30, "the daemon to start", daemon)
    inbox = home / "inbox"
    (inbox / "before.wav").write_bytes(wav_bytes(1, tag=1))
    wait_until(lambda: originals(home / "done") == {"before.wav"}, 20, "the first file", daemon)
    shutil.rmtree(inbox)
    time.sleep(1.0)
    inbox.mkdir()
    time.sleep(1.0)
    (inbox / "after.wav").write_bytes(wav_bytes(1, tag=2))
    wait_until(
        lambda: originals(home / "done") == {"before.wav", "after.wav"},
        10,
        "the file dropped into the new inbox",
        daemon,
    )
    assert "watching it again" in daemon.text()
    assert daemon.process.poll() is None


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_deleted_or_replaced_under_the_daemon_stops_it_with_one_line(
    emulator: Emulator, tmp_path: Path, spawn, how: str
) -> None:
    home = tmp_path / "home"
    env = daemon_env(emulator, home)
    daemon = spawn(env)
    wait_until(lambda: daemon_ready(home), 30, "the daemon to start", daemon)
    inbox = home / "inbox"
    (inbox / "kept.wav").write_bytes(wav_bytes(1, tag=1))
    wait_until(lambda: originals(home / "done") == {"kept.wav"}, 20, "the first file", daemon)
    db = home / "voxbatch.db"
    saved = tmp_path / "backup.db"
    shutil.copy(db, saved)
    for name in ("voxbatch.db", "voxbatch.db-wal", "voxbatch.db-shm"):
        (home / name).unlink(missing_ok=True)
    if how == "replaced":
        shutil.copy(saved, db)
    started = time.monotonic()
    code = daemon.wait(15)
    assert time.monotonic() - started < 10
    log = daemon.text()
    assert code == 3, log[-3000:]
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1, errors
    assert f"the database {db} was {how}" in errors[0]
    assert originals(home / "done") == {"kept.wav"}  # nothing moved or removed


def test_a_job_streaming_when_the_database_goes_keeps_its_original_in_work(
    make_emulator, tmp_path: Path, spawn
) -> None:
    home = tmp_path / "home"
    emu = make_emulator(speed=1)  # 8 s of audio take 8 s: the job is mid-stream
    daemon = spawn(daemon_env(emu, home))
    wait_until(lambda: daemon_ready(home), 30, "the daemon to start", daemon)
    (home / "inbox" / "long.wav").write_bytes(wav_bytes(8, tag=3))
    wait_until(
        lambda: rows(home, "SELECT 1 FROM job WHERE state = 'streaming'"), 20, "a stream", daemon
    )
    for name in ("voxbatch.db", "voxbatch.db-wal", "voxbatch.db-shm"):
        (home / name).unlink(missing_ok=True)
    code = daemon.wait(10)
    log = daemon.text()
    assert code == 3, log[-3000:]
    assert "Traceback" not in log
    assert originals(home / "work") == {"1.wav"}  # where the lost database said it was
    assert originals(home / "done") | originals(home / "failed") == set()
    assert not (home / "voxbatch.db").exists()  # no empty database made in its place
