"""The database handle: opening, connection settings, read and write transactions.

SQLite rules (see docs/reliability.md §2): WAL, `synchronous=FULL` (a commit lost on power
failure could mean paying twice), a 30 s busy timeout, foreign keys on, and `BEGIN IMMEDIATE`
for every write transaction — a deferred transaction that reads and then writes gets
SQLITE_BUSY at once instead of waiting. pysqlite's own transaction handling is switched off
so that voxbatch sends BEGIN itself. Files are 0600 and a directory voxbatch creates is 0700.

There is no global engine: `open_database()` returns a `Database` that is passed down.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session

from voxbatch.errors import DatabaseError

BUSY_TIMEOUT_MS = 30_000

_BEGIN_OPTION = "voxbatch_begin"  # execution option: which BEGIN a connection sends
_READ, _WRITE = "read", "write"


class Database:
    """An open voxbatch database. Use `write()` to change it and `read()` to query it."""

    def __init__(self, engine: sa.Engine, *, path: Path | None = None) -> None:
        self.engine = engine
        self.path = path
        # Both share the engine's pool; the option tells the `begin` hook which BEGIN to send.
        self._write_engine = engine.execution_options(**{_BEGIN_OPTION: _WRITE})
        self._read_engine = engine.execution_options(**{_BEGIN_OPTION: _READ})

    @property
    def url(self) -> str:
        """Where the database lives, password hidden (for messages)."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: `BEGIN IMMEDIATE` on entry (waits up to the busy timeout for
        other writers), commit when the block ends, rollback if it raises.

        Objects stay usable after the block (no expiry on commit).
        """
        with Session(self._write_engine, expire_on_commit=False) as session, session.begin():
            try:
                # Take the write lock now, not at the first flush: the whole block is serialized.
                session.connection()
            except sa.exc.OperationalError as exc:
                raise DatabaseError(
                    f"cannot start a write transaction on {self.url}: {exc.orig}",
                    hint="another process may hold the database lock; check for a stuck voxbatch",
                ) from exc
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (deferred BEGIN): one consistent snapshot, no locks held
        against writers. Any write inside it fails, so a read cannot silently turn into
        the read-then-write upgrade that SQLite refuses under contention."""
        with Session(self._read_engine, expire_on_commit=False) as session, session.begin():
            yield session

    def close(self) -> None:
        """Close pooled connections (the database stays usable; new ones open on demand)."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_database(path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Database:
    """Open (creating if needed) the SQLite database at `path` and apply pending migrations.

    Missing parent directories are created 0700, a new database file 0600; the WAL and
    shared-memory files SQLite creates take the database file's mode.
    Raises DatabaseError when the file cannot be created, opened or migrated.
    """
    path = Path(path).absolute()
    try:
        _make_private_dirs(path.parent)
        _create_private_file(path)
    except OSError as exc:
        raise DatabaseError(
            f"cannot create database {path}: {exc.strerror or exc}",
            hint="check that the directory exists and is writable by the voxbatch user",
        ) from exc
    engine = sa.create_engine(sa.URL.create("sqlite", database=str(path)))
    _configure_sqlite(engine, busy_timeout_ms)
    db = Database(engine, path=path)
    try:
        _check_journal_mode(db)
        _migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def _configure_sqlite(engine: sa.Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level: pysqlite must not send BEGIN on its own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first, so that switching to WAL waits for other processes too.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get(_BEGIN_OPTION) == _READ:
            conn.exec_driver_sql("PRAGMA query_only = ON")
            conn.exec_driver_sql("BEGIN DEFERRED")
        else:
            # Anything not explicitly a read may write, so it takes the write lock up front.
            conn.exec_driver_sql("PRAGMA query_only = OFF")
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _check_journal_mode(db: Database) -> None:
    try:
        with db.read() as session:
            mode = session.connection().exec_driver_sql("PRAGMA journal_mode").scalar()
    except sa.exc.DBAPIError as exc:
        raise _open_error(db, exc) from exc
    if str(mode).lower() != "wal":
        raise DatabaseError(
            f"cannot enable WAL journaling on {db.path} (journal_mode is {mode})",
            hint="keep the database on a local filesystem, not a network mount",
        )


def _migrate(db: Database) -> None:
    from voxbatch.store.migrations import run_migrations  # migrations imports Database for typing

    try:
        run_migrations(db)
    except sa.exc.DBAPIError as exc:
        raise _open_error(db, exc) from exc


def _open_error(db: Database, exc: sa.exc.DBAPIError) -> DatabaseError:
    reason = str(exc.orig)
    if "not a database" in reason:
        hint = "the file is not a SQLite database; move it aside or point voxbatch elsewhere"
    elif "readonly" in reason or "unable to open" in reason:
        hint = "check that the database file and its directory are writable by voxbatch"
    else:
        hint = ""
    return DatabaseError(f"cannot open database {db.path}: {reason}", hint=hint)


def _make_private_dirs(directory: Path) -> None:
    """Create the missing directories of `directory` with mode 0700 (existing ones untouched)."""
    missing: list[Path] = []
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for new_dir in reversed(missing):
        try:
            new_dir.mkdir(mode=0o700)
        except FileExistsError:
            continue  # created concurrently; leave its mode to whoever made it
        new_dir.chmod(0o700)  # the umask may have removed bits from 0700


def _create_private_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would follow the umask), and
    tighten an existing voxbatch-owned file or sidecar that is readable by others."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.close(fd)
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            info = file.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077 and info.st_uid == os.geteuid():
            file.chmod(0o600)
