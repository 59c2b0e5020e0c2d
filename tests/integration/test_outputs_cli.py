"""Where results go, as the command line tells it: export's format, process's and show's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Cli

pytestmark = pytest.mark.media


def test_export_infers_the_format_from_the_file_name(
    cli: Cli, samples: list[Path], tmp_path: Path
) -> None:
    [row] = cli.json("process", str(samples[0]), "--format", "txt")
    job = str(row["job_id"])
    cli("export", job, "-o", str(tmp_path / "x.srt"))
    assert (tmp_path / "x.srt").read_text().startswith("1\n00:00:")
    cli("export", job, "-o", str(tmp_path / "x.JSON"))
    assert json.loads((tmp_path / "x.JSON").read_text())["job_id"] == row["job_id"]
    cli("export", job, "-o", str(tmp_path / "x.tsv"))
    assert (tmp_path / "x.tsv").read_text().startswith("start\tend\ttext\n")
    # An explicit --format wins over the extension.
    cli("export", job, "--format", "vtt", "-o", str(tmp_path / "y.srt"))
    assert (tmp_path / "y.srt").read_text().startswith("WEBVTT")
    # Without -o, txt as before.
    assert not cli("export", job).stdout.startswith(("1\n", "WEBVTT", "{"))

    result = cli("export", job, "-o", str(tmp_path / "x.docx"), ok=False)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot tell the format from 'x.docx'")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.docx").exists()


def test_process_and_show_say_where_the_results_went(
    cli: Cli, samples: list[Path], isolated_env: Path, tmp_path: Path
) -> None:
    clip = samples[0]
    out = tmp_path / "results"
    table = cli("process", str(clip), "--out", str(out), "--format", "srt", "--format", "json")
    expected = [out / f"{clip.stem}.srt", out / f"{clip.stem}.json"]
    for path in expected:
        assert str(path) in table.stdout
    shown = cli.json("show", "1")
    assert shown["outputs"] == [str(p) for p in expected]
    human = cli("show", "1").stdout
    assert all(str(p) in human for p in expected)

    # The same file again: a second job, over the same files, and each job lists its own.
    [again] = cli.json("process", str(clip), "--out", str(out), "--format", "srt")
    assert again["outputs"] == [str(expected[0])]
    assert cli.json("show", str(again["job_id"]))["outputs"] == [str(expected[0])]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in expected)
