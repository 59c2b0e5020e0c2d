"""Peak memory of `voxbatch process` on a long file, against the emulator in another process.

Usage: python benchmarks/long_file_memory.py [--hours 2]

Generates a long mp3 (tone bursts, looped), starts `voxbatch emulator` as its own process,
runs `voxbatch process FILE --json` and reads the peak RSS of that process (and of the ffmpeg
it runs) from wait4(). Does the same for a one-minute file as the baseline in the same run, and
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
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.media import long_audio


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
            assert proc.stdout is not None
            out = proc.stdout.read()
            proc.stdout.close()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
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
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
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
