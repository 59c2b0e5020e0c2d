"""The database handle: opening, connection settings, read and write transactions.

SQLite rules (see docs/reliability.md §2): WAL, `synchronous=FULL` (a commit lost on power
failure could mean paying twice), a 30 s busy timeout, foreign keys on, and `BEGIN IMMEDIATE`
for every write transaction — a deferred transaction that reads and then writes gets
SQLITE_BUSY at once instead of waiting. pysqlite's own transaction handling is switched off
so that voxbatch sends BEGIN itself. Files are 0600 and a directory voxbatch creates is 0700.

There is no global engine: `open_database()` returns a `Database` that is passed down.

Async code reaches the database only through `Database.run` and the `*_async` methods, which
run the transaction in the store's own threads: a lock held by another process (a backup,
`sqlite3`, a second shell's `retry`) then never stops a stream, a heartbeat or the watchdog.
Faults that may clear by themselves (locked past the busy timeout, disk full, I/O error,
read-only) become `StoreError`s; `StoreHealth` remembers the current one for `status`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session

from voxbatch.errors import (
    HOME_HINT,
    DatabaseError,
    NoDatabaseError,
    StoreError,
    StoreFault,
    access_error,
    one_line,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
# Threads for transactions run on behalf of async code: streams, heartbeats and the
# dispatcher each wait in their own while another process holds the lock.
STORE_THREADS = 6
# Backoff between tries of a write that must not be lost (a finished transcription, say).
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 10.0

_HINTS = {
    StoreFault.locked: "another process holds the database's write lock (a backup, sqlite3, "
    "a second voxbatch); voxbatch waits and retries",
    StoreFault.disk_full: "free space on the filesystem holding the database; voxbatch retries "
    "and resumes by itself",
    StoreFault.io_error: "check the disk and the kernel log; voxbatch retries",
    StoreFault.read_only: "the database or its folder became read-only (permissions or a "
    "remount); voxbatch retries",
}
# SQLite's primary result codes (the low byte of the extended code).
_FAULT_CODES = {
    5: StoreFault.locked,  # SQLITE_BUSY
    6: StoreFault.locked,  # SQLITE_LOCKED
    8: StoreFault.read_only,  # SQLITE_READONLY
    10: StoreFault.io_error,  # SQLITE_IOERR
    13: StoreFault.disk_full,  # SQLITE_FULL
}


def store_error(exc: BaseException, doing: str) -> StoreError | None:
    """The StoreError for a driver error that may clear by itself, else None (a bug)."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlite_errorcode", None)
    fault = _FAULT_CODES.get(code & 0xFF) if isinstance(code, int) else None
    text = str(orig)
    if fault is None:
        for words, candidate in (
            ("locked", StoreFault.locked),
            ("disk is full", StoreFault.disk_full),
            ("disk I/O", StoreFault.io_error),
            ("readonly", StoreFault.read_only),
        ):
            if words in text:
                fault = candidate
                break
    if fault is None:
        return None
    return StoreError(f"cannot {doing}: {fault} ({one_line(text, 120)})", fault=fault,
                      hint=_HINTS[fault])  # fmt: skip


