"""The database layer: migrations match the models, SQLite settings, locking, FTS, types."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import SQLModel, select

from voxbatch.errors import DatabaseError
from voxbatch.store.db import Database, open_database
from voxbatch.store.migrations import MIGRATIONS, Migration, applied_migrations, run_migrations
from voxbatch.store.models import ApiCall, Job, JobState, Transcript
from voxbatch.store.search import fts_query

HASH = "ab" * 32
INSERT_EVENT = "INSERT INTO event (at, kind, detail) VALUES ('2026-01-01 00:00:00', 'k', '')"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "voxbatch.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    with open_database(db_path) as database:
        yield database


def make_job(sha: str = HASH, **fields: Any) -> Job:
    return Job(
        content_sha256=sha,
        source_path=f"/in/{sha[:6]}.wav",
        source_name="a.wav",
        size_bytes=10,
        **fields,
    )


def add_transcript(db: Database, text: str, sha: str = HASH) -> int:
    with db.write() as session:
        job = make_job(sha)
        session.add(job)
        session.flush()
        assert job.id is not None
        transcript = Transcript(job_id=job.id, content_sha256=sha, model="m", text=text)
        session.add(transcript)
        session.flush()
        assert transcript.id is not None
        return transcript.id


# --- a migrated database is exactly what the models declare -------------------------------


def affinity(declared: str) -> str:
    """SQLite's column affinity rules (datatype3.html §3.1), in their order."""
    upper = declared.upper()
    if "INT" in upper:
        return "INTEGER"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in upper or not upper:
        return "BLOB"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def index_where(sql: str | None) -> str | None:
    match = re.search(r"\bWHERE\b(.*)$", sql or "", re.IGNORECASE | re.DOTALL)
    return " ".join(match.group(1).split()) if match else None


def schema_of(engine: sa.Engine) -> dict[str, Any]:
    """Everything about the user tables that matters for equality, in comparable form."""
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        index_sql = dict(
            conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index'").all()
        )
    schema: dict[str, Any] = {}
    for table in inspector.get_table_names():
        if table == "migrations" or table.startswith(("transcript_fts", "summary_fts")):
            continue
        schema[table] = {
            "columns": {
                col["name"]: (affinity(str(col["type"])), col["nullable"], col["default"])
                for col in inspector.get_columns(table)
            },
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign_keys": sorted(
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    tuple(sorted(fk["options"].items())),
                )
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (
                    ix["name"],
                    tuple(ix["column_names"]),
                    bool(ix["unique"]),
                    index_where(index_sql.get(ix["name"])),
                )
                for ix in inspector.get_indexes(table)
            ),
            "unique_constraints": sorted(
                (uc["name"] or "", tuple(uc["column_names"]))
                for uc in inspector.get_unique_constraints(table)
            ),
        }
    return schema


def declared_schema(tmp_path: Path, metadata: sa.MetaData) -> dict[str, Any]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'declared.db'}")
    try:
        metadata.create_all(engine)
        return schema_of(engine)
    finally:
        engine.dispose()


def test_migrated_database_matches_models(db: Database, tmp_path: Path) -> None:
    migrated = schema_of(db.engine)
    declared = declared_schema(tmp_path, SQLModel.metadata)
    assert set(migrated) == {
        "worker",
        "job",
        "transcript",
        "segment",
        "api_call",
        "event",
        "summary",
        "cost_estimate",
        "output_file",
        "part",
        "part_segment",
    }
    for table in declared:
        assert migrated.get(table) == declared[table], table
    assert migrated == declared
    # The comparison really sees the partial index's condition.
    assert (
        "ux_job_primary_hash",
        ("content_sha256",),
        True,
        "duplicate_of IS NULL AND state != 'failed'",
    ) in migrated["job"]["indexes"]


def _copy_metadata() -> sa.MetaData:
    copy = sa.MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(copy)
    return copy


