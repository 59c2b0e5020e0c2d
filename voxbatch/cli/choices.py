"""The fixed lists options offer, spelled out so that building the commands (for --help and
shell completion) imports neither the store nor the settings models.

tests/test_cli_startup.py checks them against their sources: `store.models.JobState`,
`config.OUTPUT_FORMATS` and `ops.reports.COST_GROUPINGS`.
"""

from __future__ import annotations

JOB_STATES = (
    "queued",
    "claimed",
    "converting",
    "streaming",
    "transcribed",
    "summarizing",
    "done",
    "failed",
    "needs_review",
)
OUTPUT_FORMATS = ("txt", "srt", "vtt", "tsv", "json")
EXPORT_FORMATS = (*OUTPUT_FORMATS, "summary", "speech")
COST_GROUPINGS = ("day", "month", "model", "kind", "inbox")
