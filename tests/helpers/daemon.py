"""Running `voxbatch run` for real (its own process, real signals) and checking invariants."""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
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
    """Query the database, tolerating one that another process is still creating or migrating
    (for polls: an unreadable database, or one without the column yet, reads as "not yet")."""
    path = home / "voxbatch.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path, timeout=10) as conn:
            return conn.execute(query, params).fetchall()
    except sqlite3.OperationalError as exc:
        if any(m in str(exc) for m in ("no such table", "no such column", "locked")):
            return []
        raise


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
    """The figures of a run; every one must be 0 (`assert_invariants`).

    - misplaced: an input in no end folder or in two; an unknown file in an end folder; a file
      left in work/ or the inbox; a filed original whose content is not its job's audio.
    - bought_twice: audio transcribed to the end more than once.
    - paid_unrecorded: sessions that received audio with no stt row: matched by request id,
      the rest only by the `abandoned` rows of killed workers (which never learnt the id).
    - unsettled_calls: rows still `started`.
    """
    places = {name: originals(home / name) for name in FOLDERS}
    misplaced = sum(1 for name in inputs if sum(name in files for files in places.values()) != 1)
    misplaced += len(set().union(*places.values()) - inputs)
    misplaced += len(originals(home / "work")) + len(originals(home / "inbox") & inputs)
    for final, sha in rows(
        home, "SELECT final_path, content_sha256 FROM job WHERE final_path IS NOT NULL"
    ):
        if Path(final).exists() and hashlib.sha256(Path(final).read_bytes()).hexdigest() != sha:
            misplaced += 1
    finished = Counter(
        s.sha256 for s in emu.records.sessions if "transcription.done" in s.events_sent
    )
    paid_ids = {s.request_id for s in emu.records.sessions if s.total_bytes > 0}
    recorded_ids = {r[0] for r in rows(home, "SELECT request_id FROM api_call WHERE kind = 'stt'")}
    without_id = rows(
        home,
        "SELECT COUNT(*) FROM api_call WHERE kind = 'stt' AND outcome = 'abandoned' "
        "AND request_id IS NULL",
    )[0][0]
    unsettled = rows(home, "SELECT COUNT(*) FROM api_call WHERE outcome = 'started'")[0][0]
    return {
        "misplaced": misplaced,
        "bought_twice": sum(n - 1 for n in finished.values()),
        "paid_unrecorded": max(0, len(paid_ids - recorded_ids) - without_id),
        "unsettled_calls": unsettled,
    }


def assert_invariants(home: Path, inputs: set[str], emu: Emulator) -> None:
    figures = check_invariants(home, inputs, emu)
    assert figures == dict.fromkeys(figures, 0), figures


def collect_notifications(sock: socket.socket) -> list[str]:
    """What the daemon sends to its sd_notify socket, appended as it arrives (in a thread)."""
    messages: list[str] = []

    def receive() -> None:
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except OSError:
                return

    threading.Thread(target=receive, daemon=True).start()
    return messages
