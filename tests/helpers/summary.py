"""The summary tests' shared steps: settings against an emulator, a summary profile, the real
pipeline up to a saved transcript, and the summary stages."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from voxbatch.config import InboxProfile, Settings
from voxbatch.emulator import Emulator
from voxbatch.process import ProcessRun
from voxbatch.stages.pipeline import Pipeline
from voxbatch.stages.summary import SummaryOutcome, run_summary_stages
from voxbatch.store.db import Database

KEY = "test-key-0123456789"


def make_settings(home: Path, emu: Emulator, **mistral: Any) -> Settings:
    return Settings.model_validate(
        {
            "home": str(home),
            "mistral": {"base_url": emu.base_url, **mistral},
            "daemon": {"retry_initial_s": 0.01, "retry_max_s": 0.05, "retry_attempts": 3},
        }
    )


def summary_profile(**changes: Any) -> InboxProfile:
    return InboxProfile.model_validate({"summary": True, **changes})


def transcribe(settings: Settings, db: Database, clip: Path, out_dir: Path) -> int:
    """The real pipeline up to the saved transcript (it publishes the transcript outputs);
    the summary stages are left to each test."""
    profile = summary_profile().model_copy(update={"summary": False})
    outcomes = asyncio.run(
        ProcessRun(Pipeline.open(settings, db)).process_paths(
            [clip], profile=profile, out_dir=out_dir
        )
    )
    assert outcomes[0].ok, outcomes[0].error
    assert outcomes[0].job_id is not None
    return outcomes[0].job_id


def summarise(
    settings: Settings, db: Database, job_id: int, profile: InboxProfile, out_dir: Path
) -> SummaryOutcome:
    return asyncio.run(
        run_summary_stages(settings, db, job_id, profile, out_dir, api_key=KEY, poll_s=0.01)
    )
