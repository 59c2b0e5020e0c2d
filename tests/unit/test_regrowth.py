"""Only originals the daemon filed in done/ are taken back when they grow (a guard: a file that
`voxbatch process` read in place stays where its owner put it, whatever happens to it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.helpers.fakes import FakeTranscriber
from tests.helpers.media import wav_bytes
from voxbatch.config import Settings
from voxbatch.daemon.regrowth import GrownOriginals
from voxbatch.media.ffmpeg import find_ffmpeg
from voxbatch.process import ProcessRun
from voxbatch.stages.pipeline import Pipeline
from voxbatch.store.db import open_database

pytestmark = pytest.mark.media  # ffmpeg decodes the clip


def test_a_processed_file_that_grows_in_place_is_never_moved(
    isolated_env: Path, tmp_path: Path
) -> None:
    settings = Settings(home=isolated_env)
    clip = tmp_path / "mine.wav"
    clip.write_bytes(wav_bytes(1))
    with open_database(settings.db_path) as db:
        run = ProcessRun(Pipeline.open(settings, db, transcriber=FakeTranscriber))
        [outcome] = asyncio.run(
            run.process_paths([clip], profile=settings.inbox[0], out_dir=tmp_path / "out")
        )
        assert outcome.state == "done"
        with clip.open("ab") as grown:
            grown.write(b"\x00" * 64_000)
        woken: list[bool] = []
        grown_originals = GrownOriginals(
            settings.model_copy(
                update={"daemon": settings.daemon.model_copy(update={"stable_seconds": 0})}
            ),
            db,
            ffmpeg=find_ffmpeg(None),
            wake=lambda: woken.append(True),
        )
        asyncio.run(grown_originals.check())
    assert clip.exists() and not woken
