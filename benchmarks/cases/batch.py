"""A batch against a server-bound emulator (30 x real time) with concurrency 1, 4 and 8:
does throughput grow with the sessions allowed?

Throughput is the batch's audio over its span in the database (first conversion to last file
done), so the daemon's start-up and first scan, the same for every N, do not blur the ratio;
the process's wall time is in the JSON as well.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from benchmarks import media
from benchmarks.context import SERVER_SPEED, Context, duration_label
from benchmarks.emulator import EmulatorProcess
from benchmarks.home import Home
from benchmarks.report import Row

NAME = "batch"
CONCURRENCIES = (1, 4, 8)


def run(ctx: Context) -> list[Row]:
    count, seconds = ctx.sizes.batch_files, ctx.sizes.batch_file_s
    files = [media.speech(ctx.ffmpeg, ctx.cache, seconds, voice=v) for v in range(count)]
    label = f"{count} {duration_label(seconds)} files at {SERVER_SPEED:g} x real time"
    runs = {n: _batch(ctx, files, n, label) for n in CONCURRENCIES}
    single = runs[1]["throughput"]
    rows = []
    for n, got in runs.items():
        if n == 1:  # one session cannot beat the server: its speed is the ceiling (reported)
            baseline, baseline_name, target = SERVER_SPEED, "the server's speed", ""
        else:
            baseline, baseline_name, target = n * single, f"{n} x concurrency 1", ">= 0.8"
        row = Row(
            NAME, f"{label}, concurrency {n}", got.pop("throughput"), "x real time",
            baseline=baseline, baseline_name=baseline_name, target=target,
            peak_rss_mb=got.pop("peak_rss_mb"), tree_rss_mb=got.pop("tree_rss_mb"), extra=got,
        )  # fmt: skip
        row.fail_unless(got["done"] == count, f"{got['done']} of {count} done")
        rows.append(row)
    return rows


def _batch(ctx: Context, files: list[Path], n: int, label: str) -> dict[str, Any]:
    ctx.say(f"[{NAME}] {label}, concurrency {n}")
    root = ctx.folder(f"batch-c{n}")
    with EmulatorProcess(root / "emulator.log", speed=SERVER_SPEED) as emu:
        home = Home(root / "home", emu.url, daemon={"concurrency": n})
        for path in files:
            shutil.copy2(path, home.inbox / path.name)
        audio_s = len(files) * ctx.sizes.batch_file_s
        done = home.run("run", "--once", timeout=600 + 2 * audio_s / SERVER_SPEED)
    span = home.job_span_s()
    return {
        "throughput": audio_s / span,
        "peak_rss_mb": done.peak_rss_mb,
        "tree_rss_mb": done.tree_rss_mb,
        "span_s": span,
        "wall_s": done.wall_s,
        "exit": done.returncode,
        "done": [job["state"] for job in home.jobs()].count("done"),
    }