def _add_column(md: sa.MetaData) -> None:
    md.tables["job"].append_column(sa.Column("priority", sa.Integer, nullable=True))


def _change_nullability(md: sa.MetaData) -> None:
    md.tables["event"].c.path.nullable = False


def _add_index(md: sa.MetaData) -> None:
    sa.Index("ix_job_stage", md.tables["job"].c.stage)


def _change_partial_where(md: sa.MetaData) -> None:
    job = md.tables["job"]
    (old,) = [ix for ix in job.indexes if ix.name == "ux_job_primary_hash"]
    job.indexes.discard(old)
    sa.Index(
        "ux_job_primary_hash",
        job.c.content_sha256,
        unique=True,
        sqlite_where=sa.text("duplicate_of IS NULL"),
    )


def _add_unique(md: sa.MetaData) -> None:
    md.tables["api_call"].append_constraint(sa.UniqueConstraint("request_id", name="uq_req"))


def _add_foreign_key(md: sa.MetaData) -> None:
    md.tables["event"].append_constraint(
        sa.ForeignKeyConstraint(["path"], ["job.source_path"], name="fk_path")
    )


@pytest.mark.parametrize(
    "mutate",
    [
        _add_column,
        _change_nullability,
        _add_index,
        _change_partial_where,
        _add_unique,
        _add_foreign_key,
    ],
)
def test_schema_comparison_catches_model_drift(
    db: Database, tmp_path: Path, mutate: Callable[[sa.MetaData], None]
) -> None:
    # A model change that no migration follows must make the equality test above fail.
    drifted = _copy_metadata()
    mutate(drifted)
    assert schema_of(db.engine) != declared_schema(tmp_path, drifted)


# --- opening: settings, file modes, errors -----------------------------------------------


def _pragmas(conn: sa.Connection) -> dict[str, Any]:
    return {
        name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
        for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
    }


def test_pragmas_in_effect_on_every_connection(db: Database) -> None:
    expected = {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 30000, "foreign_keys": 1}
    # Hold two connections at once, so the second is a freshly opened one.
    with db.read() as reader, db.write() as writer:
        assert _pragmas(reader.connection()) == expected
        assert _pragmas(writer.connection()) == expected


def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"), db.write() as session:
        session.add(Transcript(job_id=999, content_sha256=HASH, model="m", text="x"))


def test_file_modes(tmp_path: Path) -> None:
    path = tmp_path / "home" / "state" / "voxbatch.db"
    old_umask = os.umask(0o002)  # permissive: SQLite alone would create 0664 files
    try:
        with open_database(path) as db, db.write() as session:
            session.add(make_job())
            modes = {
                p.name: stat.S_IMODE(p.stat().st_mode)
                for p in path.parent.iterdir()
                if p.name.startswith("voxbatch.db")
            }
    finally:
        os.umask(old_umask)
    assert modes == {"voxbatch.db": 0o600, "voxbatch.db-wal": 0o600, "voxbatch.db-shm": 0o600}
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_existing_directory_kept_and_loose_file_tightened(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    path = tmp_path / "voxbatch.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    with open_database(path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_not_a_database_file(tmp_path: Path) -> None:
    path = tmp_path / "voxbatch.db"
    path.write_bytes(b"this is a text file, not SQLite\n" * 200)
    with pytest.raises(DatabaseError, match="not a database") as info:
        open_database(path)
    assert "move it aside" in info.value.hint


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(DatabaseError, match="cannot create database"):
        open_database(tmp_path / "blocker" / "voxbatch.db")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(DatabaseError, match="cannot create database"):
            open_database(tmp_path / "voxbatch.db")
    finally:
        tmp_path.chmod(0o700)


# --- migrations ----------------------------------------------------------------------------


def test_migrating_twice_is_a_no_op(db: Database, db_path: Path) -> None:
    assert applied_migrations(db) == [m.name for m in MIGRATIONS]
    with db.write() as session:
        session.add(make_job())
    before = schema_of(db.engine)
    assert run_migrations(db) == []
    with open_database(db_path) as again:
        assert applied_migrations(again) == [m.name for m in MIGRATIONS]
        assert schema_of(again.engine) == before
        with again.read() as session:
            assert len(session.exec(select(Job)).all()) == 1


def _names(db: Database, kind: str) -> set[str]:
    with db.read() as session:
        rows = session.connection().exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = ?", (kind,)
        )
        return {row[0] for row in rows}


