"""An upload whose producer pauses for longer than the whole job: its half is claimed,
transcribed and filed in done/, then the producer writes on. The daemon notices the original in
done/ grew and processes the whole file again (issue 9, item 20)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.daemon import daemon_env, daemon_ready, rows, voxbatch, wait_until
from tests.helpers.media import tone_bursts
from voxbatch.emulator import Emulator

pytestmark = pytest.mark.media  # they run ffmpeg


def test_an_original_that_grows_in_done_is_processed_again_whole(
    emulator: Emulator, tmp_path: Path, spawn
) -> None:
    whole = tmp_path / "talk.mp3"
    # No Xing header: nothing declares the length, so the half file looks like a whole one.
    tone_bursts(whole, 10, extra_args=("-b:a", "32k", "-write_xing", "0"))
    data = whole.read_bytes()
    home = tmp_path / "home"
    env = daemon_env(emulator, home)
    daemon = spawn(env)
    wait_until(lambda: daemon_ready(home), 30, "the daemon to start", daemon)
    done = home / "done" / "talk.mp3"
    with (home / "inbox" / "talk.mp3").open("wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        wait_until(done.exists, 30, "the half file to be filed in done/", daemon)
        assert rows(home, "SELECT state FROM job") == [("done",)]
        handle.write(data[len(data) // 2 :])  # into the same open file, now in done/

    def whole_again() -> bool:
        return (
            len(emulator.records.sessions) == 2
            and rows(home, "SELECT state FROM job") == [("done",)]
            and done.exists()
            and done.read_bytes() == data
        )

    wait_until(whole_again, 30, "the grown file to be processed again", daemon)
    first, second = emulator.records.sessions
    assert second.total_bytes > 1.6 * first.total_bytes  # the whole file, not the half again
    why = voxbatch(env, "why", "talk.mp3").stdout
    assert "grew after it was filed (size" in why, why
