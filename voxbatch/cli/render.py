"""One way to print data: JSON with stable keys for machines, aligned tables for people."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from voxbatch.documents import money_text


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


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, Decimal):
        return f"{value:.6f}"  # micro-dollars, aligned; JSON keeps the exact value
    return str(value).replace("\n", " ")


def segment_line(start: float | None, end: float | None, text: str, speaker: str | None) -> str:
    """One timed segment for people: `[  1.20 –   3.40] [speaker] text`."""
    span = f"[{start:6.2f} – {end:6.2f}]" if start is not None and end is not None else " " * 17
    who = f" [{speaker}]" if speaker else ""
    return f"{span}{who} {text.strip()}"


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, max_width: int = 60) -> str:
    if not rows:
        return "(none)"
    cells = [[_cell(row.get(c))[:max_width] for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def emit(data: Sequence[Mapping[str, Any]], columns: Sequence[str], *, as_json: bool) -> None:
    if as_json:
        emit_json(list(data))
    else:
        click.echo(table(data, columns))
