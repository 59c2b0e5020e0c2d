"""Filesystem events as hints, from a watcher that cannot be stopped by what it watches.

`watchfiles` raises on a file name that is not UTF-8 and drops events on queue overflow, so
the watcher runs under a supervisor that restarts it with backoff and asks for a rescan
after every restart; the periodic rescan covers whatever is lost in between.

An inbox removed (or replaced) under the watcher silences it for that folder: each wake of the
watcher (an event, or a second without one) checks every inbox's identity, and re-arms the
watch on the folder that is there now, or, while one is gone, on the others until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import watchfiles

from voxbatch.ingest.folders import PRIVATE_DIR, SHARED_DROP_DIR, make_folder

log = logging.getLogger(__name__)

# (st_dev, st_ino) of a folder, None while it is missing.
Identity = tuple[int, int] | None

# Filesystems whose changes made on other hosts never reach inotify.
REMOTE_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse", "ceph", "glusterfs", "afs")


def filesystem_type(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str:
    """The type of the filesystem holding `path`: the longest mount point that contains it."""
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    try:
        lines = mountinfo.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return best_type
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right:
            continue
        point = fields[4].encode().decode("unicode_escape")  # \040 is a space
        if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) > len(
            best
        ):
            best, best_type = point, right.split()[0]
    return best_type


def is_remote(fs_type: str) -> bool:
    return fs_type.split(".")[0] in REMOTE_FS or fs_type.startswith("fuse")


def needs_polling(mode: str, folders: Sequence[Path]) -> bool:
    if mode == "poll":
        return True
    if mode == "inotify":
        return False
    return any(is_remote(filesystem_type(f)) for f in folders)


class Supervisor:
    """Runs `watchfiles.awatch` over the inboxes and passes each changed path to `hint`."""

    def __init__(
        self,
        folders: Sequence[Path],
        *,
        polling: bool,
        hint: Callable[[bytes], None],
        rescan: Callable[[], None],
        poll_delay_ms: int = 500,
        shared: frozenset[Path] = frozenset(),
    ) -> None:
        self.folders = list(folders)
        self.shared = shared  # inboxes shared with the group: their .incoming is 2770 too
        self.polling = polling
        self.hint = hint
        self.rescan = rescan
        self.poll_delay_ms = poll_delay_ms
        self.restarts = 0
        self.started = asyncio.Event()
        self._working = False  # the current watcher has delivered at least once

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                if not await self._watch(stop):
                    return
                continue  # an inbox went, came back or was replaced: re-arm at once
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any watcher failure: restart it, never give up
                self.restarts += 1
                if self._working:  # it ran fine until now: a fresh fault, a short backoff
                    delay = 0.5
                self._working = False
                log.warning(
                    "the folder watcher stopped (%s: %s); restarting in %.1f s and rescanning",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                self.rescan()  # now, and again once the new watcher runs (see _watch)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 30.0)

    async def _watch(self, stop: asyncio.Event) -> bool:
        """Watch until `stop` (False) or until an inbox's identity changed (True: re-arm)."""
        armed = {folder: _identity(folder) for folder in self.folders}
        present = [folder for folder, ident in armed.items() if ident is not None]
        if not present:  # nothing to watch: look again each second
            self.started.set()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                if self._changed(armed):
                    return True
            return False
        watcher = watchfiles.awatch(
            *present,
            stop_event=stop,
            force_polling=self.polling,
            poll_delay_ms=self.poll_delay_ms,
            recursive=True,
            debounce=200,
            step=50,
            yield_on_timeout=True,
            rust_timeout=1000,
        )
        first = True
        async for changes in watcher:
            self.started.set()
            self._working = True
            if first and self.restarts:
                # Files that arrived while no watcher ran are found by this scan.
                self.rescan()
            first = False
            for _change, path in changes:
                self.hint(os.fsencode(path))
            if self._changed(armed):
                return True
        return False

    def _changed(self, armed: dict[Path, Identity]) -> bool:
        """Has an inbox gone, come back or been replaced since the watch was armed? Says so
        in the log once, and asks for a rescan (files may have arrived meanwhile)."""
        changed = False
        for folder, was in armed.items():
            now = _identity(folder)
            if now == was:
                continue
            changed = True
            if now is None:
                log.warning(
                    "the inbox %s is gone; waiting for it to come back (watching the rest)", folder
                )
                continue
            with contextlib.suppress(OSError):  # as start-up makes it (ingest.folders.prepare)
                shared = folder in self.shared
                mode = SHARED_DROP_DIR if shared else PRIVATE_DIR
                make_folder(folder / ".incoming", mode, enforce=shared)
            what = "is there again" if was is None else "was replaced by a new folder"
            log.warning("the inbox %s %s; watching it again", folder, what)
        if changed:
            self.rescan()
        return changed


def _identity(folder: Path) -> Identity:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None
