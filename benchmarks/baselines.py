"""The floors voxbatch is held against, measured in the same run: ffmpeg alone, the SDK alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks import measure
from benchmarks.home import KEY, clean_environ
from voxbatch.media.ffmpeg import pcm_args

SDK_TIMEOUT_S = 3600


def ffmpeg_to_null(ffmpeg: str, source: Path, log: Path, *, timeout: float) -> measure.Measured:
    """ffmpeg decoding `source` to 16 kHz mono s16le on a stdout that is /dev/null, with the
    argument list voxbatch's own conversion uses."""
    args = pcm_args(ffmpeg, source, sample_rate=16_000, max_seconds=None)
    done = measure.run(args, clean_environ(), log=log, timeout=timeout, capture=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed on {source}: see {log}")
    return done


def sdk_stream(url: str, pcm: Path, log: Path) -> tuple[measure.Measured, dict[str, Any]]:
    """`benchmarks.sdk_stream` in its own process: its wall time (interpreter start included,
    as voxbatch's is) and what it reported."""
    cmd = [sys.executable, "-m", "benchmarks.sdk_stream", url, KEY, str(pcm)]
    env = {**clean_environ(), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = measure.run(cmd, env, log=log, timeout=SDK_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"the SDK baseline failed: {log.read_text(errors='replace')[-2000:]}")
    return done, json.loads(done.stdout)
