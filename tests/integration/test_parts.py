"""Long files in parts, against the emulator with the real SDK (SPEC "Parts")."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from tests.helpers.media import tone_bursts
from voxbatch.config import InboxProfile, Settings
from voxbatch.emulator import Emulator, EmulatorConfig, running_emulator
from voxbatch.ops import reports
from voxbatch.process import FileOutcome, ProcessRun
from voxbatch.stages.pipeline import Pipeline
from voxbatch.store import jobs, transcripts
from voxbatch.store.db import Database, open_database
from voxbatch.store.models import ApiCall, Job, Part, PartSegment, PartState

pytestmark = pytest.mark.media

PCM_BYTES_PER_SECOND = 32_000


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", "test-key-0123456789")


def settings_for(home: Path, emu: Emulator, *, concurrency: int = 4, **parts: Any) -> Settings:
    return Settings.model_validate(
        {
            "home": str(home),
            "mistral": {"base_url": emu.base_url},
            "daemon": {
                "retry_initial_s": 0.01,
                "retry_max_s": 0.05,
                "retry_attempts": 3,
                "concurrency": concurrency,
            },
            "parts": {"min_seconds": 10, "max_seconds": 30, "silence_seconds": 0.3, **parts},
        }
    )


def process(settings: Settings, clip: Path, *, parts: bool = True) -> tuple[Database, FileOutcome]:
    settings.home.mkdir(parents=True, exist_ok=True)
    db = open_database(settings.db_path)
    profile = InboxProfile(parts=parts)
    [outcome] = asyncio.run(
        ProcessRun(Pipeline.open(settings, db)).process_paths(
            [clip], profile=profile, out_dir=settings.home / "out"
        )
    )
    assert outcome.ok, outcome.error
    return db, outcome


def transcript_of(db: Database, job_id: int) -> tuple[str, list[tuple[float, float]]]:
    with db.read() as session:
        job = session.get_one(Job, job_id)
        transcript = transcripts.transcript_for(session, job)
        assert transcript is not None and transcript.id is not None
        segments = transcripts.segments_for(session, transcript.id)
        return transcript.text, [(s.start or 0.0, s.end or 0.0) for s in segments]


def one_session(tmp_path: Path, clip: Path) -> tuple[str, list[tuple[float, float]]]:
    with running_emulator(EmulatorConfig()) as emu:
        db, outcome = process(settings_for(tmp_path / "single", emu), clip, parts=False)
        assert len(emu.records.sessions) == 1
    assert outcome.job_id is not None
    return transcript_of(db, outcome.job_id)


def test_a_long_file_in_parallel_parts_reads_as_one_session(tmp_path: Path) -> None:
    clip = tmp_path / "talk.wav"
    voiced = tone_bursts(clip, 90.0)  # 0.6 s of "speech", 0.4 s of silence
    expected_text, _ = one_session(tmp_path, clip)

    with running_emulator(EmulatorConfig()) as emu:
        settings = settings_for(tmp_path / "parts", emu, concurrency=4)
        db, outcome = process(settings, clip)
        sessions = list(emu.records.sessions)
    assert outcome.job_id is not None
    text, segments = transcript_of(db, outcome.job_id)
    # Four sessions busy: max(⌈90 / 25⌉, min(4, ⌊90 / 10⌋)) = 4 parts of about 22.5 s.
    with db.read() as session:
        rows = list(session.exec(select(Part).order_by(Part.idx)))
        left = session.exec(select(PartSegment)).all()
    assert [p.state for p in rows] == [PartState.done] * 4
    spans = [(p.start_s, p.end_s or 0.0) for p in rows]
    assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(90.0, abs=0.05)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end == start  # no gap, no overlap
        # Cut in a silence: between two bursts, never inside one.
        assert 0.6 < end % 1.0 < 1.0, spans
    assert all(end - start <= 30 for start, end in spans)
    assert len(sessions) == 4 and all(s.outcome == "done" for s in sessions)
    # No audio sent twice: the sessions together received the file once.
    assert sum(s.total_bytes for s in sessions) == pytest.approx(90 * PCM_BYTES_PER_SECOND, abs=64)
    assert max(s.total_bytes for s in sessions) <= 30 * PCM_BYTES_PER_SECOND
    # Stitched: the same words as one session; segments in order, without overlap, their times
    # from the file's start, every burst of "speech" inside one of them.
    assert text == expected_text
    assert segments == sorted(segments)
    for (_, end), (start, _) in itertools.pairwise(segments):
        assert end <= start
    for start, end in voiced:
        assert any(s - 0.02 <= start and end <= e + 0.02 for s, e in segments), (start, end)
    assert left == []  # moved into the transcript
    with db.read() as session:
        kinds = [e.kind for e in jobs.events_for(session, outcome.job_id)]
        shown = reports.job_detail(session, session.get_one(Job, outcome.job_id))
    assert kinds.count("parts_planned") == 1 and kinds.count("part_done") == 4
    # `show` lists the parts: their spans, states and sessions.
    assert [(p["part"], p["state"], p["sessions"]) for p in shown["parts"]] == [
        (n, "done", 1) for n in (1, 2, 3, 4)
    ]


def test_a_part_cut_short_resumes_after_its_last_recorded_segment(tmp_path: Path) -> None:
    clip = tmp_path / "talk.wav"
    # Pauses of 0.6 s: the emulator closes a segment at each (at most 1.2 s late).
    tone_bursts(clip, 40.0, off_s=0.6)
    expected_text, _ = one_session(tmp_path, clip)

    # The first session is dropped after 8 s of its audio.
    config = EmulatorConfig(drop_after_s=8.0, fault_sessions=1)
    with running_emulator(config) as emu:
        settings = settings_for(tmp_path / "parts", emu, concurrency=2)
        db, outcome = process(settings, clip)
        sessions = list(emu.records.sessions)
    assert outcome.job_id is not None
    text, _ = transcript_of(db, outcome.job_id)
    # Earlier sessions' words come from their segments, which carry no leading space.
    assert text.strip() == expected_text.strip()
    assert [s.outcome for s in sessions].count("dropped") == 1 and len(sessions) == 3
    received = sum(s.total_bytes for s in sessions) / PCM_BYTES_PER_SECOND
    # Only the stretch after the last segment heard was bought again (not the 8 s).
    assert 40.0 < received < 42.5
    with db.read() as session:
        events = jobs.events_for(session, outcome.job_id)
        paid = session.exec(select(ApiCall)).all()
    assert [e.kind for e in events].count("part_resumed") == 1
    [resumed] = [e.detail for e in events if e.kind == "part_resumed"]
    assert "after its last recorded segment" in resumed
    assert len(paid) == 3
