"""Where results go: the same audio again publishes over its own files, other audio beside them,
and every job records the files it wrote."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.helpers.fakes import FakeTranscriber
from tests.helpers.media import wav_bytes
from voxbatch.config import Settings
from voxbatch.process import FileOutcome, ProcessRun
from voxbatch.stages.pipeline import Pipeline
from voxbatch.store.db import open_database
from voxbatch.store.outputs import outputs_for

# ffmpeg decodes the clips (a fake stands in for the provider, not for ffmpeg).
pytestmark = pytest.mark.media

FORMATS = ("txt", "srt", "vtt", "json")


def _process(settings: Settings, out: Path, *files: Path, text: str = "hello") -> list[FileOutcome]:
    with open_database(settings.db_path) as db:
        run = ProcessRun(
            Pipeline.open(settings, db, transcriber=lambda: FakeTranscriber(text=text))
        )
        return asyncio.run(run.process_paths(list(files), profile=settings.inbox[0], out_dir=out))


def _recorded(settings: Settings, job_id: int | None) -> list[str]:
    assert job_id is not None
    with open_database(settings.db_path) as db, db.read() as session:
        return outputs_for(session, job_id)


def test_the_same_file_again_republishes_over_its_own_outputs(
    isolated_env: Path, tmp_path: Path
) -> None:
    settings = Settings(home=isolated_env)
    out = tmp_path / "out"
    clip = tmp_path / "talk.wav"
    clip.write_bytes(wav_bytes(1.0))
    [first] = _process(settings, out, clip)
    [second] = _process(settings, out, clip)  # a new job, linked to the first one's transcript
    assert (first.state, second.state) == ("done", "done")
    assert second.duplicate_of == first.job_id
    assert sorted(p.name for p in out.iterdir()) == sorted(f"talk.{f}" for f in FORMATS)
    assert [p.name for p in second.outputs] == [f"talk.{f}" for f in FORMATS]
    assert json.loads((out / "talk.json").read_text())["job_id"] == second.job_id
    assert _recorded(settings, second.job_id) == [str(p) for p in second.outputs]
    # A copy under another name is the same audio, but gets files of its own name.
    copy = tmp_path / "copy.wav"
    copy.write_bytes(clip.read_bytes())
    [third] = _process(settings, out, copy)
    assert [p.name for p in third.outputs] == [f"copy.{f}" for f in FORMATS]
    assert json.loads((out / "talk.json").read_text())["job_id"] == second.job_id


def test_other_audio_of_the_same_name_never_overwrites(isolated_env: Path, tmp_path: Path) -> None:
    settings = Settings(home=isolated_env)
    out = tmp_path / "out"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one, two = tmp_path / "a" / "talk.wav", tmp_path / "b" / "talk.wav"
    one.write_bytes(wav_bytes(1.0))
    two.write_bytes(wav_bytes(2.0))
    [first] = _process(settings, out, one, text="first words")
    [second] = _process(settings, out, two, text="second words")
    [again] = _process(settings, out, two, text="unused: linked")
    assert [p.name for p in first.outputs] == [f"talk.{f}" for f in FORMATS]
    suffixed = [f"talk-{second.job_id}.{f}" for f in FORMATS]
    assert [p.name for p in second.outputs] == suffixed
    # The second audio run again goes back to its own (suffixed) files.
    assert [p.name for p in again.outputs] == suffixed
    assert (out / "talk.txt").read_text() == "first words\n"
    assert (out / f"talk-{second.job_id}.txt").read_text() == "second words\n"
    assert len(list(out.iterdir())) == 2 * len(FORMATS)
    # Files voxbatch did not record are someone else's too.
    (out / "notes.txt").write_text("mine\n")
    notes = tmp_path / "notes.wav"
    notes.write_bytes(wav_bytes(1.5))
    [third] = _process(settings, out, notes)
    assert (out / "notes.txt").read_text() == "mine\n"
    assert third.outputs[0].name == f"notes-{third.job_id}.txt"
