"""`python -m benchmarks` keeps working: a quick run of one case writes a well-formed row.

Only the shape is checked, never a figure: speed is measured in benchmarks/, not asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROW_KEYS = {
    "case", "name", "figure", "unit", "baseline", "baseline_name", "ratio", "target", "met",
    "peak_rss_mb", "tree_rss_mb", "notes", "extra",
}  # fmt: skip


@pytest.mark.media
@pytest.mark.timeout(600)
def test_a_quick_run_of_one_case_writes_its_rows(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--case", "unlimited", "--markdown",
         "--out", str(out), "--cache", str(tmp_path / "cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())
    assert results["options"]["failed"] == []
    assert {"cores", "cpu", "ffmpeg", "python", "commit"} <= set(results["machine"])
    rows = results["rows"]
    assert rows and all(set(row) == ROW_KEYS for row in rows)
    for row in rows:
        assert row["case"] == "unlimited"
        assert row["figure"] > 0 and row["baseline"] > 0
        assert row["ratio"] == pytest.approx(row["figure"] / row["baseline"])
        assert row["target"] and row["met"] in (True, False)
        assert row["peak_rss_mb"] > 0 and row["tree_rss_mb"] >= row["peak_rss_mb"]
    assert rows[0]["extra"]["voxbatch_result"]["state"] == "done"
    # The Markdown table, as the README shows it: the machine, then one line per row.
    assert done.stdout.startswith("Machine: ")
    assert sum(line.startswith("| ") for line in done.stdout.splitlines()) == 1 + len(rows)
