"""Many short clips through `voxbatch run --once` (concurrency 4, server unlimited), against
ffmpeg decoding each of them in turn: the per-file overhead, in files per second."""

from __future__ import annotations

import shutil

from benchmarks import baselines, media
from benchmarks.context import Context
from benchmarks.emulator import EmulatorProcess
from benchmarks.home import Home
from benchmarks.report import Row

NAME = "clips"
CONCURRENCY = 4


def run(ctx: Context) -> list[Row]:
    count, seconds = ctx.sizes.clips, ctx.sizes.clip_s
    folder = media.clips(ctx.ffmpeg, ctx.cache, count, seconds)
    clips = sorted(folder.iterdir())
    timeout = 600 + 2 * count

    ctx.say(f"[{NAME}] ffmpeg on each of {count} clips in turn")
    logs = ctx.folder("clips-ffmpeg")
    ffmpeg_s = sum(
        baselines.ffmpeg_to_null(ctx.ffmpeg, clip, logs / "ffmpeg.log", timeout=60).wall_s
        for clip in clips
    )

    ctx.say(f"[{NAME}] voxbatch run --once on {count} clips, concurrency {CONCURRENCY}")
    root = ctx.folder("clips-voxbatch")
    with EmulatorProcess(root / "emulator.log") as emu:
        home = Home(root / "home", emu.url, daemon={"concurrency": CONCURRENCY})
        for clip in clips:
            shutil.copy2(clip, home.inbox / clip.name)
        done = home.run("run", "--once", timeout=timeout)
    states = [job["state"] for job in home.jobs()]
    finished = states.count("done")

    row = Row(
        NAME, f"{count} clips of {seconds:g} s, `run --once`, concurrency {CONCURRENCY}",
        count / done.wall_s, "files/s",
        baseline=count / ffmpeg_s, baseline_name="ffmpeg on each in turn", target=">= 1.0",
        peak_rss_mb=done.peak_rss_mb, tree_rss_mb=done.tree_rss_mb,
        extra={"voxbatch_s": done.wall_s, "ffmpeg_s": ffmpeg_s, "exit": done.returncode,
               "done": finished, "jobs": len(states)},
    )  # fmt: skip
    row.fail_unless(finished == count, f"{finished} of {count} done")
    return [row]
