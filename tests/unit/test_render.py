"""Tables for people: fit the width, measure what a terminal shows, no Python reprs."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from wcwidth import wcswidth

from voxbatch.cli.render import OutputMode, render_rows, table

ROWS = [
    {
        "id": 1,
        "file": "会議の録音_第一回.wav",
        "ok": True,
        "at": datetime(2026, 12, 4, 9, 5, tzinfo=UTC),
    },
    {"id": 22, "file": "🎙️ podcast episode " + "x" * 80 + ".mp3", "ok": False, "at": None},
]


def widths(text: str) -> list[int]:
    return [wcswidth(line) for line in text.splitlines()]


def test_table_fits_the_width_and_cuts_with_an_ellipsis() -> None:
    out = table(ROWS, ["id", "file", "ok", "at"], width=60)
    assert max(widths(out)) <= 60, out
    assert "…" in out  # the long name was cut, visibly
    assert "x" * 80 not in out


def test_wide_characters_are_measured_as_the_terminal_shows_them() -> None:
    out = table(
        [*ROWS[:1], {"id": 3, "file": "plain.wav", "ok": False}], ["id", "file", "ok"], width=200
    )
    header, _, *lines = out.splitlines()
    # The last column starts at the same display column on every line (CJK counts 2 each).
    last_column = {wcswidth(line[: line.rindex(" ") + 1]) for line in lines}
    assert last_column == {wcswidth(header[: header.rindex(" ") + 1])}, out


def test_no_python_reprs_and_times_labelled_utc() -> None:
    out = table(ROWS, ["id", "ok", "at"], width=200)
    assert "True" not in out and "False" not in out
    assert "yes" in out and "no" in out
    header = out.splitlines()[0]
    assert "at (UTC)" in header
    assert "2026-12-04 09:05:00" in out


def test_a_time_in_another_zone_is_shown_in_utc() -> None:
    from zoneinfo import ZoneInfo

    at = datetime(2026, 12, 4, 10, 5, tzinfo=ZoneInfo("Europe/Paris"))
    assert "2026-12-04 09:05:00" in table([{"at": at}], ["at"], width=80)


def test_unlimited_width_cuts_nothing() -> None:
    out = table(ROWS, ["id", "file"], width=None)
    assert "x" * 80 in out and "…" not in out


def test_csv_and_nl_carry_every_field_exactly() -> None:
    rows = [{"id": 1, "cost_usd": Decimal("0.000700"), "ok": False, "at": ROWS[0]["at"]}]
    parsed = list(csv.DictReader(io.StringIO(render_rows(rows, ["id"], OutputMode.CSV))))
    assert parsed == [
        {"id": "1", "cost_usd": "0.0007", "ok": "false", "at": "2026-12-04T09:05:00+00:00"}
    ]
    lines = render_rows(rows, ["id"], OutputMode.NL).splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": 1, "cost_usd": "0.0007", "ok": False, "at": "2026-12-04T09:05:00+00:00"}
    ]


@pytest.mark.parametrize("mode", list(OutputMode))
def test_every_mode_renders_no_rows(mode: OutputMode) -> None:
    out = render_rows([], ["id", "file"], mode)
    if mode is OutputMode.JSON:
        assert json.loads(out) == []
    elif mode is OutputMode.CSV:
        assert out.strip() == "id,file"
    else:
        assert out.strip() in ("", "(none)")
