"""What every case needs: the sizes of its inputs, the ffmpeg, the cache and a scratch folder."""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Parts of about a twelfth to a quarter of the long file: 8 parts when 8 sessions are free,
# as SPEC's rule has it (for two hours these are the defaults, 600 and 1800 s).
PARTS_MIN_FRACTION = 1 / 12
PARTS_MAX_FRACTION = 1 / 4
SERVER_SPEED = 30.0  # the server-bound cases: the emulator digests at 30 x real time


@dataclass(frozen=True)
class Sizes:
    long_s: float  # "the two-hour file"
    short_s: float  # the memory case's 3-minute file
    clips: int
    clip_s: float
    batch_files: int
    batch_file_s: float


FULL = Sizes(long_s=7200, short_s=180, clips=500, clip_s=3, batch_files=16, batch_file_s=60)
# A smoke run in a couple of minutes: the same cases on short files (figures not meaningful).
QUICK = Sizes(long_s=480, short_s=180, clips=40, clip_s=3, batch_files=8, batch_file_s=20)


@dataclass
class Context:
    ffmpeg: str
    cache: Path
    scratch: Path
    sizes: Sizes
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def folder(self, name: str) -> Path:
        """A new folder for one run (a voxbatch home, logs): nothing carries over between runs."""
        path = self.scratch / f"{next(self._counter):02d}-{name}"
        path.mkdir(parents=True)
        return path

    def parts_settings(self, seconds: float) -> dict[str, float]:
        return {
            "min_seconds": max(5.0, seconds * PARTS_MIN_FRACTION),
            "max_seconds": max(5.0, seconds * PARTS_MAX_FRACTION),
        }

    def say(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


def duration_label(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}-hour"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}-minute"
    return f"{seconds:g}-second"
