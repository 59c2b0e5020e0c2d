"""Progress on stderr: a live line on a terminal, one line per finished file otherwise."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import click

from voxbatch.accounting.prices import format_usd
from voxbatch.errors import display_path
from voxbatch.process import FileOutcome


class StderrReporter:
    def __init__(self, total_files: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.total = total_files
        self.finished_count = 0
        self._durations: dict[Path, float | None] = {}
        self._done_seconds: dict[Path, float] = {}
        self._last_draw = 0.0

    def started(self, path: Path, duration_s: float | None) -> None:
        self._durations[path] = duration_s
        self._done_seconds[path] = 0.0
        self._draw(force=True)

    def advanced(self, path: Path, seconds: float) -> None:
        self._done_seconds[path] = self._done_seconds.get(path, 0.0) + seconds
        self._draw()

    def finished(self, outcome: FileOutcome) -> None:
        self.finished_count += 1
        self._durations.pop(outcome.path, None)
        self._done_seconds.pop(outcome.path, None)
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

    def _draw(self, force: bool = False) -> None:
        if not self.live or not self._durations:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.2:
            return
        self._last_draw = now
        total = sum(d or 0 for d in self._durations.values())
        done = sum(self._done_seconds.values())
        pct = f"{min(100.0, 100 * done / total):5.1f}%" if total else "  ?  "
        width = 30
        filled = int(width * min(1.0, done / total)) if total else 0
        bar = "#" * filled + "-" * (width - filled)
        line = (
            f"\r\x1b[2K[{bar}] {pct} {done:,.0f}/{total:,.0f} s audio, "
            f"{len(self._durations)} streaming, {self.finished_count}/{self.total} finished"
        )
        click.echo(line, nl=False, file=self.stream)
