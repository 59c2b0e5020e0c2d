"""One row per figure: voxbatch's, its baseline from the same run, the ratio and the target.

Rendered as a plain table for the terminal, as Markdown for the README, and as JSON.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# How a ratio is held against its target: "<=" (at most) or ">=" (at least).
_COMPARE: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}
_SHOWN = {"<=": "≤", ">=": "≥"}


@dataclass
class Row:
    case: str  # the --case name that produced it
    name: str  # what is measured, as the table says it
    figure: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    # ratio = figure / baseline unless given (some targets are not a plain quotient)
    ratio: float | None = None
    target: str = ""  # e.g. "<= 1.3": the ratio's bound; "" when only reported
    met: bool | None = None
    peak_rss_mb: float | None = None  # the voxbatch process's own peak (VmHWM)
    tree_rss_mb: float | None = None  # voxbatch and its ffmpegs at once (sampled)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline:
            self.ratio = self.figure / self.baseline
        if self.target and self.met is None and self.ratio is not None:
            sign, bound = self.target.split()
            self.met = _COMPARE[sign](self.ratio, float(bound))

    def fail_unless(self, condition: bool, why: str) -> None:
        """A precondition of the target (say, the file must have finished)."""
        if not condition:
            self.met = False
            self.notes = "; ".join(n for n in (self.notes, why) if n)


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return f"{text} {unit}".strip()


def _cells(row: Row) -> list[str]:
    baseline = _number(row.baseline, row.unit)
    if row.baseline_name:
        baseline = f"{baseline} ({row.baseline_name})"
    target = ""
    if row.target:
        sign, bound = row.target.split()
        target = f"{_SHOWN[sign]} {bound}"
    met = {True: "met", False: "not met", None: "—"}[row.met]
    rss = _number(row.peak_rss_mb, "MB")
    if row.tree_rss_mb is not None and row.tree_rss_mb > (row.peak_rss_mb or 0):
        rss += f" ({_number(row.tree_rss_mb, 'MB')} tree)"
    name = f"{row.name} ({row.notes})" if row.notes else row.name
    ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
    return [name, _number(row.figure, row.unit), baseline, ratio, target or "—", met, rss]


HEADER = ["case", "voxbatch", "baseline (same run)", "ratio", "target", "met", "peak RSS"]


def text_table(rows: list[Row]) -> str:
    cells = [HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(c))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


RSS_NOTE = (
    "Peak RSS: the voxbatch process's own high-water mark (VmHWM); in brackets, voxbatch and "
    "its ffmpegs together (their VmRSS summed, sampled every 50 ms)."
)


def markdown_table(rows: list[Row], machine: dict[str, Any], *, quick: bool = False) -> str:
    lines = [
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gb']} GB; "
        f"{machine['ffmpeg']}; Python {machine['python']}; voxbatch {machine['commit']}; "
        f"{machine['date']}." + (" `--quick`: short files, a smoke run." if quick else ""),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |" for r in rows]
    return "\n".join([*lines, "", RSS_NOTE])


def write_json(
    path: Path, rows: list[Row], machine: dict[str, Any], options: dict[str, Any]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine, "options": options, "rows": [asdict(r) for r in rows]}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
