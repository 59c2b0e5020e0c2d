"""An upload that pauses longer than `stable_seconds` is claimed half-written: the daemon notices
that the claimed file changed and processes the complete file again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import cli_for
from tests.helpers.daemon import rows
from tests.helpers.media import run_ffmpeg, tone_bursts
from voxbatch.emulator import Emulator

pytestmark = pytest.mark.media  # they run ffmpeg


def _pcm_bytes(path: Path, tmp_path: Path) -> int:
    out = tmp_path / "decoded.raw"
    run_ffmpeg("-i", f"file:{path}", "-f", "s16le", "-ac", "1", "-ar", "16000", f"file:{out}")
    return out.stat().st_size


def test_an_upload_that_grows_after_its_claim_is_processed_whole(
    make_emulator: Callable[..., Emulator], isolated_env: Path, tmp_path: Path
) -> None:
    # The server digests audio at twice real time: the half file's 5 s are read and sent at
    # once, and its transcript comes ~2.5 s later; the rest of the upload arrives meanwhile.
    emulator = make_emulator(speed=2.0)
    whole = tmp_path / "talk.mp3"
    # No Xing header: nothing declares the length, so the half file looks like a whole one.
    tone_bursts(whole, 10, extra_args=("-b:a", "32k", "-write_xing", "0"))
    data = whole.read_bytes()
    inbox = isolated_env / "inbox"
    inbox.mkdir(parents=True)
    target = inbox / "talk.mp3"
    handle = target.open("wb")
    handle.write(data[: len(data) // 2])
    handle.flush()

    def finish_later() -> None:
        # A pause well past stable_seconds: the half file is claimed (moved into work/) first.
        deadline = time.monotonic() + 60
        while not rows(isolated_env, "SELECT 1 FROM job WHERE work_path IS NOT NULL"):
            assert time.monotonic() < deadline, "the half file was never claimed"
            time.sleep(0.05)
        time.sleep(0.5)
        handle.write(data[len(data) // 2 :])  # into the same open file, wherever it is now
        handle.close()

    writer = threading.Thread(target=finish_later)
    writer.start()
    try:
        cli = cli_for(emulator, VOXBATCH_DAEMON__STABLE_SECONDS="0.4")
        cli("run", "--once", ok=None)
    finally:
        writer.join()
    assert rows(isolated_env, "SELECT state FROM job") == [("done",)]
    done = isolated_env / "done" / "talk.mp3"
    assert done.read_bytes() == data
    # The transcript bought last covers the whole file: the emulator heard all of it.
    assert emulator.records.sessions[-1].total_bytes == pytest.approx(
        _pcm_bytes(whole, tmp_path), abs=32_000 * 0.1
    )
    why = cli("why", "talk.mp3").stdout
    print(why)
    assert "changed after it was claimed (size" in why