class StoreHealth:
    """The store fault in force, if any, from the first failed write to the next good one.

    The daemon stops claiming while there is one and shows it in its status; entering and
    leaving a fault is logged once each.
    """

    def __init__(self) -> None:
        self.fault: StoreError | None = None
        self.since: float | None = None

    def failed(self, error: StoreError) -> None:
        if self.fault is None or self.fault.fault != error.fault:
            log.error("the database refuses writes: %s — %s", error, error.hint)
            self.since = time.monotonic()
        self.fault = error

    def recovered(self) -> None:
        if self.fault is not None:
            waited = time.monotonic() - (self.since or time.monotonic())
            log.warning("the database takes writes again (after %.0f s of %s)", waited,
                        self.fault.fault)  # fmt: skip
        self.fault = None
        self.since = None

    def describe(self) -> str:
        return "" if self.fault is None else f"store fault: {self.fault.fault}; {self.fault}"


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
        self.health = StoreHealth()
        self._pool: ThreadPoolExecutor | None = None
        # The SQLite file's (st_dev, st_ino) when opened: one deleted or replaced under a
        # running process takes every later write to an unlinked inode, lost at exit.
        self.file_id: tuple[int, int] | None = None
        self.lost: StoreError | None = None

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
        try:
            with Session(self._write_engine, expire_on_commit=False) as session, session.begin():
                # Take the write lock now, not at the first flush: the whole block is serialized.
                session.connection()
                yield session
        except sa.exc.DBAPIError as exc:
            error = store_error(exc, f"write to {self.url}")
            if error is None:
                raise
            raise error from exc

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (deferred BEGIN): one consistent snapshot, no locks held
        against writers. Any write inside it fails, so a read cannot silently turn into
        the read-then-write upgrade that SQLite refuses under contention."""
        try:
            with Session(self._read_engine, expire_on_commit=False) as session, session.begin():
                yield session
        except sa.exc.DBAPIError as exc:
            error = store_error(exc, f"read {self.url}")
            if error is None or error.fault == StoreFault.read_only:  # a write in a read: a bug
                raise
            raise error from exc

    # --- the one door for async code ----------------------------------------------------------

    def file_problem(self) -> str | None:
        """Whether the SQLite file opened is still the one at its path (a stat; call it off
        the event loop): None, or what happened to it."""
        if self.path is None or self.file_id is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return f"the database {self.path} was deleted"
        except OSError:
            return None  # unreadable for now: the store's own errors say why
        if (st.st_dev, st.st_ino) != self.file_id:
            return f"the database {self.path} was replaced"
        return None

    def lose(self, reason: str) -> None:
        """Refuse every later use: nothing more is written to a file nobody will read, and no
        new connection makes an empty database at the path."""
        self.lost = StoreError(reason, fault=StoreFault.io_error)

    async def run(self, fn: Callable[..., T], /, *args: Any, writes: bool = False, **kw: Any) -> T:
        """`fn(*args, **kw)` in a store thread. With `writes`, its outcome updates `health`."""
        if self.lost is not None:
            raise self.lost
        if self._pool is None:
            self._pool = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="voxbatch-store")
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kw))
        except StoreError as exc:
            if writes:
                self.health.failed(exc)
            raise
        if writes:
            self.health.recovered()
        return result

    async def write_async(self, work: Callable[[Session], T]) -> T:
        """One write transaction, `work(session)`, off the event loop; StoreError if refused."""
        return await self.run(self._in_write, work, writes=True)

    async def read_async(self, work: Callable[[Session], T]) -> T:
        """One read transaction off the event loop."""
        return await self.run(self._in_read, work)

    async def write_through_faults(self, work: Callable[[Session], T]) -> T:
        """A write that must not be lost (a finished transcription, a job's end): tried again
        with backoff for as long as the store refuses it. `work` must be safe to run again:
        a refused transaction left nothing behind."""
        delay = RETRY_FIRST_S
        while True:
            try:
                return await self.write_async(work)
            except StoreError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _in_write(self, work: Callable[[Session], T]) -> T:
        with self.write() as session:
            return work(session)

    def _in_read(self, work: Callable[[Session], T]) -> T:
        with self.read() as session:
            return work(session)

    def close(self) -> None:
        """Close pooled connections (the database stays usable; new ones open on demand)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_database(
    path: Path, *, create: bool = True, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> Database:
    """Open the SQLite database at `path` and apply pending migrations.

    With `create` (the daemon, `process`), a missing database is created: missing parent
    directories 0700, the file 0600; the WAL and shared-memory files SQLite creates take the
    database file's mode. Without it a missing file is a NoDatabaseError and nothing is made:
    a reader pointed at a wrong home must not invent an empty one there.
    Raises DatabaseError when the file cannot be created, opened or migrated.
    """
    path = Path(path).absolute()
    if not create:
        _must_exist(path)
    try:
        _make_private_dirs(path.parent)
        _create_private_file(path)
    except PermissionError as exc:
        raise access_error(
            "open the database",
            path,
            exc,
            hint=HOME_HINT,
        ) from None
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
        st = os.stat(path)
        db.file_id = (st.st_dev, st.st_ino)
    except BaseException:
        db.close()
        raise
    return db


def _must_exist(path: Path) -> None:
    try:
        found = path.is_file()
    except PermissionError as exc:
        raise access_error("open the database", path, exc, hint=HOME_HINT) from None
    if not found:
        raise NoDatabaseError(
            f"no voxbatch database at {path}",
            hint="`voxbatch run` or `voxbatch process` creates one",
        )


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
    # migrations imports Database for typing
    from voxbatch.store.migrations import pending_migrations, run_migrations

    try:
        pending = pending_migrations(db)
        if pending and db.path is not None:
            _backup_before(db.path, pending[0])
        run_migrations(db)
    except sa.exc.DBAPIError as exc:
        raise _open_error(db, exc) from exc


def _backup_before(path: Path, migration: str) -> None:
    """A database an older voxbatch wrote is copied before its schema changes: a way back."""
    from voxbatch.store.backup import backup_before_migration

    version = migration.split("_", 1)[0]
    try:
        copy = backup_before_migration(path, version)
    except FileExistsError as exc:
        copy = Path(str(exc))  # another process starting this second made the same copy
    except DatabaseError as exc:
        raise DatabaseError(
            f"cannot back up {path} before migrating it to {migration}: {exc}",
            hint="free space beside the database (the copy goes there), then start again",
        ) from exc
    log.warning("database %s needs migration %s: backed up to %s first", path, migration, copy)


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
