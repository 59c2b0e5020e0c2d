"""A long file whose daemon is killed with SIGKILL at 90 % and started again: does the file
finish without a person, and how much audio was paid for in all?

`voxbatch run` (8 parts, concurrency 8, the emulator at 30 x real time) is killed, with the
ffmpegs it started, once the emulator has received 90 % of the file's audio (the emulator's
own count, summed over its sessions: the server's view, whatever voxbatch records). A new
`voxbatch run` then goes on until the job reaches an end state (done, failed, needs_review)
and is stopped with SIGTERM. Audio paid: the emulator's received seconds (what a server bills)
and the seconds in voxbatch's ledger (`voxbatch costs`), each against the file's length.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import time
from contextlib import closing
from typing import Any

from benchmarks import media
from benchmarks.context import SERVER_SPEED, Context, duration_label
from benchmarks.emulator import EmulatorProcess, audio_billed_s, audio_received_s
from benchmarks.home import Home
from benchmarks.measure import Child
from benchmarks.report import Row

NAME = "sigkill"
KILL_AT = 0.9
SESSIONS = 8
END_STATES = ("done", "failed", "needs_review")


def run(ctx: Context) -> list[Row]:
    seconds = ctx.sizes.long_s
    source = media.speech(ctx.ffmpeg, ctx.cache, seconds)
    ctx.say(f"[{NAME}] {source.name}: kill -9 at {KILL_AT:.0%}, then restart")
    root = ctx.folder("sigkill")
    budget = 600 + 3 * seconds / SERVER_SPEED
    with EmulatorProcess(root / "emulator.log", speed=SERVER_SPEED) as emu:
        home = Home(
            root / "home", emu.url,
            daemon={"concurrency": SESSIONS},
            parts=ctx.parts_settings(seconds),
            inbox={"parts": True},
        )  # fmt: skip
        shutil.copy2(source, home.inbox / source.name)
        first = home.start("run", log="daemon-killed")
        killed_at = _kill_at(emu, first, KILL_AT * seconds, timeout=budget)
        second = home.start("run", log="daemon-restarted")
        state, finish_s = _wait_for_end(home, second, timeout=budget)
        second.process.send_signal(signal.SIGTERM)
        restarted = second.wait(timeout=300)
        sessions = emu.sessions()
    received = audio_received_s(sessions)
    billed = audio_billed_s(sessions)
    ledger = home.stt_audio_paid_s()
    extra = {
        "state": state,
        "killed_at_s": killed_at,
        "restart_to_end_s": finish_s,
        "sessions": len(sessions),
        "emulator_received_s": received,
        "emulator_billed_s": billed,
        "ledger_s": ledger,
        "restart_exit": restarted.returncode,
    }
    label = f"{duration_label(seconds)} file, SIGKILL at {KILL_AT:.0%} and restart: audio paid"
    emulator_paid = billed if billed is not None else received
    rows = [
        Row(
            NAME, f"{label} (emulator)", emulator_paid, "s",
            baseline=seconds, baseline_name="the file's length", target="<= 1.15",
            peak_rss_mb=restarted.peak_rss_mb, tree_rss_mb=restarted.tree_rss_mb, extra=extra,
        ),
        Row(
            NAME, f"{label} (voxbatch's ledger)", ledger, "s",
            baseline=seconds, baseline_name="the file's length", target="<= 1.15",
            peak_rss_mb=restarted.peak_rss_mb, tree_rss_mb=restarted.tree_rss_mb,
        ),
    ]  # fmt: skip
    for row in rows:
        row.fail_unless(state == "done", f"the file ended {state}")
    return rows


def _kill_at(emu: EmulatorProcess, daemon: Child, audio_s: float, *, timeout: float) -> float:
    """SIGKILL the daemon's tree once the emulator has `audio_s` seconds; returns that figure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            raise RuntimeError(f"the daemon exited before the kill: {daemon.log_tail()}")
        received = audio_received_s(emu.sessions())
        if received >= audio_s:
            daemon.kill()
            return received
        time.sleep(0.2)
    daemon.kill()
    raise TimeoutError(f"the emulator never got {audio_s:g} s of audio: {daemon.log_tail()}")


def _wait_for_end(home: Home, daemon: Child, *, timeout: float) -> tuple[str, float]:
    """The job's end state, and how long after the restart it got there."""
    deadline = time.monotonic() + timeout
    state: Any = None
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            raise RuntimeError(f"the restarted daemon exited: {daemon.log_tail()}")
        state = _job_state(home)
        if state in END_STATES:
            return state, time.monotonic() - daemon.started
        time.sleep(0.5)
    return f"still {state} after {timeout:g} s", time.monotonic() - daemon.started


def _job_state(home: Home) -> str | None:
    try:
        with closing(
            sqlite3.connect(f"file:{home.root / 'voxbatch.db'}?mode=ro", uri=True)
        ) as conn:
            row = conn.execute("SELECT state FROM job ORDER BY id LIMIT 1").fetchone()
    except sqlite3.OperationalError:  # being created, migrated or written: ask again
        return None
    return None if row is None else str(row[0])
