"""Error codes: one enum, stored as the very strings the database already holds."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import voxbatch.errors as errors
from voxbatch.errors import CONTENT_ERRORS, ErrorCode, VoxbatchError, error_code
from voxbatch.store import jobs
from voxbatch.store.db import open_database


def _subclasses(cls: type) -> list[type]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]


def test_every_error_class_has_the_code_it_was_stored_as() -> None:
    classes = [c for c in _subclasses(VoxbatchError) if c.__module__ == errors.__name__]
    assert len(classes) >= 12
    for cls in classes:
        assert cls.code == cls.__name__, cls  # today's rows keep meaning what they meant
        assert isinstance(cls.code, ErrorCode)
    assert error_code(asyncio.CancelledError()) == "CancelledError"
    assert error_code(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert error_code(RuntimeError("bug")) == ErrorCode.error
    assert {"InputError", "NotAudioError", "ConversionError"} == set(CONTENT_ERRORS)


def test_a_failed_job_stores_the_code_as_text(tmp_path: Path) -> None:
    path = tmp_path / "voxbatch.db"
    with open_database(path) as db, db.write() as session:
        job = jobs.create_job(
            session, content_sha256="ab" * 32, source_path="/in/a.wav", size_bytes=1,
            inbox=None, output_dir=None, primary=None,
        )  # fmt: skip
        jobs.fail_job(session, job, errors.NotAudioError("no audio stream"))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT error_class, state FROM job").fetchall() == [
            ("NotAudioError", "failed")
        ]