def test_failed_migration_rolls_back_completely(db: Database) -> None:
    good = Migration("m900_good", {"sqlite": ("CREATE TABLE extra_a (x INTEGER)",)})
    bad = Migration(
        "m901_bad",
        {
            "sqlite": (
                "CREATE TABLE extra_b (x INTEGER)",
                "INSERT INTO extra_b VALUES (1)",
                "CREATE INDEX ix_extra_b ON extra_b (x)",
                "ALTER TABLE no_such_table ADD COLUMN y INTEGER",
            )
        },
    )
    with pytest.raises(sa.exc.OperationalError, match="no_such_table"):
        run_migrations(db, [*MIGRATIONS, good, bad])
    assert applied_migrations(db) == [*(m.name for m in MIGRATIONS), "m900_good"]
    assert "extra_a" in _names(db, "table")
    assert "extra_b" not in _names(db, "table")
    assert "ix_extra_b" not in _names(db, "index")

    fixed = Migration("m901_bad", {"sqlite": ("CREATE TABLE extra_b (x INTEGER)",)})
    assert run_migrations(db, [*MIGRATIONS, good, fixed]) == ["m901_bad"]
    assert "extra_b" in _names(db, "table")


def test_unknown_applied_migration_is_refused(db: Database) -> None:
    newer = Migration("m999_future", {"sqlite": ("CREATE TABLE future (x INTEGER)",)})
    run_migrations(db, [*MIGRATIONS, newer])
    with pytest.raises(DatabaseError, match="m999_future") as info:
        run_migrations(db)
    assert "newer voxbatch" in info.value.hint


def test_bad_migration_lists_are_refused(db: Database) -> None:
    with pytest.raises(DatabaseError, match="duplicate"):
        run_migrations(db, [*MIGRATIONS, MIGRATIONS[0]])
    pg_only = Migration("m902_pg", {"postgresql": ("SELECT 1",)})
    with pytest.raises(DatabaseError, match="no SQL for sqlite"):
        run_migrations(db, [*MIGRATIONS, pg_only])
    assert applied_migrations(db) == [m.name for m in MIGRATIONS]


# --- transactions and locking --------------------------------------------------------------


def _raw(path: Path, timeout: float = 0.0) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=timeout, isolation_level=None)


def test_write_sends_begin_immediate_and_read_begin_deferred(db: Database) -> None:
    sent: list[str] = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    with db.write() as session:
        session.connection().exec_driver_sql("SELECT 'in write'")
    assert sent[-3:] == ["PRAGMA query_only = OFF", "BEGIN IMMEDIATE", "SELECT 'in write'"]
    with db.read() as session:
        session.connection().exec_driver_sql("SELECT 'in read'")
    assert sent[-3:] == ["PRAGMA query_only = ON", "BEGIN DEFERRED", "SELECT 'in read'"]


def test_write_holds_the_write_lock_from_the_start(db: Database, db_path: Path) -> None:
    other = _raw(db_path)
    try:
        with db.write() as session:
            assert session.connection().connection.driver_connection.in_transaction
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        with db.read() as session:
            session.exec(select(Job)).all()
            other.execute("BEGIN IMMEDIATE")  # a reader does not block writers
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_write_commits_and_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as session:
        session.add(make_job("01" * 32))
        session.flush()
        raise RuntimeError("boom")
    with db.write() as session:
        job = make_job("02" * 32)
        session.add(job)
    assert job.id is not None  # still usable after commit
    with db.read() as session:
        assert [j.content_sha256 for j in session.exec(select(Job)).all()] == ["02" * 32]


