"""recovery.set_aside_orphans: only originals in work/ that no job knows are set aside."""

from __future__ import annotations

from pathlib import Path

from voxbatch.config import Settings
from voxbatch.daemon.recovery import set_aside_orphans
from voxbatch.store import jobs, queue
from voxbatch.store.db import open_database


def test_files_a_job_knows_stay_in_work_and_the_others_are_set_aside(isolated_env: Path) -> None:
    settings = Settings(home=isolated_env)
    work = settings.folder("work")
    work.mkdir(parents=True)
    for name in ("1.wav", "2.wav", "3.wav", ".4.wav.copying"):
        (work / name).write_bytes(name.encode())
    with open_database(settings.db_path) as db:
        with db.write() as session:
            for n, sha in ((1, "aa"), (3, "bb")):
                job = jobs.create_job(
                    session, content_sha256=sha * 32, source_path=f"/in/{n}.wav", size_bytes=1,
                    inbox=None, output_dir=None, primary=None,
                )  # fmt: skip
                if n == 1:
                    queue.settle(job, work / "1.wav")  # queued, its original in work/
                else:  # a claim in flight: its move planned into work/
                    queue.plan_move(session, job, Path("/in/3.wav"), work / "3.wav", None)
        moved = set_aside_orphans(db, settings)
    quarantine = settings.folder("quarantine")
    assert moved == [(work / "2.wav", quarantine / "2.wav")]
    assert sorted(p.name for p in work.iterdir()) == [".4.wav.copying", "1.wav", "3.wav"]
    assert (quarantine / "2.wav").read_bytes() == b"2.wav"
    assert (quarantine / "2.wav.error.txt").exists()
