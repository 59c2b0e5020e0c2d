"""Progress on stderr: a live line on a terminal, one line per finished file otherwise."""

from __future__ import annotations

import io
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import click

from voxbatch.accounting.prices import format_usd
from voxbatch.cli.render import cut
from voxbatch.errors import display_path
from voxbatch.process import FileOutcome


class StderrReporter:
    """The bar counts audio the server has transcribed (its segments' ends), not audio handed
    to the socket, which runs far ahead; the ETA comes from the rate of transcription so far."""

    def __init__(
        self,
        total_files: int,
        stream: TextIO | None = None,
        *,
        width: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.total = total_files
        self.finished_count = 0
        self._width = width or self._terminal_width
        self._clock = clock
        self._durations: dict[Path, float | None] = {}
        self._heard: dict[Path, float] = {}
        self._heard_before = 0.0  # by files already finished: keeps the rate honest
        self._began: float | None = None
        self._last_draw = 0.0

    def started(self, path: Path, duration_s: float | None) -> None:
        if self._began is None:
            self._began = self._clock()
        self._durations[path] = duration_s
        self._heard[path] = 0.0
        self._draw(force=True)

    def advanced(self, path: Path, seconds: float) -> None:
        """Audio sent: not shown (the server may still be minutes behind)."""

    def transcribed(self, path: Path, up_to_s: float) -> None:
        if path in self._heard:
            self._heard[path] = max(self._heard[path], up_to_s)
            self._draw()

    def finished(self, outcome: FileOutcome) -> None:
        self.finished_count += 1
        self._durations.pop(outcome.path, None)
        self._heard_before += self._heard.pop(outcome.path, 0.0)
        if self.live:
            click.echo("\r\x1b[2K", nl=False, file=self.stream)
        name = display_path(outcome.path).rsplit("/", 1)[-1]
        if outcome.ok:
            how = (
                f"duplicate of job {outcome.duplicate_of}"
                if outcome.duplicate_of
                else (f"{outcome.audio_seconds or 0:.1f} s, {format_usd(outcome.cost_usd)}")
            )
            line = f"ok      {name} → job {outcome.job_id} ({how})"
        else:
            line = f"FAILED  {name}: {outcome.error}"
        click.echo(f"[{self.finished_count}/{self.total}] {line}", file=self.stream)
        self._draw(force=True)

    def line(self) -> str:
        """The live line, at most one terminal row (a wrapped line cannot be redrawn)."""
        total = sum(d or 0 for d in self._durations.values())
        done = min(sum(self._heard.values()), total) if total else 0.0
        share = done / total if total else 0.0
        pct = f"{100 * share:5.1f}%" if total else "  ?  "
        columns = max(self._width(), 20)
        bar_width = max(5, min(30, columns // 4))
        filled = int(bar_width * share)
        text = (
            f"[{'#' * filled}{'-' * (bar_width - filled)}] {pct} "
            f"{done:,.0f}/{total:,.0f} s transcribed, ETA {self._eta(total - done)}, "
            f"{len(self._durations)} streaming, {self.finished_count}/{self.total} finished"
        )
        return cut(text, columns - 1)

    def _eta(self, remaining_s: float) -> str:
        if self._began is None:
            return "?"
        elapsed = self._clock() - self._began
        heard = self._heard_before + sum(self._heard.values())
        if heard <= 0 or elapsed <= 0:
            return "?"
        seconds = int(remaining_s / (heard / elapsed))
        return f"{seconds // 60}:{seconds % 60:02d}"

    def _terminal_width(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, io.UnsupportedOperation):
            return shutil.get_terminal_size().columns

    def _draw(self, force: bool = False) -> None:
        if not self.live or not self._durations:
            return
        now = self._clock()
        if not force and now - self._last_draw < 0.2:
            return
        self._last_draw = now
        click.echo(f"\r\x1b[2K{self.line()}", nl=False, file=self.stream)