def test_read_refuses_writes(db: Database) -> None:
    with pytest.raises(sa.exc.OperationalError, match="readonly"), db.read() as session:
        session.add(make_job())
        session.flush()
    with db.write() as session:  # the same pooled connection can write again afterwards
        session.add(make_job())


def _in_thread(target: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_second_writer_waits_for_the_first(db_path: Path) -> None:
    with open_database(db_path) as first, open_database(db_path) as second:
        holding = threading.Event()
        order: list[str] = []

        def hold_lock() -> None:
            with first.write() as session:
                holding.set()
                time.sleep(0.5)
                session.add(make_job("01" * 32))
                order.append("first")

        thread, errors = _in_thread(hold_lock)
        assert holding.wait(5)
        started = time.monotonic()
        with second.write() as session:
            waited = time.monotonic() - started
            session.add(make_job("02" * 32))
            order.append("second")
        thread.join(5)
        assert errors == []
        assert order == ["first", "second"]
        assert waited > 0.3


def test_busy_timeout_expiry_is_a_database_error(db_path: Path) -> None:
    with (
        open_database(db_path) as first,
        open_database(db_path, busy_timeout_ms=100) as second,
        first.write(),
    ):
        started = time.monotonic()
        with pytest.raises(DatabaseError, match="locked"), second.write():
            pass
        assert 0.05 < time.monotonic() - started < 5


def test_deferred_read_then_write_fails_but_write_transaction_does_not(db_path: Path) -> None:
    with open_database(db_path) as first, open_database(db_path) as second:
        # The hazard: a deferred transaction reads, someone else commits, the upgrade to a
        # write fails at once with SQLITE_BUSY despite a generous busy timeout.
        reader, writer = _raw(db_path, timeout=10), _raw(db_path, timeout=10)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM job").fetchall()
            writer.execute(INSERT_EVENT)
            started = time.monotonic()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                reader.execute(INSERT_EVENT)
            assert time.monotonic() - started < 1
        finally:
            reader.close()
            writer.close()

        # voxbatch's write(): the other writer waits instead, and nothing fails.
        has_read = threading.Event()

        def read_then_write() -> None:
            with first.write() as session:
                session.exec(select(Job)).all()
                has_read.set()
                time.sleep(0.3)
                session.add(make_job("01" * 32))

        thread, errors = _in_thread(read_then_write)
        assert has_read.wait(5)
        with second.write() as session:
            session.add(make_job("02" * 32))
        thread.join(5)
        assert errors == []
        with second.read() as session:
            assert len(session.exec(select(Job)).all()) == 2


def test_partial_unique_index_allows_one_paying_job_per_hash(db: Database) -> None:
    with db.write() as session:
        failed = make_job(state=JobState.failed)
        session.add(failed)
        session.add(make_job())
        session.flush()
        session.add(make_job(duplicate_of=failed.id))
    with pytest.raises(sa.exc.IntegrityError, match="UNIQUE"), db.write() as session:
        session.add(make_job())


# --- full-text search -----------------------------------------------------------------------


def search(db: Database, text: str) -> list[tuple[int, str]]:
    with db.read() as session:
        rows = session.connection().exec_driver_sql(
            "SELECT rowid, snippet(transcript_fts, 0, '[', ']', '…', 8) FROM transcript_fts"
            " WHERE transcript_fts MATCH ? ORDER BY rank",
            (fts_query(text),),
        )
        return [(row[0], row[1]) for row in rows]


def test_fts_finds_inserted_transcripts_with_snippets(db: Database) -> None:
    first = add_transcript(db, "The quick brown fox jumps over the lazy dog", "01" * 32)
    second = add_transcript(db, "Un café crème, s'il vous plaît", "02" * 32)
    assert search(db, "brown fox") == [(first, "The quick [brown] [fox] jumps over the lazy…")]
    assert [row for row, _ in search(db, "cafe creme")] == [second]  # diacritics removed
    assert [row for row, _ in search(db, "jum")] == [first]  # last word is a prefix
    assert search(db, "brown cat") == []


def test_fts_follows_updates_and_deletes(db: Database) -> None:
    tid = add_transcript(db, "alpha beta")
    with db.write() as session:
        transcript = session.get(Transcript, tid)
        assert transcript is not None
        transcript.text = "gamma delta"
    assert search(db, "alpha") == []
    assert [row for row, _ in search(db, "gamma")] == [tid]
    with db.write() as session:
        session.delete(session.get(Transcript, tid))
    assert search(db, "gamma") == []
    with db.write() as session:  # the external-content index agrees with its table
        session.connection().exec_driver_sql(
            "INSERT INTO transcript_fts (transcript_fts) VALUES ('integrity-check')"
        )


def test_fts_query_quotes_everything() -> None:
    assert fts_query('hello "world') == '"hello" """world"*'
    assert fts_query("AND( -x", prefix_last=False) == '"AND(" "-x"'
    assert fts_query("  \t\n") == '""'
    assert fts_query("a\x00b") == '"a" "b"*'


_SYNTAX = [
    '"',
    "'",
    "*",
    "(",
    ")",
    "-",
    "+",
    ":",
    "^",
    "{",
    "}",
    ",",
    ".",
    " ",
    "\x00",
    "AND",
    "OR",
    "NOT",
    "NEAR",
    "NEAR(",
    "text:",
    "a",
    "é",
    "\u0300",
    "\U0001f600",
]


def test_fts_query_survives_hostile_input(db: Database) -> None:
    add_transcript(db, "hostile input or syntax should never break the search")

    @settings(max_examples=400, deadline=None)
    @given(
        text=st.one_of(st.text(), st.lists(st.sampled_from(_SYNTAX), max_size=12).map("".join)),
        prefix_last=st.booleans(),
    )
    def check(text: str, prefix_last: bool) -> None:
        with db.read() as session:
            session.connection().exec_driver_sql(
                "SELECT rowid FROM transcript_fts WHERE transcript_fts MATCH ?",
                (fts_query(text, prefix_last=prefix_last),),
            ).all()

    check()
    assert search(db, 'break" OR (search') != []  # operators are words, all must appear
    assert search(db, "never NOT") == []


# --- types ------------------------------------------------------------------------------------


def test_decimal_money_round_trips_exactly(db: Database) -> None:
    cost = Decimal("0.000123456789012345678901234567")
    with db.write() as session:
        call = ApiCall(kind="stt", model="m", cost_usd=cost)
        session.add(call)
    with db.read() as session:
        stored = session.connection().exec_driver_sql("SELECT cost_usd FROM api_call").scalar()
        loaded = session.get(ApiCall, call.id)
    assert stored == "0.000123456789012345678901234567"
    assert loaded is not None and loaded.cost_usd == cost and str(loaded.cost_usd) == str(cost)


def test_float_money_is_refused(db: Database) -> None:
    with pytest.raises(sa.exc.StatementError, match="must be Decimal"), db.write() as session:
        session.add(ApiCall(kind="stt", model="m", cost_usd=0.1))  # type: ignore[arg-type]
    with db.read() as session:
        assert session.exec(select(ApiCall)).all() == []


def test_datetimes_come_back_utc_aware(db: Database) -> None:
    local = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    with db.write() as session:
        job = make_job(created_at=local, not_before=local)
        session.add(job)
    with db.read() as session:
        loaded = session.get(Job, job.id)
    assert loaded is not None
    for value in (loaded.created_at, loaded.not_before, loaded.updated_at):
        assert value is not None and value.tzinfo is UTC
    assert loaded.created_at == local and loaded.created_at.hour == 10
    with pytest.raises(sa.exc.StatementError, match="naive"), db.write() as session:
        session.add(make_job("03" * 32, created_at=datetime(2026, 1, 1)))
