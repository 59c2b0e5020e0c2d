"""`voxbatch prune --older-than DAYS`: old done jobs' files and rows go, the ledger stays."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import cli_for
from tests.helpers.daemon import rows
from tests.helpers.media import wav_bytes
from voxbatch.emulator import Emulator

pytestmark = pytest.mark.media  # they run ffmpeg

TABLES = ("job", "transcript", "segment", "summary", "event", "api_call", "cost_estimate")


def stored(when: datetime) -> str:
    """A time as the store writes it: naive UTC."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def tree(home: Path) -> set[str]:
    found = set()
    for folder in ("done", "failed", "outbox", "work", "inbox"):
        for dirpath, _dirs, files in os.walk(home / folder):
            found.update(os.path.relpath(os.path.join(dirpath, f), home) for f in files)
    return found


def counts(home: Path) -> dict[str, int]:
    return {t: rows(home, f"SELECT COUNT(*) FROM {t}")[0][0] for t in TABLES}


def test_prune_dry_run_then_real_run(emulator: Emulator, isolated_env: Path) -> None:
    home = isolated_env
    inbox = home / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "old.wav").write_bytes(wav_bytes(2.0, tag=1))
    (inbox / "sub" / "old copy.wav").write_bytes(wav_bytes(2.0, tag=1))  # same audio
    (inbox / "guarded.wav").write_bytes(wav_bytes(2.0, tag=2))
    (inbox / "recent.wav").write_bytes(wav_bytes(2.0, tag=3))
    (inbox / "broken.wav").write_bytes(b"RIFF not audio at all" * 50)
    cli = cli_for(emulator, VOXBATCH_DAEMON__STABLE_SECONDS="0.2")
    cli("run", "--once", ok=None)
    ids = dict(rows(home, "SELECT source_name, id FROM job"))
    assert rows(home, "SELECT state FROM job WHERE source_name = 'broken.wav'") == [("failed",)]
    old = stored(datetime.now(UTC) - timedelta(days=40))
    with sqlite3.connect(home / "voxbatch.db") as conn:
        conn.execute("UPDATE job SET finished_at = ?, created_at = ?", (old, old))
        conn.execute("UPDATE job SET finished_at = ? WHERE source_name = 'recent.wav'",
                     (stored(datetime.now(UTC)),))  # fmt: skip
        # A copy of guarded.wav's audio still queued: its whole group must stay.
        conn.execute(
            "INSERT INTO job (content_sha256, duplicate_of, source_path, source_name, size_bytes,"
            " state, attempts, requeues, created_at, updated_at) SELECT content_sha256, id,"
            " source_path, 'guarded again.wav', size_bytes, 'queued', 0, 0, created_at,"
            " updated_at FROM job WHERE source_name = 'guarded.wav'"
        )
    total = cli.json("costs")["total_usd"]
    before_files, before_rows = tree(home), counts(home)
    old_files = {
        "done/old.wav",
        "done/sub/old copy.wav",
        *(f"outbox/old.{ext}" for ext in ("txt", "srt", "vtt", "json")),
        *(f"outbox/sub/old copy.{ext}" for ext in ("txt", "srt", "vtt", "json")),
    }
    assert old_files <= before_files

    dry = cli("prune", "--older-than", "30", "--dry-run")
    listed = {line.removeprefix("would remove: ") for line in dry.stdout.splitlines()}
    assert listed == {str(home / f) for f in old_files}
    assert "would remove 2 job(s)" in dry.stderr
    assert tree(home) == before_files and counts(home) == before_rows  # nothing changed

    real = cli("prune", "--older-than", "30")
    assert "removed 2 job(s)" in real.stderr
    assert tree(home) == before_files - old_files
    left = {name for (name,) in rows(home, "SELECT source_name FROM job")}
    assert left == {"guarded.wav", "guarded again.wav", "recent.wav", "broken.wav"}
    assert rows(home, "SELECT COUNT(*) FROM transcript WHERE job_id IN (?, ?)",
                ids["old.wav"], ids["old copy.wav"]) == [(0,)]  # fmt: skip
    assert rows(home, "SELECT COUNT(*) FROM event WHERE job_id = ?", ids["old.wav"]) == [(0,)]
    after = counts(home)
    assert after["api_call"] == before_rows["api_call"]  # the ledger is kept
    assert after["segment"] < before_rows["segment"]
    assert cli.json("costs")["total_usd"] == total
    assert (home / "failed" / "broken.wav").exists()
    with sqlite3.connect(home / "voxbatch.db") as conn:  # the search index follows (raises if not)
        conn.execute("INSERT INTO transcript_fts (transcript_fts) VALUES ('integrity-check')")
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert len(cli.json("jobs")) == 4
    # Nothing is left to prune; a second run changes nothing.
    assert "removed 0 job(s)" in cli("prune", "--older-than", "30").stderr
    assert tree(home) == before_files - old_files


def test_prune_needs_a_number_of_days(isolated_env: Path, emulator: Emulator) -> None:
    cli = cli_for(emulator)
    assert cli("prune", ok=None).exit_code == 2
    assert cli("prune", "--older-than", "0", ok=None).exit_code == 2
