"""`voxbatch doctor`: is everything a daemon needs in place? Each check says what to do."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from voxbatch.config import Settings
from voxbatch.errors import VoxbatchError, one_line
from voxbatch.ingest.folders import FOLDERS, check_layout, inboxes
from voxbatch.ingest.watch import filesystem_type, is_remote, needs_polling
from voxbatch.media.ffmpeg import child_environment, find_ffmpeg
from voxbatch.providers.realtime import ClientSettings, RealtimeTranscriber
from voxbatch.store.db import open_database


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @property
    def label(self) -> str:
        return {Level.OK: "ok  ", Level.WARN: "warn", Level.FAIL: "FAIL"}[self]


class Advice(VoxbatchError):
    """A check that passes with a warning: worth fixing, not a reason to fail."""


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str
    hint: str = ""

    @property
    def ok(self) -> bool:
        return self.level is not Level.FAIL


def run_checks(settings: Settings) -> list[Check]:
    steps: list[tuple[str, Callable[[], str]]] = [
        ("ffmpeg", functools.partial(_ffmpeg, settings)),
        ("api key", functools.partial(_key, settings)),
        ("api", functools.partial(_handshake, settings)),
        ("database", functools.partial(_database, settings)),
        ("folders", functools.partial(_folders, settings)),
    ]
    for box in inboxes(settings):
        steps.append((f"inbox {box.name}", functools.partial(_inbox, settings, box.root)))
    return [_guard(name, step) for name, step in steps]


def _guard(name: str, check: Callable[[], str]) -> Check:
    try:
        return Check(name, Level.OK, check())
    except Advice as exc:
        return Check(name, Level.WARN, exc.message, exc.hint)
    except VoxbatchError as exc:
        return Check(name, Level.FAIL, exc.message, exc.hint)
    except OSError as exc:
        return Check(name, Level.FAIL, one_line(exc))


def _ffmpeg(settings: Settings) -> str:
    path = find_ffmpeg(settings.ffmpeg)
    out = subprocess.run(
        [path, "-hide_banner", "-version"],
        capture_output=True, text=True, timeout=20, check=False, env=child_environment(),
    )  # fmt: skip
    first = (out.stdout.splitlines() or ["?"])[0]
    return f"{path} ({first})"


def _key(settings: Settings) -> str:
    key = settings.api_key()
    env = os.environ
    source = (
        "MISTRAL_API_KEY"
        if env.get("MISTRAL_API_KEY")
        else str(settings.mistral.api_key_file or "systemd credential mistral_api_key")
    )
    return f"from {source} ({len(key)} characters, ends …{key[-2:]})"


def _handshake(settings: Settings) -> str:
    transcriber = RealtimeTranscriber(
        ClientSettings(
            api_key=settings.api_key(),
            base_url=settings.mistral.base_url,
            connect_timeout_s=min(settings.mistral.connect_timeout_s, 15.0),
        )
    )
    started = time.monotonic()
    request_id = asyncio.run(transcriber.handshake(settings.mistral.transcription_model))
    elapsed = (time.monotonic() - started) * 1000
    return (
        f"{settings.mistral.base_url}: realtime session opened for "
        f"{settings.mistral.transcription_model} in {elapsed:.0f} ms"
        + (f" (request {request_id})" if request_id else "")
    )


def _mode(path: Path) -> str:
    return f"{path.stat().st_mode & 0o777:04o}"  # as chmod takes it


def _database(settings: Settings) -> str:
    path = settings.db_path
    if not path.exists():
        raise Advice(
            f"no database yet at {path}",
            hint="`voxbatch process` or `voxbatch run` creates it",
        )
    with open_database(path, create=False) as db, db.write() as session:
        session.connection().exec_driver_sql("CREATE TEMP TABLE doctor_probe (x INTEGER)")
    mode = _mode(path)
    fs = filesystem_type(path.parent)
    if is_remote(fs):
        raise VoxbatchError(
            f"{path} is on a network filesystem ({fs})",
            hint="SQLite locking is unreliable there: put the database on a local disk",
        )
    return f"{path} writable, mode {mode}, on {fs}"


def _folders(settings: Settings) -> str:
    check_layout(settings, inboxes(settings))
    present = [n for n in FOLDERS if settings.folder(n).is_dir()]
    missing = [n for n in FOLDERS if n not in present]
    unwritable = [n for n in present if not os.access(settings.folder(n), os.W_OK | os.X_OK)]
    if unwritable:
        raise VoxbatchError(
            f"not writable: {', '.join(unwritable)}",
            hint="give the voxbatch user write access (the systemd unit's ReadWritePaths=)",
        )
    if not settings.home.is_dir():
        raise Advice(
            f"{settings.home} does not exist yet",
            hint="only `voxbatch run` needs the daemon's folders; it creates them at start",
        )
    free = shutil.disk_usage(settings.home).free / 1e9
    detail = f"{settings.home} (mode {_mode(settings.home)}), {free:.1f} GB free"
    if missing:
        raise Advice(
            f"{detail}; not created yet: {', '.join(missing)}",
            hint="only `voxbatch run` needs them; it creates them at start",
        )
    if settings.home.stat().st_mode & 0o007:
        raise Advice(
            f"{detail}; other users can read it (transcripts are sensitive)",
            hint=f"chmod o-rwx {settings.home}",
        )
    return detail


def _inbox(settings: Settings, root: Path) -> str:
    if not os.path.isdir(root):
        raise Advice(f"{root} does not exist yet", hint="`voxbatch run` creates it at start")
    if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
        raise VoxbatchError(
            f"{root}: voxbatch must be able to read it and move files out of it",
            hint="grant read/write on the folder to the voxbatch user",
        )
    fs = filesystem_type(root)
    polling = needs_polling(settings.daemon.watch_mode, [root])
    mode = "polling" if polling else "inotify"
    return f"{root} on {fs}: watched by {mode} (watch_mode={settings.daemon.watch_mode})"
