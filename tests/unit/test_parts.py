"""Parts: where a long file is cut (pure), and what the store keeps of each part."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxbatch.config import Settings
from voxbatch.daemon import recovery
from voxbatch.documents import TimedText
from voxbatch.media.spool import spool_path_for
from voxbatch.stages.cutting import CutPlan, max_part_seconds, on_grid, part_count
from voxbatch.store import calls, jobs, parts
from voxbatch.store.db import Database, open_database
from voxbatch.store.models import CallKind, Job, JobState


@pytest.mark.parametrize(
    ("duration", "free", "expected"),
    [
        (7200, 8, 8),  # the SPEC's example: 8 parts of 15 min, not 12 of 10 with 4 waiting
        (7200, 1, 4),  # one session free: as few as the hard limit allows, in turn
        (7200, 64, 12),  # never shorter than the minimum
        (900, 8, 1),  # under two minimum lengths: one session
        (540, 8, 1),
    ],
)
def test_part_count_keeps_the_free_sessions_busy(duration: float, free: int, expected: int) -> None:
    assert part_count(duration, sessions_free=free, min_part=600, max_part=1800) == expected


def test_a_part_is_never_longer_than_the_model_window() -> None:
    assert max_part_seconds(1800, 5242.88) == 1800
    assert max_part_seconds(7200, 5242.88) == pytest.approx(0.9 * 5242.88)
    plan = CutPlan.for_file(6 * 3600, sessions_free=1, min_part=600, max_part=4000)
    # Cuts move by up to `reach` to find a silence: parts are planned short enough for that.
    assert plan.length + 2 * plan.reach <= plan.max_part


def test_a_cut_goes_in_the_longest_silence_near_its_place_on_the_token_grid() -> None:
    plan = CutPlan(length=600, max_part=1800)
    silences = [(580.0, 580.5), (603.03, 605.0), (700.0, 710.0)]
    # Not decided until the decoding is past the place by half a part.
    assert plan.next_cut(0, silences, decoded=800, ended=False) is None
    cut = plan.next_cut(0, silences, decoded=900, ended=False)
    assert (
        cut == on_grid((603.03 + 605.0) / 2) and cut is not None and round(cut / 0.08, 6) % 1 == 0
    )
    # Far from the file's expected end, a cut is decided once its silences are known, so the
    # next part starts sooner; near it, only once it is clear the file goes on.
    known = CutPlan(length=600, max_part=1800, expected_s=7200)
    assert known.next_cut(0, silences, decoded=640, ended=False) == cut
    assert known.next_cut(6000, [], decoded=6640, ended=False) is None
    # No silence within reach: cut at the place itself.
    assert plan.next_cut(0, [(100.0, 200.0)], decoded=900, ended=False) == 600
    # At the end of the file the rest is the last part, unless it would be too long.
    assert plan.next_cut(600, [], decoded=1400, ended=True) is None
    assert plan.next_cut(0, [], decoded=2000, ended=True) == 600


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(tmp_path / "voxbatch.db")


def job_in_parts(db: Database) -> tuple[int, list[int]]:
    with db.write() as session:
        job = jobs.create_job(
            session, content_sha256="a" * 64, source_path="/x/a.wav", size_bytes=1, inbox=None,
            output_dir=None, primary=None,
        )  # fmt: skip
        jobs.start_streaming(session, job, 300.0, "probed")
        assert job.id is not None
        ids = []
        for idx, (start, end) in enumerate([(0.0, 100.0), (100.0, 200.0), (200.0, None)]):
            part = parts.add_part(session, job.id, idx, start)
            assert part.id is not None
            if end is not None:
                parts.set_end(session, part.id, end)
            ids.append(part.id)
        return job.id, ids


def test_what_a_rerun_must_buy_again_is_what_the_parts_have_not_heard(db: Database) -> None:
    job_id, (first, second, _) = job_in_parts(db)
    with db.write() as session:
        call = calls.start_call(session, job_id=job_id, kind=CallKind.stt, model="m")
        assert call.id is not None
        parts.begin_session(session, second, call.id, 100.0)
        parts.record_heard(session, second, [TimedText(100.5, 140.0, " one")], " one two")
        parts.finish(
            session, first, from_s=0.0, text=" zero", language="en",
            segments=[TimedText(1.0, 99.0, " zero")],
        )  # fmt: skip
        job = session.get_one(Job, job_id)
        # Part 2 resumes at 140 s (60 s left), part 3 has not started (100 s).
        assert parts.remaining_seconds(session, job) == pytest.approx(160.0)
        # Its session could have sent its own stretch at most, not the whole file.
        assert parts.session_span(session, call.id, job) == pytest.approx(100.0)
        assert parts.resume_point(session, session.get_one(parts.Part, second)).from_s == 140.0
        heard = parts.heard_so_far(session, job_id)
        assert heard is not None and (heard.parts, heard.done) == (3, 1)
        assert heard.text == " zero one two"  # the running session's words, once each
        parts.cut_short(session, second)
        heard = parts.heard_so_far(session, job_id)
        assert heard is not None and heard.text == " zero one"  # after the cut: its segments


def test_start_up_removes_the_spool_of_jobs_no_longer_running(db: Database, tmp_path: Path) -> None:
    running, _ = job_in_parts(db)
    with db.write() as session:
        ended = jobs.create_job(
            session, content_sha256="b" * 64, source_path="/x/b.wav", size_bytes=1, inbox=None,
            output_dir=None, primary=None,
        )  # fmt: skip
        jobs.set_state(session, ended, JobState.done)
        assert ended.id is not None
        ended_id = ended.id
    settings = Settings(home=tmp_path)
    kept, gone = spool_path_for(tmp_path, running), spool_path_for(tmp_path, ended_id)
    stray = kept.with_name("999.pcm")  # no such job
    for path in (kept, gone, stray):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"\0" * 64)
    assert sorted(recovery.clear_spool(db, settings)) == sorted([gone, stray])
    assert kept.exists() and not gone.exists()
