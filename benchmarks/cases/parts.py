"""One long file against a server-bound emulator (30 x real time), in one session and in 8
parts: how much of the server's real-time bound do parallel parts take off?

One session: the inbox has `parts = false`. Eight parts: `parts = true`, `[daemon] concurrency
= 8` and `[parts]` lengths from a twelfth to a quarter of the file (SPEC's rule then gives 8).
A build without parts streams both as one session: the emulator's session count says which.
"""

from __future__ import annotations

import shutil
from typing import Any

from benchmarks import media
from benchmarks.context import SERVER_SPEED, Context, duration_label
from benchmarks.emulator import EmulatorProcess
from benchmarks.home import Home
from benchmarks.report import Row

NAME = "parts"
SESSIONS = 8


def run(ctx: Context) -> list[Row]:
    seconds = ctx.sizes.long_s
    source = media.speech(ctx.ffmpeg, ctx.cache, seconds)
    eight = _one_file(ctx, source, parts=True)
    one = _one_file(ctx, source, parts=False)
    label = f"{duration_label(seconds)} file at {SERVER_SPEED:g} x real time"
    row = Row(
        NAME, f"{label}, {SESSIONS} parts", eight["span_s"], "s",
        baseline=one["span_s"], baseline_name="one session", target="<= 0.15",
        peak_rss_mb=eight["peak_rss_mb"], tree_rss_mb=eight["tree_rss_mb"],
        extra={"parts": eight, "one_session": one},
    )  # fmt: skip
    if eight["sessions"] < SESSIONS:
        row.notes = f"{eight['sessions']} session(s): this build did not cut {SESSIONS} parts"
    for run_ in (eight, one):
        row.fail_unless(run_["state"] == "done", f"ended {run_['state']}")
    return [row]


def _one_file(ctx: Context, source: Any, *, parts: bool) -> dict[str, Any]:
    what = f"{SESSIONS} parts" if parts else "one session"
    ctx.say(f"[{NAME}] {source.name}, {what}")
    root = ctx.folder(f"parts-{'8' if parts else '1'}")
    with EmulatorProcess(root / "emulator.log", speed=SERVER_SPEED) as emu:
        home = Home(
            root / "home", emu.url,
            daemon={"concurrency": SESSIONS},
            parts=ctx.parts_settings(ctx.sizes.long_s),
            inbox={"parts": parts},
        )  # fmt: skip
        shutil.copy2(source, home.inbox / source.name)
        done = home.run("run", "--once", timeout=600 + 2 * ctx.sizes.long_s / SERVER_SPEED)
        sessions = emu.sessions()
    [job] = home.jobs()
    return {
        "span_s": home.job_span_s(),
        "wall_s": done.wall_s,
        "exit": done.returncode,
        "state": job["state"],
        "sessions": len(sessions),
        "peak_rss_mb": done.peak_rss_mb,
        "tree_rss_mb": done.tree_rss_mb,
    }
