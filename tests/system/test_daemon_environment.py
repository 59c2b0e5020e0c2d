"""A running daemon whose surroundings change under it: an inbox removed and made again, the
database deleted."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.helpers.daemon import daemon_env, daemon_ready, originals, wait_until
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
