"""A two-hour file goes through `voxbatch process` in bounded memory (the issue's 150 MB)."""

from __future__ import annotations

import pytest

from benchmarks.long_file_memory import measure


@pytest.mark.media
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_hour_file_peak_rss_under_150_mb() -> None:
    baseline = measure(1 / 60)
    result = measure(2.0)
    assert result["state"] == "done" and result["exit_code"] == 0
    assert float(result["audio_seconds"]) > 2 * 3600  # type: ignore[arg-type]
    peak = float(result["peak_rss_mb"])  # type: ignore[arg-type]
    assert peak < 150, result
    # Memory must not grow with length: two hours within 10 MB of one minute.
    assert peak - float(baseline["peak_rss_mb"]) < 10, (baseline, result)  # type: ignore[arg-type]
