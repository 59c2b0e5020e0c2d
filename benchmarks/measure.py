"""Running a command as a real subprocess: its wall time and the peak memory of its tree.

Peak RSS is read from /proc, polled every 50 ms while the process runs:
- `peak_rss_mb`: the voxbatch process's own VmHWM, the kernel's exact high-water mark of its
  resident memory since exec (the kernel keeps the peak, so a poll misses only growth in the
  last 50 ms before the exit);
- `tree_rss_mb`: the largest sum of VmRSS over the process and all its descendants (its
  ffmpeg children) seen at one poll, a sampled figure.
wait4()'s ru_maxrss is not used: with vfork/exec it includes the memory image of the parent at
exec time, which would report the size of the process that started voxbatch (pytest's, say).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.05
_KB = re.compile(r"^(VmHWM|VmRSS):\s+(\d+) kB", re.MULTILINE)


@dataclass(frozen=True)
class Measured:
    returncode: int
    wall_s: float
    peak_rss_mb: float
    tree_rss_mb: float
    stdout: str


def _memory_kb(pid: int) -> dict[str, int]:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {name: int(kb) for name, kb in _KB.findall(status)}


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first), from /proc's children lists."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                text = Path(f"/proc/{parent}/task/{task}/children").read_text()
            except OSError:
                continue
            for child in map(int, text.split()):
                found.append(child)
                todo.append(child)
    return found


class RssWatcher:
    """Polls a process tree's memory in a thread until `stop()`; the peaks are in MB."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._hwm_kb = 0
        self._tree_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def start(self) -> RssWatcher:
        self._thread.start()
        return self

    def sample(self) -> None:
        own = _memory_kb(self.pid)
        self._hwm_kb = max(self._hwm_kb, own.get("VmHWM", 0))
        tree = own.get("VmRSS", 0) + sum(
            _memory_kb(child).get("VmRSS", 0) for child in descendants(self.pid)
        )
        self._tree_kb = max(self._tree_kb, tree)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(POLL_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_rss_mb(self) -> float:
        return round(self._hwm_kb / 1024, 1)

    @property
    def tree_rss_mb(self) -> float:
        return round(max(self._tree_kb, self._hwm_kb) / 1024, 1)


class Child:
    """A command started now, stderr to a log, stdout to a file (or to /dev/null unless
    `capture`); its memory watched."""

    def __init__(
        self, cmd: Sequence[str], env: dict[str, str], *, log: Path, capture: bool = True
    ) -> None:
        self.log = log
        self._out = log.with_suffix(".stdout") if capture else Path(os.devnull)
        with self._out.open("wb") as out, log.open("ab") as err:
            self.started = time.monotonic()
            self.process = subprocess.Popen(list(cmd), env=env, stdout=out, stderr=err)
        self.watcher = RssWatcher(self.process.pid).start()

    def wait(self, timeout: float) -> Measured:
        """Wait for the exit (blocking, so the wall time is exact); SIGKILL after `timeout`."""
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            self._signal_tree()

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            # WNOWAIT: the exit is seen but the child is not reaped yet, so its pid cannot be
            # reused under the watcher's last poll.
            os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOWAIT)
        finally:
            timer.cancel()
        wall = time.monotonic() - self.started
        self.watcher.stop()
        self.process.wait()
        if timed_out.is_set():
            raise TimeoutError(f"{self.process.args!r} ran over {timeout:g} s; log: {self.log}")
        return Measured(
            returncode=self.process.returncode,
            wall_s=wall,
            peak_rss_mb=self.watcher.peak_rss_mb,
            tree_rss_mb=self.watcher.tree_rss_mb,
            stdout="" if self._out == Path(os.devnull) else self._out.read_text(errors="replace"),
        )

    def _signal_tree(self) -> None:
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the process and everything it started, as a cgroup kill (systemd, OOM) would."""
        self._signal_tree()
        self.watcher.stop()
        self.process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def run(
    cmd: Sequence[str], env: dict[str, str], *, log: Path, timeout: float, capture: bool = True
) -> Measured:
    return Child(cmd, env, log=log, capture=capture).wait(timeout)
