"""One way to print data: JSON with stable keys for machines, tables for people, CSV and
newline-delimited JSON for pipelines (as sqlite-utils offers them)."""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import click
from wcwidth import wcswidth

from voxbatch.documents import money_text

ELLIPSIS = "…"
GAP = "  "
# A column is never cut narrower than this (or its natural width, if less).
MIN_COLUMN = 6


class OutputMode(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    NL = "nl"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return money_text(value)  # exact: a float would lose micro-dollars
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, ensure_ascii=False, indent=2)


def emit_json(data: Any) -> None:
    click.echo(to_json(data))


def utc_text(value: datetime) -> str:
    """A time for people, always in UTC (the label says so where it is shown)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, Decimal):
        return f"{value:.6f}"  # micro-dollars, aligned; JSON keeps the exact value
    return " ".join(str(value).split()) if isinstance(value, str) else str(value)


def display_width(text: str) -> int:
    """Columns a terminal uses for text: East Asian wide characters and emoji take two."""
    width = wcswidth(text)
    return width if width >= 0 else len(text)  # control characters: counted as one each


def cut(text: str, width: int) -> str:
    """text, shortened to at most `width` display columns with a trailing ellipsis."""
    if display_width(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        w = max(display_width(char), 0)
        if used + w > width - 1:
            break
        kept.append(char)
        used += w
    return "".join(kept) + ELLIPSIS


def pad(text: str, width: int) -> str:
    return text + " " * max(width - display_width(text), 0)


def terminal_width() -> int | None:
    """COLUMNS when set, the terminal's width when stdout is one, else no limit (a pipe)."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _fit(natural: list[int], headers: list[int], width: int | None) -> list[int]:
    """Column widths: the natural ones, the one with most to spare cut first until the line
    fits; a heading is cut only when nothing else is left to cut."""
    widths = list(natural)
    if width is None:
        return widths
    floors = [min(n, max(h, MIN_COLUMN)) for n, h in zip(natural, headers, strict=True)]
    widths = _shrink(widths, floors, width)
    return _shrink(widths, [min(n, MIN_COLUMN) for n in natural], width)


def _shrink(widths: list[int], floors: list[int], width: int) -> list[int]:
    widths = list(widths)
    budget = width - len(GAP) * (len(widths) - 1)
    while sum(widths) > budget:
        widest = max(range(len(widths)), key=lambda i: widths[i] - floors[i])
        if widths[widest] <= floors[widest]:
            break  # cannot shrink further: the line stays wider than the terminal
        widths[widest] -= 1
    return widths


def _header(column: str, rows: Sequence[Mapping[str, Any]]) -> str:
    if any(isinstance(row.get(column), datetime) for row in rows):
        return f"{column} (UTC)"
    return column


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    width: int | Callable[[], int | None] | None = terminal_width,
) -> str:
    if not rows:
        return "(none)"
    limit = width() if callable(width) else width
    headers = [_header(c, rows) for c in columns]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    natural = [
        max(display_width(h), *(display_width(r[i]) for r in cells)) for i, h in enumerate(headers)
    ]
    widths = _fit(natural, [display_width(h) for h in headers], limit)

    def line(values: Sequence[str]) -> str:
        return GAP.join(pad(cut(v, w), w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), GAP.join("-" * w for w in widths), *map(line, cells)])


def _plain(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return _default(value)


def render_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], mode: OutputMode) -> str:
    """Rows in the chosen mode. CSV and JSON carry every field; the table only `columns`."""
    if mode is OutputMode.TABLE:
        return table(rows, columns)
    if mode is OutputMode.JSON:
        return to_json(list(rows))
    if mode is OutputMode.NL:
        return "".join(
            json.dumps(dict(row), default=_default, ensure_ascii=False) + "\n" for row in rows
        )
    buffer = io.StringIO()
    fields = list(rows[0]) if rows else list(columns)
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        plain = {k: _plain(v) for k, v in row.items()}
        writer.writerow({k: str(v).lower() if isinstance(v, bool) else v for k, v in plain.items()})
    return buffer.getvalue()


def emit(data: Sequence[Mapping[str, Any]], columns: Sequence[str], *, mode: OutputMode) -> None:
    click.echo(render_rows(data, columns, mode), nl=mode in (OutputMode.TABLE, OutputMode.JSON))


def segment_line(start: float | None, end: float | None, text: str, speaker: str | None) -> str:
    """One timed segment for people: `[  1.20 –   3.40] [speaker] text`."""
    span = f"[{start:6.2f} – {end:6.2f}]" if start is not None and end is not None else " " * 17
    who = f" [{speaker}]" if speaker else ""
    return f"{span}{who} {text.strip()}"


def rows_output(command: Callable[..., Any]) -> Callable[..., Any]:
    """--json, --csv and --nl for a command that lists rows; it receives `mode`."""

    @functools.wraps(command)
    def choose(*args: Any, as_json: bool, as_csv: bool, as_nl: bool, **kwargs: Any) -> Any:
        chosen = [
            mode
            for mode, on in (
                (OutputMode.JSON, as_json),
                (OutputMode.CSV, as_csv),
                (OutputMode.NL, as_nl),
            )
            if on
        ]
        if len(chosen) > 1:
            raise click.UsageError("choose one of --json, --csv and --nl")
        return command(*args, mode=chosen[0] if chosen else OutputMode.TABLE, **kwargs)

    for option in (
        click.option("--nl", "as_nl", is_flag=True, help="Print one JSON object a line."),
        click.option("--csv", "as_csv", is_flag=True, help="Print CSV with a header row."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table."),
    ):
        choose = option(choose)
    return choose
