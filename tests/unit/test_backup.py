"""`voxbatch backup FILE` and the backup taken before migrations change a database."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import Cli
from voxbatch.store.db import Database, _configure_sqlite, open_database
from voxbatch.store.migrations import MIGRATIONS, applied_migrations, run_migrations

EVENT = "INSERT INTO event (at, kind, detail) VALUES ('2026-01-01 00:00:00', ?, ?)"


def fill(path: Path, rows: int, size: int = 2000) -> None:
    with sqlite3.connect(path) as conn:
        conn.executemany(EVENT, (("before", f"{i:08d}" + "x" * size) for i in range(rows)))


def test_backup_while_another_process_writes(isolated_env: Path, tmp_path: Path) -> None:
    db_path = isolated_env / "voxbatch.db"
    open_database(db_path).close()
    fill(db_path, 20_000)  # ~40 MB: the copy takes a while
    stop = threading.Event()
    written_during: list[int] = []

    def writer() -> None:
        conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
        n = 0
        while not stop.is_set():
            conn.execute(EVENT, ("during", str(n)))  # each one its own commit
            n += 1
            written_during.append(n)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written_during) < 50:  # the writer is under way before the backup begins
            stop.wait(0.01)
        at_start = len(written_during)
        result = Cli({})("backup", str(tmp_path / "copy.db"))
        at_end = len(written_during)
    finally:
        stop.set()
        thread.join()
    assert at_end > at_start, "the writer was blocked during the backup"
    assert "backed up" in result.stderr
    copy = tmp_path / "copy.db"
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        before = conn.execute("SELECT COUNT(*) FROM event WHERE kind = 'before'").fetchone()[0]
        during = conn.execute("SELECT COUNT(*) FROM event WHERE kind = 'during'").fetchone()[0]
    assert before == 20_000
    assert during >= at_start  # every row committed before the backup began
    assert not (tmp_path / "copy.db-wal").exists()


def test_backup_refuses_to_overwrite_without_force(isolated_env: Path, tmp_path: Path) -> None:
    open_database(isolated_env / "voxbatch.db").close()
    target = tmp_path / "copy.db"
    target.write_text("precious")
    result = Cli({})("backup", str(target), ok=None)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {target} exists; use --force to replace it"
    ]
    assert target.read_text() == "precious"
    Cli({})("backup", str(target), "--force")
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert list(tmp_path.glob(".*partial")) == []


def test_backup_into_a_missing_folder_is_a_usage_error(isolated_env: Path, tmp_path: Path) -> None:
    open_database(isolated_env / "voxbatch.db").close()
    result = Cli({})("backup", str(tmp_path / "nowhere" / "copy.db"), ok=None)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "no folder" in result.stderr


def test_backup_of_postgresql_says_pg_dump(isolated_env: Path, tmp_path: Path) -> None:
    result = Cli({"VOXBATCH_DATABASE": "postgresql://127.0.0.1/test"})(
        "backup", str(tmp_path / "x.db"), ok=None
    )
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "pg_dump" in result.stderr


def _older_database(path: Path, keep: int) -> None:
    """A database as an older voxbatch left it: only the first `keep` migrations applied."""
    engine = sa.create_engine(sa.URL.create("sqlite", database=str(path)))
    _configure_sqlite(engine, 30_000)
    with Database(engine, path=path) as db:
        run_migrations(db, MIGRATIONS[:keep])
    with sqlite3.connect(path) as conn:
        conn.execute(EVENT, ("old", "from the older version"))


def test_a_backup_is_taken_before_migrations_change_a_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "voxbatch.db"
    _older_database(path, len(MIGRATIONS) - 1)
    caplog.set_level(logging.INFO)
    with open_database(path) as db:
        assert applied_migrations(db) == [m.name for m in MIGRATIONS]
    version = MIGRATIONS[-1].name.split("_")[0]
    backups = list(tmp_path.glob(f"voxbatch.db.pre-{version}-*.bak"))
    assert len(backups) == 1, list(tmp_path.iterdir())
    with sqlite3.connect(backups[0]) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM migrations")]
        assert names == [m.name for m in MIGRATIONS[:-1]]  # as it was before
        assert conn.execute("SELECT detail FROM event").fetchall() == [("from the older version",)]
    said = [r.getMessage() for r in caplog.records if str(backups[0]) in r.getMessage()]
    assert len(said) == 1
    # Opened again: nothing to migrate, no new backup.
    open_database(path).close()
    assert len(list(tmp_path.glob("*.bak"))) == 1


def test_a_new_database_needs_no_backup(tmp_path: Path) -> None:
    open_database(tmp_path / "voxbatch.db").close()
    assert list(tmp_path.glob("*.bak")) == []
