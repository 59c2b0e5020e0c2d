"""Result files: formats, times, naming and atomic writes."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pysubs2

from tests.helpers.documents import doc
from voxbatch.documents import TimedText
from voxbatch.stages.publish import render, write_outputs


def test_srt_and_vtt_parse_back_with_rising_times() -> None:
    for fmt in ("srt", "vtt"):
        subs = pysubs2.SSAFile.from_string(render(doc(), fmt))
        starts = [e.start for e in subs]
        assert starts == sorted(starts) and len(subs) == 3
        assert subs[0].start == 500 and subs[0].end == 1250
        assert all(e.end > e.start for e in subs)
    assert "[1]" in pysubs2.SSAFile.from_string(render(doc(), "srt"))[2].plaintext
    assert '<v 1>&lt;b&gt;&amp;&lt;/b&gt; "quoted"' in render(doc(), "vtt")


def test_json_has_stable_keys_and_exact_cost() -> None:
    data = json.loads(render(doc(), "json"))
    assert set(data) >= {"text", "language", "segments", "model", "duration_seconds", "cost_usd"}
    assert data["cost_usd"] == "0.0004"
    assert data["segments"][0] == {
        "start": 0.5,
        "end": 1.25,
        "text": "hello world",
        "speaker": None,
    }


def test_json_schema_2_strips_text_nulls_unknown_speakers_and_writes_money_one_way() -> None:
    tiny = replace(
        doc(),
        cost_usd=Decimal("1E-7"),
        text=" hi there ",
        # Some producers say "" for "no speaker".
        segments=(TimedText(0.0, 1.0, " hi", ""), TimedText(1.0, 2.0, " there", "s1")),
    )
    data = json.loads(render(tiny, "json"))
    assert data["schema_version"] == 2
    assert data["text"] == "hi there"
    assert [s["text"] for s in data["segments"]] == ["hi", "there"]
    assert [s["speaker"] for s in data["segments"]] == [None, "s1"]
    assert data["cost_usd"] == "0.0000001"  # never "1E-7"
    assert json.loads(render(replace(doc(), cost_usd=Decimal("0E-10")), "json"))["cost_usd"] == "0"


def test_outputs_never_overwrite_another_jobs_results(tmp_path: Path) -> None:
    first = write_outputs(doc(1), tmp_path, ["txt", "json"])
    # Job 2 is other audio of the same name.
    second = write_outputs(replace(doc(2), content_sha256="cd" * 32), tmp_path, ["txt", "json"])
    again = write_outputs(doc(1), tmp_path, ["txt", "json"])
    assert [p.name for p in first] == ["talk.txt", "talk.json"]
    assert [p.name for p in second] == ["talk-2.txt", "talk-2.json"]
    assert again == first  # the same job may refresh its own files
    assert json.loads((tmp_path / "talk.json").read_text())["job_id"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # Job 3 is the same audio as job 1 again (its files, unrecorded, say so): over them.
    assert write_outputs(doc(3), tmp_path, ["txt", "json"]) == first


def test_txt_is_plain_text() -> None:
    plain = replace(doc(), segments=(TimedText(0.5, 1.25, " hello world"),))
    assert render(plain, "txt") == "hello world again\n"


def test_the_command_lines_json_writes_money_the_same_one_way() -> None:
    from voxbatch.cli.render import to_json

    assert json.loads(to_json({"a": Decimal("1E-7"), "b": Decimal("0E-12")})) == {
        "a": "0.0000001",
        "b": "0",
    }
