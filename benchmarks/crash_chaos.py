"""kill -9 `voxbatch run` at random moments until every file is through; then check invariants.

    python benchmarks/crash_chaos.py [--files 30] [--kills 12] [--seed 1]

The emulator runs in this process at 4x real time, so kills land after claims, mid-conversion,
mid-stream and mid-move. After the last kill a clean `voxbatch run --once` finishes the queue
(with review_above_usd high enough that nothing waits for an operator). Prints the figures:
kills, invariant violations (goal 0), duplicate paid transcriptions (goal 0), and the time
from each restart until the daemon has recovered and works again.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers.daemon import check_invariants, daemon_env, originals
from tests.helpers.media import wav_bytes
from voxbatch.emulator import EmulatorConfig, running_emulator


def is_working(home: Path, pid: int) -> bool:
    """Has this daemon finished its recovery and started work (it beats as `running`)?"""
    try:
        with sqlite3.connect(home / "voxbatch.db", timeout=10) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM worker WHERE state = 'running' AND owner LIKE ?",
                (f"%:{pid}:%",),
            ).fetchone()
            return bool(row[0])
    except sqlite3.OperationalError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--max-delay", type=float, default=4.0,
        help="latest kill after a start, in seconds (raise it on a loaded machine, where a "
        "daemon takes longer than 4 s to be up and every kill would land before it works)",
    )  # fmt: skip
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp, running_emulator(EmulatorConfig(speed=4)) as emu:
        home = Path(tmp) / "home"
        inbox = home / "inbox"
        inbox.mkdir(parents=True)
        names = set()
        for i in range(args.files):
            name = f"chaos-{i:03d}.wav"
            (inbox / name).write_bytes(wav_bytes(rng.uniform(2, 12), tag=i))
            names.add(name)
        # A few copies of the same audio: they must never be bought twice.
        for i in range(3):
            copy = f"copy-{i}.wav"
            (inbox / copy).write_bytes((inbox / f"chaos-{i:03d}.wav").read_bytes())
            names.add(copy)
        env = daemon_env(
            emu, home, VOXBATCH_DAEMON__REVIEW_ABOVE_USD="100", VOXBATCH_LOG_LEVEL="WARNING"
        )
        recoveries: list[float] = []
        kills = 0
        for _ in range(args.kills):
            started = time.monotonic()
            daemon = subprocess.Popen(
                [sys.executable, "-m", "voxbatch", "run"], env=env, stderr=subprocess.DEVNULL
            )
            deadline = started + rng.uniform(0.5, args.max_delay)
            ready_after = None
            while time.monotonic() < deadline:
                if ready_after is None and is_working(home, daemon.pid):
                    ready_after = time.monotonic() - started
                time.sleep(0.05)
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.wait()
            kills += 1
            if ready_after is not None:
                recoveries.append(ready_after)
        final = subprocess.run(
            [sys.executable, "-m", "voxbatch", "run", "--once"],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        figures = check_invariants(home, names, emu)
        interrupted = sum(
            1
            for s in emu.records.sessions
            if s.total_bytes > 0 and "transcription.done" not in s.events_sent
        )
        print(f"files: {len(names)} ({args.files} distinct audio + 3 copies)")
        print(f"kill -9 injected: {kills}; final run exit code {final.returncode}")
        print(f"in done/: {len(originals(home / 'done'))}, failed/: "
              f"{len(originals(home / 'failed'))}, quarantine/: "
              f"{len(originals(home / 'quarantine'))}")  # fmt: skip
        print(f"invariant violations: {figures}")
        print(f"duplicate paid transcriptions: {figures['bought_twice']}")
        print(f"attempts cut short by a kill (paid, recorded as abandoned): {interrupted}")
        if recoveries:
            recoveries.sort()
            print(
                f"restart to recovered and working (process start included): median "
                f"{recoveries[len(recoveries) // 2]:.2f} s, max {recoveries[-1]:.2f} s "
                f"over {len(recoveries)} restarts"
            )
        bad = any(figures.values()) or final.returncode != 0
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
