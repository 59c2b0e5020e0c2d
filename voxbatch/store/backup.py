"""Copies of the SQLite database made with SQLite's online backup API.

The copy is read in one step inside one read transaction: a consistent snapshot of what was
committed when it began, while the daemon goes on writing (WAL readers do not block writers).
It is written beside the target under a temporary name, made a self-contained file (rollback
journal, no -wal), checked, fsynced, and only then given its name: a backup that exists is whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from voxbatch.errors import DatabaseError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0


def backup_database(source: Path, target: Path, *, force: bool = False) -> Path:
    """Copy the database at `source` to `target` (0600). An existing `target` is replaced
    only with `force` (FileExistsError otherwise); DatabaseError when the copy cannot be made."""
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise DatabaseError(f"no database at {source}")
    if target.exists() and (not force or target.resolve() == source.resolve()):
        raise FileExistsError(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        _copy(source, tmp)
        _fsync(tmp)
        if force:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)  # fails if the name was taken meanwhile: never overwrite
        _fsync(target.parent)
    except FileExistsError:
        raise FileExistsError(target) from None  # taken meanwhile
    except (OSError, sqlite3.Error) as exc:
        raise DatabaseError(
            f"cannot back up {source} to {target}: {exc}",
            hint="check the free space and that the target folder is writable",
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target


def backup_before_migration(source: Path, next_version: str) -> Path:
    """`<db>.pre-<version>-<UTC time>.bak` beside the database, before migrations change it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = source.with_name(f"{source.name}.pre-{next_version}-{stamp}.bak")
    return backup_database(source, target)


def _copy(source: Path, tmp: Path) -> None:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.close(fd)
    src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_S)
    try:
        dst = sqlite3.connect(tmp, isolation_level=None)
        try:
            src.backup(dst)  # pages=-1: everything in one step, one snapshot
            # One file, no -wal beside it: copied, mailed, restored as it is.
            dst.execute("PRAGMA journal_mode = DELETE")
            verdict = dst.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"the copy fails its check: {verdict}")
        finally:
            dst.close()
    finally:
        src.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
