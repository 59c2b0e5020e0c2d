"""Ctrl-C in the middle of `voxbatch process`: exit 130, no traceback, nothing left open."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.media import tone_bursts
from voxbatch.emulator import EmulatorConfig, running_emulator


def _wait_for_streaming(db: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    rows = conn.execute("select 1 from event where kind = 'stream_started'")
                    if rows.fetchone():
                        return
                except sqlite3.OperationalError:
                    pass  # not migrated yet
        time.sleep(0.1)
    raise AssertionError("the stream never started")


@pytest.mark.media
@pytest.mark.timeout(120)
def test_ctrl_c_mid_stream_exits_130_and_settles_the_attempt(
    tmp_path: Path, isolated_env: Path
) -> None:
    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 30.0)
    # Real time: the stream takes 30 s, so the interrupt lands mid-stream.
    with running_emulator(EmulatorConfig(speed=1.0)) as emu:
        env = {**os.environ, "MISTRAL_BASE_URL": emu.base_url, "MISTRAL_API_KEY": "k-0123456789"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "voxbatch", "process", str(clip), "--out", str(tmp_path)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            _wait_for_streaming(isolated_env / "voxbatch.db", timeout=60)
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "CancelledError" not in stderr, stderr
    assert "interrupted" in stderr
    with sqlite3.connect(isolated_env / "voxbatch.db") as conn:
        calls = conn.execute("select outcome, error_detail from api_call").fetchall()
        jobs = conn.execute("select state, error_class, error_message from job").fetchall()
        events = [d for (d,) in conn.execute("select detail from event")]
    assert calls == [("cancelled", "interrupted (Ctrl-C)")], calls
    [(state, error_class, message)] = jobs
    assert state == "failed" and error_class == "KeyboardInterrupt", jobs
    assert "Ctrl-C" in message
    assert not any("CancelledError" in (d or "") for d in events), events
