"""Which files in an inbox are candidates, and when a candidate is ready to be claimed.

Watcher events only say "look here"; this module decides. Names are handled as bytes
(`os.scandir(bytes)`) so that a name that is not valid UTF-8 is seen, and quarantined,
instead of stopping the scan.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

# Partial downloads and sync tools' temporary files (dot-names are skipped separately).
IGNORED_PATTERNS = (
    "~syncthing~*",
    "*.tmp",
    "*.part",
    "*.partial",
    "*.crdownload",
    "*.filepart",
    "*.download",
    "*.lftp",
    "*.swp",
    "*~",
)


class Verdict(StrEnum):
    candidate = "candidate"  # an allowed file: watch it until it is stable
    ignored = "ignored"  # a temporary or hidden name: leave it alone
    unsupported = "unsupported"  # a file whose extension is not on the allow-list
    quarantine = "quarantine"  # must never be processed: move it aside


@dataclass(frozen=True)
class Found:
    path: bytes
    rel: bytes
    verdict: Verdict
    reason: str = ""


def classify_name(name: bytes, extensions: tuple[str, ...]) -> tuple[Verdict, str]:
    if name.startswith(b"."):
        return Verdict.ignored, "hidden or temporary name"
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        return Verdict.quarantine, "the file name is not valid UTF-8"
    lowered = text.lower()
    if any(fnmatch.fnmatchcase(lowered, pattern) for pattern in IGNORED_PATTERNS):
        return Verdict.ignored, "a partial or temporary file name"
    ext = lowered.rpartition(".")[2] if "." in lowered else ""
    if ext not in extensions:
        return Verdict.unsupported, f"extension {ext or '(none)'!r} is not on the allow-list"
    return Verdict.candidate, ""


def classify(path: bytes, rel: bytes, st: os.stat_result, extensions: tuple[str, ...]) -> Found:
    """What to do with one directory entry, from its name and its lstat."""
    name = os.path.basename(path)
    verdict, reason = classify_name(name, extensions)
    if verdict is Verdict.ignored:
        return Found(path, rel, verdict, reason)
    if stat.S_ISLNK(st.st_mode):
        return Found(path, rel, Verdict.quarantine, "a symbolic link (never followed)")
    if not stat.S_ISREG(st.st_mode):
        return Found(path, rel, Verdict.quarantine, f"not a regular file ({_kind(st.st_mode)})")
    return Found(path, rel, verdict, reason)


def scan(root: Path, *, recursive: bool, extensions: tuple[str, ...]) -> Iterator[Found]:
    """Every entry of an inbox that is not a plain directory, depth first, by bytes name."""
    base = os.fsencode(root)
    stack = [b""]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(base, rel_dir) if rel_dir else base))
        except FileNotFoundError:
            continue
        for entry in entries:
            rel = os.path.join(rel_dir, entry.name) if rel_dir else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if not recursive or entry.name.startswith(b"."):
                    continue
                if not decodes(entry.name):
                    # Nothing below it could be named in the database: set the folder aside.
                    yield Found(
                        entry.path, rel, Verdict.quarantine, "a folder name that is not valid UTF-8"
                    )
                    continue
                stack.append(rel)
                continue
            yield classify(entry.path, rel, st, extensions)


def decodes(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


Signature = tuple[int, int, int]  # size, mtime_ns, inode


def signature_of(st: os.stat_result) -> Signature:
    """What tells a file's version apart: a write changes size or mtime, a replace the inode."""
    return (st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass
class _Seen:
    signature: Signature
    since: float


class StabilityTracker:
    """Ready = a regular file, size > 0, and (size, mtime, inode) unchanged for `quiet` seconds."""

    def __init__(self, quiet: float) -> None:
        self.quiet = quiet
        self._seen: dict[bytes, _Seen] = {}

    def __contains__(self, path: bytes) -> bool:
        return path in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def paths(self) -> list[bytes]:
        return list(self._seen)

    def forget(self, path: bytes) -> None:
        self._seen.pop(path, None)

    def observe(self, path: bytes, st: os.stat_result, now: float) -> bool:
        signature = signature_of(st)
        seen = self._seen.get(path)
        if seen is None or seen.signature != signature:
            self._seen[path] = _Seen(signature, now)
            return self.quiet == 0 and st.st_size > 0
        return st.st_size > 0 and now - seen.since >= self.quiet


def signature(path: Path) -> str | None:
    try:
        return ":".join(map(str, signature_of(os.lstat(path))))
    except OSError:
        return None
