"""`kill -9` while a long file streams in parts: the next start finishes it by itself, buying
again only what the unfinished parts had not heard (SPEC "Parts", "Resume inside a part")."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers.daemon import Daemon, daemon_env, rows, run_once, wait_until
from tests.helpers.media import tone_bursts
from voxbatch.emulator import EmulatorConfig, running_emulator

SECONDS = 600.0
PCM_BYTES_PER_SECOND = 32_000


def heard(home: Path) -> int:
    """Segments recorded so far (none before the database and its tables exist)."""
    found = rows(home, "SELECT count(*) FROM part_segment")
    return int(found[0][0]) if found else 0


@pytest.mark.media
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_long_file_killed_mid_parts_finishes_by_itself_paying_little_again(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    clip = tmp_path / "meeting.wav"
    voiced = tone_bursts(clip, SECONDS, off_s=0.6)  # a segment closes at every pause
    # 5 x real time: what a session heard reaches the database within a second, 5 s of audio.
    with running_emulator(EmulatorConfig(speed=5)) as emu:
        env = daemon_env(
            emu,
            home,
            VOXBATCH_DAEMON__CONCURRENCY="4",
            VOXBATCH_PARTS__MIN_SECONDS="60",
            VOXBATCH_PARTS__MAX_SECONDS="200",
            VOXBATCH_PARTS__AHEAD_SECONDS="10",
        )
        daemon = Daemon(env, log=tmp_path / "daemon.log")
        try:
            clip.rename(home / "inbox" / clip.name)
            # 4 parts of 150 s, all streaming: killed once most of the file has been heard.
            wait_until(
                lambda: (
                    rows(home, "SELECT count(*) FROM part_segment")[0][0] >= 0.8 * len(voiced)
                    if (home / "voxbatch.db").exists()
                    else False
                ),
                timeout=120,
                what="most of the file heard",
            )
            daemon.process.kill()
            daemon.wait(10)
        finally:
            daemon.stop()
        heard_before = heard(home)
        time.sleep(0.5)
        again = run_once(env, timeout=180)
        sessions = list(emu.records.sessions)
    assert again.returncode == 0, again.stderr + (tmp_path / "daemon.log").read_text()
    [(state, text)] = rows(
        home, "SELECT j.state, t.text FROM job j JOIN transcript t ON t.job_id = j.id"
    )
    assert state == "done"
    assert len(text.split()) == len(voiced)  # every burst heard once: nothing lost or doubled
    parts = rows(home, "SELECT idx, sessions, state FROM part ORDER BY idx")
    assert len(parts) == 4 and all(p[2] == "done" for p in parts)
    paid = sum(s.total_bytes for s in sessions) / PCM_BYTES_PER_SECOND
    # Without resuming inside parts it would be about 1.8 x; the SPEC asks for 1.0-1.1 x.
    # Bought again: what each unfinished part had sent past its last segment recorded (its
    # window of 10 s, a message of 8 s, a second of digesting): about 0.1 x here. Without
    # resuming inside parts it would be about 1.8 x; the SPEC asks for 1.0-1.1 x at 90 %.
    assert SECONDS <= paid <= 1.2 * SECONDS, (paid, heard_before)
    # The ledger charged the killed sessions as estimates of their parts, not the whole file.
    [(charged,)] = rows(home, "SELECT sum(audio_seconds) FROM api_call WHERE kind = 'stt'")
    assert charged <= 2.1 * SECONDS
