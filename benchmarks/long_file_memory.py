"""Peak memory of `voxbatch process` on a long file, against the emulator in another process.

Usage: python benchmarks/long_file_memory.py [--hours 2]

Generates a long mp3 (tone bursts, looped), starts `voxbatch emulator` as its own process,
runs `voxbatch process FILE --json` and polls the peak RSS (VmHWM) of that process and of the
ffmpeg it runs. Does the same for a one-minute file as the baseline in the same run, and
prints one JSON line: both runs and the ratio of their peaks (1.0 = memory independent of length).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers.media import long_audio


def start_emulator(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxbatch", "emulator", "--port", "0"],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"(http://\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, match.group(1)


def _hwm_kb(pid: int) -> int:
    """VmHWM: the peak resident set of this process's own memory since its exec."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def watch_peak_rss(proc: subprocess.Popen[bytes]) -> dict[str, int]:
    """Poll VmHWM of the process and of its children (ffmpeg) until it exits.

    wait4()'s ru_maxrss is not used: it includes the parent's memory image at fork time,
    which would report pytest's size instead of voxbatch's when run from the test suite.
    """
    peaks = {"voxbatch": 0, "ffmpeg": 0}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            peaks["voxbatch"] = max(peaks["voxbatch"], _hwm_kb(proc.pid))
            for child in _children(proc.pid):
                peaks["ffmpeg"] = max(peaks["ffmpeg"], _hwm_kb(child))
            stop.wait(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    # The peak is read before the process is reaped: wait for exit without reaping (WNOWAIT).
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    stop.set()
    watcher.join()
    peaks["voxbatch"] = max(peaks["voxbatch"], _hwm_kb(proc.pid))
    proc.wait()
    return peaks


def measure(hours: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="voxbatch-bench-") as tmp:
        tmpdir = Path(tmp)
        t0 = time.monotonic()
        audio = long_audio(tmpdir / "long.mp3", hours=hours)
        generated = time.monotonic() - t0
        env = {**os.environ, "VOXBATCH_HOME": str(tmpdir / "home"), "NO_PROXY": "127.0.0.1"}
        emulator, url = start_emulator(env)
        try:
            env |= {"MISTRAL_BASE_URL": url, "MISTRAL_API_KEY": "bench"}
            t0 = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "voxbatch", "process", str(audio), "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            )  # fmt: skip
            peaks = watch_peak_rss(proc)
            assert proc.stdout is not None
            out = proc.stdout.read()
            proc.stdout.close()
            elapsed = time.monotonic() - t0
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)
            if emulator.stderr is not None:
                emulator.stderr.close()
        [row] = json.loads(out)
        return {
            "hours": hours,
            "state": row["state"],
            "audio_seconds": row["audio_seconds"],
            "exit_code": proc.returncode,
            "peak_rss_mb": round(peaks["voxbatch"] / 1024, 1),
            "ffmpeg_peak_rss_mb": round(peaks["ffmpeg"] / 1024, 1),
            "wall_seconds": round(elapsed, 1),
            "generate_seconds": round(generated, 1),
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--baseline-hours", type=float, default=1 / 60)
    args = parser.parse_args()
    baseline = measure(args.baseline_hours)
    long = measure(args.hours)
    ratio = round(float(long["peak_rss_mb"]) / float(baseline["peak_rss_mb"]), 2)  # type: ignore[arg-type]
    print(json.dumps({"baseline": baseline, "long": long, "peak_rss_ratio": ratio}))
