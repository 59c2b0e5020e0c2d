"""Running `voxbatch run` for real (its own process, real signals) and checking invariants."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voxbatch.emulator import Emulator

KEY = "test-key-0123456789"
FOLDERS = ("done", "failed", "quarantine")


def daemon_env(emu: Emulator, home: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "VOXBATCH_HOME": str(home),
        "MISTRAL_BASE_URL": emu.base_url,
        "MISTRAL_API_KEY": KEY,
        "VOXBATCH_DAEMON__STABLE_SECONDS": "0.4",
        "VOXBATCH_DAEMON__RETRY_INITIAL_S": "0.05",
        "VOXBATCH_DAEMON__RESCAN_SECONDS": "600",
        "VOXBATCH_DAEMON__LEASE_SECONDS": "6",
        **extra,
    }


class Daemon:
    """`voxbatch run ARGS` in a subprocess; its log is kept in a file for failure messages."""

    def __init__(self, env: dict[str, str], *args: str, log: Path) -> None:
        self.log = log
        self._log_file = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voxbatch", "run", *args],
            env=env, stdout=subprocess.DEVNULL, stderr=self._log_file,
        )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log_file.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log_file.close()


def run_once(env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxbatch", "run", "--once"],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def voxbatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxbatch", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def rows(home: Path, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Query the database, tolerating one that another process is still creating."""
    path = home / "voxbatch.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path, timeout=10) as conn:
            return conn.execute(query, params).fetchall()
    except sqlite3.OperationalError:
        return []


def wait_until(
    check: Callable[[], Any], timeout: float, what: str, log: Daemon | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    detail = f"\n--- daemon log ---\n{log.text()[-4000:]}" if log else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{detail}")


def daemon_ready(home: Path) -> bool:
    return bool(rows(home, "SELECT 1 FROM worker WHERE state = 'running'"))


def originals(folder: Path) -> set[str]:
    """Files under a folder, relative, without voxbatch's own notes."""
    if not folder.exists():
        return set()
    found = set()
    for dirpath, _dirs, files in os.walk(os.fsencode(folder)):
        for name in files:
            if not name.endswith(b".error.txt"):
                rel = os.path.relpath(os.path.join(dirpath, name), os.fsencode(folder))
                found.add(os.fsdecode(rel))
    return found


def check_invariants(home: Path, inputs: set[str], emu: Emulator) -> dict[str, int]:
    """Every input in exactly one end folder; one transcript per hash; no paid call unrecorded.

    Returns the figures (violations must be 0; the caller asserts).
    """
    places = {name: originals(home / name) for name in FOLDERS}
    violations = 0
    for name in inputs:
        holders = [f for f, files in places.items() if name in files]
        if len(holders) != 1:
            violations += 1
    extra = set().union(*places.values()) - inputs
    violations += len(extra)
    leftover = originals(home / "work") | originals(home / "inbox")
    violations += len(leftover & inputs)
    duplicates = rows(
        home, "SELECT content_sha256 FROM transcript GROUP BY content_sha256 HAVING COUNT(*) > 1"
    )
    recorded = rows(home, "SELECT COUNT(*) FROM api_call WHERE kind = 'stt'")[0][0]
    unsettled = rows(home, "SELECT COUNT(*) FROM api_call WHERE outcome = 'started'")[0][0]
    paid = sum(1 for s in emu.records.sessions if s.total_bytes > 0)
    return {
        "misplaced": violations,
        "duplicate_transcripts": len(duplicates),
        "paid_unrecorded": max(0, paid - recorded),
        "unsettled_calls": unsettled,
    }
