"""What the intake will not take: set aside in quarantine/ (never to be processed), or left in
the inbox and reported once (not audio, or empty yet). Both leave an event about the path."""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from voxbatch.config import Settings
from voxbatch.errors import StoreError, display_path
from voxbatch.ingest.folders import free_destination, move, write_note
from voxbatch.names import note_name
from voxbatch.store import jobs
from voxbatch.store.db import Database

log = logging.getLogger(__name__)


class Refusals:
    """Files the intake refuses, each reported once (until it changes or comes back).

    Its methods do file and database I/O: call them in a thread. `outcomes` counts the files
    quarantined.
    """

    def __init__(self, settings: Settings, db: Database, outcomes: Counter[str]) -> None:
        self.settings = settings
        self.db = db
        self.outcomes = outcomes
        self.noted: set[bytes] = set()  # paths already reported

    def forget(self, path: bytes) -> None:
        """The path is a candidate again: a later refusal is reported anew."""
        self.noted.discard(path)

    def note_unsupported(self, path: bytes, reason: str) -> None:
        if path in self.noted:
            return
        self.noted.add(path)
        shown = display_path(Path(os.fsdecode(path)))
        log.info("left alone: %s (%s)", shown, reason)
        self._path_event("ignored", f"left in the inbox: {reason}", shown)

    def quarantine(self, path: bytes, rel: bytes, reason: str) -> None:
        try:
            self._set_aside(path, rel, reason)
        except OSError as exc:
            # Say so once; never let one odd entry stop a scan.
            if path not in self.noted:
                self.noted.add(path)
                shown = display_path(Path(os.fsdecode(path)))
                log.error(
                    "%s must not be processed (%s) but cannot be moved to quarantine/ (%s); "
                    "remove it from the inbox",
                    shown,
                    reason,
                    exc.strerror or exc,
                )
                self._path_event("ignored", f"{reason}; cannot be quarantined", shown)

    def _path_event(self, kind: str, detail: str, shown: str) -> None:
        """An event about a file not yet a job; the log has it if the store refuses it now."""
        try:
            with self.db.write() as session:
                jobs.add_event(session, kind, detail, path=shown)
        except StoreError as exc:
            self.db.health.failed(exc)

    def _set_aside(self, path: bytes, rel: bytes, reason: str) -> None:
        source = os.lstat(path)
        if os.stat(self.settings.folder("quarantine")).st_dev != source.st_dev and not (
            stat.S_ISREG(source.st_mode) or stat.S_ISLNK(source.st_mode)
        ):
            # Pipes, devices and folders cannot be copied across filesystems.
            raise OSError(errno.EXDEV, "it is on another filesystem and not a plain file")
        dst = free_destination(self.settings.folder("quarantine"), rel)
        shown = display_path(Path(os.fsdecode(path)))
        note = dst.with_name(note_name(dst.name))
        write_note(
            note,
            f"file: {shown}\nquarantined: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n"
            f"why: {reason}\n"
            "what to do: voxbatch never processes this. Give it a plain UTF-8 name, or copy "
            "the real file (not a link) into the inbox.\n",
        )
        move(path, dst)
        log.warning("quarantined %s: %s", shown, reason)
        self._path_event("quarantined", f"{reason}; moved to {display_path(dst)}", shown)
        self.outcomes["quarantined"] += 1
