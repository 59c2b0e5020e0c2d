"""Constructors do no I/O: the Pipeline's start-up checks live in `Pipeline.open`, and the key
pause reads the key file off the event loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from tests.helpers.fakes import FakeTranscriber
from voxbatch.config import MistralSettings, Settings
from voxbatch.daemon.keypause import KeyPause
from voxbatch.errors import AuthError, ConfigError
from voxbatch.stages.pipeline import Pipeline
from voxbatch.store.db import open_database


def unpriced(home: Path, ffmpeg: str | None) -> Settings:
    model = MistralSettings(transcription_model="no-such-model")
    return Settings(home=home, mistral=model, ffmpeg=ffmpeg)


def test_the_pipeline_constructor_looks_nothing_up(isolated_env: Path) -> None:
    settings = unpriced(isolated_env, "/nonexistent/ffmpeg")
    with open_database(settings.db_path) as db:
        pipeline = Pipeline(settings, db, ffmpeg="ffmpeg")  # neither checked nor looked up
        assert pipeline.ffmpeg == "ffmpeg"
        with pytest.raises(ConfigError, match="ffmpeg"):
            Pipeline.open(settings, db)
        with pytest.raises(ConfigError, match="no price for model 'no-such-model'"):
            Pipeline.open(unpriced(isolated_env, None), db)


def test_the_key_pause_reads_the_key_file_off_the_event_loop(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = isolated_env / "key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text("new-key-0123456789\n")
    settings = Settings(home=isolated_env, mistral=MistralSettings(api_key_file=key_file))
    readers: list[str] = []
    read_key = Settings.api_key

    def spy(self: Settings, environ: object = None) -> str:
        readers.append(threading.current_thread().name)
        return read_key(self)

    monkeypatch.setattr(Settings, "api_key", spy)
    with open_database(settings.db_path) as db:
        fake = FakeTranscriber()
        pipeline = Pipeline(settings, db, ffmpeg="ffmpeg", transcriber=lambda: fake)
        keys = KeyPause(settings, db, pipeline, api_key="old-key-0123456789", wake=lambda: None)
        keys.pause_for_key(AuthError("401 unauthorized"))

        async def check() -> str:
            await keys.check_key()
            return threading.current_thread().name

        loop_thread = asyncio.run(check())
    assert readers and loop_thread not in readers
    assert not keys.paused and keys.api_key == "new-key-0123456789"
