"""A two-hour file goes through `voxbatch process` in bounded memory (the issue's 150 MB)."""

from __future__ import annotations

import pytest

from benchmarks.long_file_memory import measure


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_hour_file_peak_rss_under_150_mb() -> None:
    result = measure(2.0)
    assert result["state"] == "done" and result["exit_code"] == 0
    assert float(result["audio_seconds"]) > 2 * 3600  # type: ignore[arg-type]
    assert float(result["peak_rss_mb"]) < 150, result  # type: ignore[arg-type]
