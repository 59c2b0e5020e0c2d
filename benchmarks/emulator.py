"""`voxbatch emulator` in its own process (so its CPU is not voxbatch's), and what it recorded."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

RECORDS_PATH = "/_emulator/records"
PCM_BYTES_PER_SECOND = 32_000
_LISTENING = re.compile(r"listening on (http://\S+)")


class EmulatorProcess:
    """`with EmulatorProcess(log, speed=30) as emu:` — emu.url is its base URL."""

    def __init__(self, log: Path, *, speed: float = 0.0) -> None:
        self.log = log
        self.speed = speed
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmulatorProcess:
        cmd = [sys.executable, "-m", "voxbatch", "emulator", "--port", "0"]
        cmd += ["--speed", f"{self.speed:g}", "--idle-timeout", "120"]
        with self.log.open("ab") as err:
            self._process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if match := _LISTENING.search(self.log.read_text(errors="replace")):
                self.url = match.group(1)
                return self
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        self._stop()
        raise RuntimeError(f"the emulator did not start: {self.log.read_text(errors='replace')}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def sessions(self) -> list[dict[str, Any]]:
        """Every realtime session the emulator accepted, as its records endpoint serves them."""
        with urllib.request.urlopen(self.url + RECORDS_PATH, timeout=30) as answer:
            records: dict[str, Any] = json.load(answer)
        return list(records["sessions"])


def audio_received_s(sessions: list[dict[str, Any]]) -> float:
    """Seconds of PCM the emulator took in over all sessions: what a server bills for."""
    return sum(s["total_bytes"] for s in sessions) / PCM_BYTES_PER_SECOND


def audio_billed_s(sessions: list[dict[str, Any]]) -> float | None:
    """The emulator's own billed seconds, when its records keep them (newer emulators do)."""
    billed = [s.get("billed_seconds") for s in sessions]
    if not billed or any(b is None for b in billed):
        return None
    return float(sum(float(b) for b in billed if b is not None))
