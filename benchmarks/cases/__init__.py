"""The cases of `python -m benchmarks`, in the order they run (cheapest first)."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.cases import batch, clips, memory, parts, sigkill, unlimited
from benchmarks.context import Context
from benchmarks.report import Row

CASES: dict[str, Callable[[Context], list[Row]]] = {
    module.NAME: module.run for module in (unlimited, clips, memory, batch, parts, sigkill)
}
