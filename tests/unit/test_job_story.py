"""One job's story with a fake transcriber and a real SQLite file: bought once, recorded once,
even when the store refuses the result for a while."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.fakes import FakeTranscriber
from tests.helpers.media import wav_bytes
from voxbatch.accounting.prices import stt_charge
from voxbatch.config import Settings
from voxbatch.process import ProcessRun
from voxbatch.stages.pipeline import Pipeline
from voxbatch.store.db import open_database

# ffmpeg decodes the one-second clips (a fake stands in for the provider, not for ffmpeg).
pytestmark = pytest.mark.media


def _rows(db_path: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(query).fetchall()


def _run(settings: Settings, fake: FakeTranscriber, *files: Path, busy_ms: int = 30_000) -> list:
    with open_database(settings.db_path, busy_timeout_ms=busy_ms) as db:
        pipeline = Pipeline.open(settings, db, transcriber=lambda: fake)
        run = ProcessRun(pipeline)
        return asyncio.run(
            run.process_paths(list(files), profile=settings.inbox[0], out_dir=settings.home / "out")
        )


def test_a_file_is_bought_once_and_a_copy_is_linked(isolated_env: Path, tmp_path: Path) -> None:
    settings = Settings(home=isolated_env)
    clip = tmp_path / "a.wav"
    clip.write_bytes(wav_bytes(1.5))
    copy = tmp_path / "copy of a.wav"
    copy.write_bytes(clip.read_bytes())
    fake = FakeTranscriber()
    outcomes = _run(settings, fake, clip, copy)
    assert [o.state for o in outcomes] == ["done", "done"]
    assert len(fake.requests) == 1  # the copy waited for the transcript and paid nothing
    assert outcomes[1].duplicate_of == outcomes[0].job_id
    model = settings.mistral.transcription_model
    assert _rows(
        settings.db_path, "SELECT kind, outcome, cost_usd, audio_seconds FROM api_call"
    ) == [("stt", "ok", str(stt_charge(settings.prices, model, 2).cost_usd), 2.0)]
    assert (settings.home / "out" / "a.txt").read_text().strip() == fake.text


def test_a_finished_transcription_waits_out_a_locked_store(
    isolated_env: Path, tmp_path: Path
) -> None:
    """The server has answered when another process takes the write lock for 1.5 s (past the
    busy timeout): the result is recorded once the lock is gone, and never bought again."""
    settings = Settings(home=isolated_env)
    clip = tmp_path / "b.wav"
    clip.write_bytes(wav_bytes(1.0))
    released = threading.Event()

    def hold_lock() -> None:
        conn = sqlite3.connect(settings.db_path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(1.5)
        conn.execute("COMMIT")
        conn.close()
        released.set()

    taken = threading.Event()

    def lock_now() -> None:
        threading.Thread(target=hold_lock, daemon=True).start()
        taken.wait(5)

    fake = FakeTranscriber(before_answer=lock_now)
    (outcome,) = _run(settings, fake, clip, busy_ms=100)
    assert released.is_set()
    assert outcome.state == "done", outcome.error
    assert len(fake.requests) == 1
    assert _rows(settings.db_path, "SELECT outcome FROM api_call") == [("ok",)]
    assert _rows(settings.db_path, "SELECT count(*) FROM transcript") == [(1,)]
