"""A two-hour file goes through `voxbatch process` in bounded memory (the issue's 150 MB)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.cases.memory import LIMIT_MB, measure_file
from benchmarks.context import FULL, Context
from voxbatch.media.ffmpeg import find_ffmpeg


@pytest.mark.media
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_hour_file_peak_rss_under_150_mb(tmp_path: Path) -> None:
    ctx = Context(find_ffmpeg(), cache=tmp_path / "cache", scratch=tmp_path / "runs", sizes=FULL)
    baseline = measure_file(ctx, 60)
    result = measure_file(ctx, 2 * 3600)
    assert result["state"] == "done" and result["exit"] == 0, result
    assert result["audio_seconds"] > 2 * 3600 - 1, result
    assert result["peak_rss_mb"] < LIMIT_MB, result
    # Memory must not grow with length: two hours within 10 MB of one minute.
    assert result["peak_rss_mb"] - baseline["peak_rss_mb"] < 10, (baseline, result)
