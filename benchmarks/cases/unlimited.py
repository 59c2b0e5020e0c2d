"""A long opus file against a server with no speed limit: voxbatch against its two floors,
(a) ffmpeg alone decoding it and (b) the SDK streaming the ready PCM without compression.

voxbatch runs as shipped (`voxbatch process FILE`, default settings: parts on, concurrency 4),
each in its own fresh emulator process at unlimited speed.
"""

from __future__ import annotations

import json

from benchmarks import baselines, media
from benchmarks.context import Context, duration_label
from benchmarks.emulator import EmulatorProcess, audio_received_s
from benchmarks.home import Home
from benchmarks.report import Row

NAME = "unlimited"


def run(ctx: Context) -> list[Row]:
    seconds = ctx.sizes.long_s
    source = media.speech(ctx.ffmpeg, ctx.cache, seconds)
    pcm = media.pcm(ctx.ffmpeg, source)
    timeout = 600 + seconds / 4
    logs = ctx.folder("unlimited-baselines")

    ctx.say(f"[{NAME}] (a) ffmpeg alone, {source.name} to /dev/null")
    a = baselines.ffmpeg_to_null(ctx.ffmpeg, source, logs / "ffmpeg.log", timeout=timeout)

    ctx.say(f"[{NAME}] (b) the SDK streaming {pcm.name}, compression off")
    with EmulatorProcess(logs / "emulator-sdk.log") as emu:
        b, sdk = baselines.sdk_stream(emu.url, pcm, logs / "sdk.log")

    ctx.say(f"[{NAME}] voxbatch process {source.name}")
    root = ctx.folder("unlimited-voxbatch")
    with EmulatorProcess(root / "emulator.log") as emu:
        home = Home(root / "home", emu.url)
        done = home.run("process", str(source), "--json", timeout=timeout)
        sessions = emu.sessions()
    [result] = json.loads(done.stdout) if done.returncode == 0 else [{"state": "error"}]

    label = f"{duration_label(seconds)} opus file, server unlimited"
    extra = {
        "ffmpeg_s": a.wall_s,
        "sdk_s": b.wall_s,
        "sdk_stream_s": sdk["stream_s"],
        "voxbatch_s": done.wall_s,
        "voxbatch_exit": done.returncode,
        "voxbatch_result": result,
        "sessions": len(sessions),
        "audio_received_s": audio_received_s(sessions),
    }
    floors = f"ffmpeg {a.wall_s:.1f} s, SDK {b.wall_s:.1f} s"
    rows = [
        Row(
            NAME, f"{label}, against max(a, b)", done.wall_s, "s",
            baseline=max(a.wall_s, b.wall_s), baseline_name=f"max: {floors}", target="<= 1.3",
            peak_rss_mb=done.peak_rss_mb, tree_rss_mb=done.tree_rss_mb, extra=extra,
        ),
        Row(
            NAME, f"{label}, against a + b", done.wall_s, "s",
            baseline=a.wall_s + b.wall_s, baseline_name=f"sum: {floors}", target="<= 0.8",
            peak_rss_mb=done.peak_rss_mb, tree_rss_mb=done.tree_rss_mb,
        ),
    ]  # fmt: skip
    for row in rows:
        row.fail_unless(result.get("state") == "done", f"voxbatch ended {result.get('state')}")
    return rows
