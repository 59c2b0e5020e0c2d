"""Where a long file is cut into parts (SPEC "Parts"): pure arithmetic, no I/O.

As many parts of about equal length as keep the sessions the file may use busy, none longer
than the hard limit; each cut in the middle of the longest silence near its ideal place. Cuts
are decided as the decoding reaches them, so the first parts stream while the rest decodes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Silence = tuple[float, float]  # (start, end) seconds from the start of the file

REACH_FRACTION = 0.1  # of a part's length: how far a cut may move to find a silence
MAX_REACH_S = 30.0
WINDOW_MARGIN = 0.9  # of the model's session window: the most a part may be
# Cuts and resumption points sit on the grid of the model's 80 ms audio tokens, counted from
# the start of the file: a part's audio then lines up with the whole file's.
GRID_S = 0.08


def on_grid(seconds: float, *, down: bool = False) -> float:
    steps = seconds / GRID_S
    return round((math.floor(steps + 1e-9) if down else round(steps)) * GRID_S, 6)


def part_count(duration: float, *, sessions_free: int, min_part: float, max_part: float) -> int:
    """max(⌈d / max⌉, min(sessions free, ⌊d / min⌋)), at least one."""
    by_limit = math.ceil(duration / max_part)
    by_sessions = min(max(sessions_free, 1), math.floor(duration / min_part))
    return max(by_limit, by_sessions, 1)


def max_part_seconds(configured: float, window_s: float | None) -> float:
    """The configured hard limit, never past the model's session window (with a margin)."""
    if window_s is None:
        return configured
    return min(configured, window_s * WINDOW_MARGIN)


@dataclass(frozen=True)
class CutPlan:
    length: float  # the ideal part length
    max_part: float  # the hard limit
    expected_s: float | None = None  # the file's measured length, if known

    @classmethod
    def for_file(
        cls, duration: float, *, sessions_free: int, min_part: float, max_part: float
    ) -> CutPlan:
        # Cuts move by up to `reach` either way: plan for parts that still fit when they do.
        usable = max_part / (1 + 2 * REACH_FRACTION)
        count = part_count(
            duration, sessions_free=sessions_free, min_part=min_part, max_part=usable
        )
        return cls(length=duration / count, max_part=max_part, expected_s=duration)

    @property
    def reach(self) -> float:
        return min(MAX_REACH_S, self.length * REACH_FRACTION)

    def lookahead(self, ideal: float) -> float:
        """Audio decoded past a cut's ideal place before it is decided: its silences within
        reach are known; and near the file's expected end, whether the file ends within half
        a part (then the rest is the last part: no cut)."""
        near_end = self.expected_s is None or ideal + self.length > self.expected_s - self.reach
        return max(self.reach, self.length / 2) if near_end else self.reach

    def next_cut(
        self, previous: float, silences: Sequence[Silence], *, decoded: float, ended: bool
    ) -> float | None:
        """The cut after `previous`, or None when it cannot be decided yet (or, once the
        decoding `ended`, when the rest of the file is the last part)."""
        ideal = previous + self.length
        ahead = self.lookahead(ideal)
        if ended:
            if decoded - previous <= self.max_part and decoded < ideal + max(
                ahead, self.length / 2
            ):
                return None
        elif decoded < ideal + ahead:
            return None
        low, high = ideal - self.reach, min(ideal + self.reach, previous + self.max_part)
        cut = _in_silence(silences, low, high) or min(ideal, previous + self.max_part)
        return on_grid(min(max(cut, low), high))


def _in_silence(silences: Sequence[Silence], low: float, high: float) -> float | None:
    """The middle of the longest stretch of silence inside [low, high], if any."""
    best: Silence | None = None
    for start, end in silences:
        start, end = max(start, low), min(end, high)
        if end > start and (best is None or end - start > best[1] - best[0]):
            best = (start, end)
    return None if best is None else (best[0] + best[1]) / 2
