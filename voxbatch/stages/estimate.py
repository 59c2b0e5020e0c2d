"""`process --dry-run`: what files would cost, from their length alone (no job, no API call)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from voxbatch.accounting.budget import estimate_job_cost
from voxbatch.config import InboxProfile, Settings
from voxbatch.errors import VoxbatchError, one_line
from voxbatch.media.audio import probe_length


@dataclass(frozen=True)
class FileEstimate:
    path: Path
    audio_seconds: float | None
    estimated_usd: Decimal | None
    error: str | None = None


async def estimate_files(
    settings: Settings, profile: InboxProfile, paths: Sequence[Path], *, ffmpeg: str
) -> list[FileEstimate]:
    """Probe each file (ffmpeg only, no API call, no job) and estimate what it would cost."""
    found = []
    for path in paths:
        try:
            info = await probe_length(path, ffmpeg=ffmpeg)
        except VoxbatchError as exc:
            found.append(FileEstimate(path, None, None, one_line(exc)))
            continue
        except OSError as exc:
            found.append(FileEstimate(path, None, None, f"cannot read: {exc.strerror}"))
            continue
        seconds = info.duration_seconds
        found.append(FileEstimate(path, seconds, estimate_job_cost(settings, profile, seconds)))
    return found
