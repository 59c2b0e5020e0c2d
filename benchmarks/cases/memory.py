"""Peak memory of `voxbatch process` on a 3-minute and on a long file, each in 8 parts
(concurrency 8, the emulator unlimited): memory must not grow with the file's length.

`[parts] min_seconds` is a ninth of the short file so that SPEC's rule cuts both files in 8.
The target holds the voxbatch process's own peak (VmHWM); its ffmpegs are in the tree figure.
"""

from __future__ import annotations

import json
from typing import Any

from benchmarks import media
from benchmarks.context import Context, duration_label
from benchmarks.emulator import EmulatorProcess
from benchmarks.home import Home
from benchmarks.report import Row

NAME = "memory"
SESSIONS = 8
LIMIT_MB = 150.0


def measure_file(ctx: Context, seconds: float) -> dict[str, Any]:
    """`voxbatch process` on a speech-like file of `seconds`: its state, time and peak memory."""
    source = media.speech(ctx.ffmpeg, ctx.cache, seconds)
    ctx.say(f"[{NAME}] voxbatch process {source.name}, {SESSIONS} parts")
    root = ctx.folder(f"memory-{seconds:g}s")
    with EmulatorProcess(root / "emulator.log") as emu:
        home = Home(
            root / "home", emu.url,
            daemon={"concurrency": SESSIONS},
            parts={"min_seconds": ctx.sizes.short_s / 9, "max_seconds": 1800},
            inbox={"parts": True},
        )  # fmt: skip
        done = home.run("process", str(source), "--json", timeout=600 + seconds / 4)
        sessions = len(emu.sessions())
    [result] = json.loads(done.stdout) if done.returncode == 0 else [{"state": "error"}]
    return {
        "state": result["state"],
        "audio_seconds": result.get("audio_seconds"),
        "exit": done.returncode,
        "sessions": sessions,
        "wall_s": done.wall_s,
        "peak_rss_mb": done.peak_rss_mb,
        "tree_rss_mb": done.tree_rss_mb,
    }


def run(ctx: Context) -> list[Row]:
    short = measure_file(ctx, ctx.sizes.short_s)
    long = measure_file(ctx, ctx.sizes.long_s)
    rows = []
    for got, baseline, name, target in (
        (short, LIMIT_MB, "the limit", "<= 1"),
        (long, short["peak_rss_mb"], f"the {duration_label(ctx.sizes.short_s)} file", "<= 1.2"),
    ):
        seconds = ctx.sizes.short_s if got is short else ctx.sizes.long_s
        row = Row(
            NAME, f"peak RSS, {duration_label(seconds)} file, {SESSIONS} parts",
            got["peak_rss_mb"], "MB", baseline=baseline, baseline_name=name, target=target,
            peak_rss_mb=got["peak_rss_mb"], tree_rss_mb=got["tree_rss_mb"], extra=got,
        )  # fmt: skip
        row.fail_unless(got["peak_rss_mb"] <= LIMIT_MB, f"above {LIMIT_MB:g} MB")
        row.fail_unless(got["state"] == "done", f"ended {got['state']}")
        if got["sessions"] < SESSIONS:
            row.notes = "; ".join(
                n for n in (row.notes, f"{got['sessions']} session(s), not {SESSIONS}") if n
            )
        rows.append(row)
    return rows
