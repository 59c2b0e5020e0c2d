"""The daemon's folders and the moves between them.

Every move is `os.replace` on one filesystem followed by an fsync of both directories, so a
file is always in exactly one place, even across a power cut. Destinations in done/, failed/
and quarantine/ never overwrite: a clash gets a ` (n)` suffix.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from voxbatch.config import InboxProfile, Settings
from voxbatch.errors import ConfigError, VoxbatchError, access_error, home_error
from voxbatch.names import fit

FOLDERS = ("outbox", "done", "failed", "quarantine", "work")


@dataclass(frozen=True)
class Inbox:
    """A configured inbox: its folder, its profile, and the name jobs record."""

    root: Path
    profile: InboxProfile
    name: str


def inboxes(settings: Settings) -> list[Inbox]:
    return [Inbox(settings.inbox_dir(p), p, str(p.path)) for p in settings.inbox]


def find_inbox(boxes: Sequence[Inbox], name: str | None) -> Inbox:
    """The inbox a job records by name."""
    for box in boxes:
        if box.name == name:
            return box
    return boxes[0]  # an inbox removed from the configuration: first profile


# Modes are set explicitly: under systemd the umask is 0077 (UMask= in the unit), on a desktop
# 0022, and the folders must come out the same under both.
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600
# A shared inbox: group members drop files; setgid gives every file the daemon's group, so
# the daemon may read a producer's 0640 file.
SHARED_DROP_DIR = 0o2770
# Shared results (an outbox, failed/): the group may list and read. No setgid: only the daemon
# writes there, with its own group, and the unit's RestrictSUIDSGID= forbids it to set one.
SHARED_READ_DIR, SHARED_FILE = 0o750, 0o640
# The group may pass through the home to the shared folders, not list it.
HOME_PASSAGE = 0o010


def file_mode(shared: bool) -> int:
    return SHARED_FILE if shared else PRIVATE_FILE


def results_dir_mode(shared: bool) -> int:
    return SHARED_READ_DIR if shared else PRIVATE_DIR


def make_folder(path: Path, mode: int = PRIVATE_DIR, *, enforce: bool = False) -> None:
    """`path` with exactly `mode`, and its missing parents (the same, without group write).

    With `enforce` (a shared folder), an existing folder of ours is given `mode` too, so that
    turning sharing on works on an existing home; a private folder that exists keeps the mode
    its owner chose.
    """
    missing: list[Path] = []
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            break
        missing.append(candidate)
    for new_dir in reversed(missing):
        try:
            new_dir.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # made by another process meanwhile: its mode is its maker's
        _set_mode(new_dir, mode if new_dir == path else mode & ~0o020)
    if enforce and not missing:
        info = path.stat()
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != mode:
            _set_mode(path, mode)


def _set_mode(path: Path, mode: int) -> None:
    if stat.S_IMODE(path.stat().st_mode) != mode:  # also inherited setgid: no chmod needed
        path.chmod(mode)


def prepare(settings: Settings) -> list[Inbox]:
    """Create the folders (private, or shared for a shared inbox) and refuse a layout that
    would feed the daemon its own output."""
    boxes = inboxes(settings)
    sharing = any(box.profile.shared for box in boxes)
    try:
        check_layout(settings, boxes)
        make_folder(settings.home)
        home = settings.home.stat()
        if sharing and home.st_uid == os.geteuid() and not home.st_mode & HOME_PASSAGE:
            settings.home.chmod(stat.S_IMODE(home.st_mode) | HOME_PASSAGE)
    except PermissionError as exc:
        raise home_error(settings.home, exc) from None
    try:
        for name in FOLDERS:
            shared = sharing and name == "failed"  # producers read why their file failed
            make_folder(settings.folder(name), results_dir_mode(shared), enforce=shared)
        for box in boxes:
            shared = box.profile.shared
            outbox = settings.outbox_dir(box.profile)
            make_folder(outbox, results_dir_mode(shared), enforce=shared)
            drop = SHARED_DROP_DIR if shared else PRIVATE_DIR
            make_folder(box.root, drop, enforce=shared)
            make_folder(box.root / ".incoming", drop, enforce=shared)
    except PermissionError as exc:
        raise _folder_error(exc) from None
    return boxes


def _folder_error(exc: PermissionError) -> VoxbatchError:
    where = Path(os.fsdecode(exc.filename)) if exc.filename else Path("?")
    return access_error(
        "create or set the mode of the folder",
        where,
        exc,
        hint="the user voxbatch runs as must own its folders (for an inbox outside the "
        "state directory: chown voxbatch: it, and list it in ReadWritePaths=); a shared "
        "inbox is setgid, which the unit does not let voxbatch set: create it as root, "
        "install -d -o voxbatch -g voxbatch -m 2770 INBOX INBOX/.incoming",
    )


def check_layout(settings: Settings, boxes: Sequence[Inbox]) -> None:
    """An output folder inside an inbox would be watched and processed again, forever."""
    outputs = {name: settings.folder(name).resolve() for name in FOLDERS}
    for box in boxes:
        if box.profile.outbox is not None:
            outputs[f"outbox of {box.name}"] = settings.outbox_dir(box.profile).resolve()
    outputs["database"] = settings.db_path.resolve()
    for box in boxes:
        root = box.root.resolve()
        for name, folder in outputs.items():
            if folder == root or folder.is_relative_to(root):
                raise ConfigError(
                    f"the {name} folder {folder} lies inside the inbox {root}",
                    hint="move it out of the inbox (or the inbox elsewhere): voxbatch would "
                    "process its own results",
                )
        for other in boxes:
            if other is box:
                continue
            if other.root.resolve().is_relative_to(root) and box.profile.recursive:
                raise ConfigError(
                    f"the inbox {other.root} lies inside the inbox {root}",
                    hint="inboxes must not overlap: each file must belong to one profile",
                )


def lock_home(home: Path) -> int:
    """One daemon per home: a second would repair the first one's moves in flight."""
    try:
        fd = os.open(home / "voxbatch.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except PermissionError as exc:
        raise home_error(home, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise VoxbatchError(
            f"another `voxbatch run` is using {home} ({holder})",
            hint="one daemon per home: stop the other one (systemctl stop voxbatch), or use "
            "`voxbatch status` to see what it is doing",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
    return fd


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move(src: Path | bytes, dst: Path | bytes) -> None:
    """Atomic rename, then make both directory entries durable.

    Across filesystems (an inbox on another mount) it copies to a temporary name, fsyncs,
    renames into place and only then removes the source: a crash leaves both copies, never
    none, and `queue.reconcile_moves` removes the source once the copy is whole.
    """
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_then_remove(src, dst)
    for folder in {os.path.dirname(os.fsencode(dst)), os.path.dirname(os.fsencode(src))}:
        with contextlib.suppress(OSError):  # the source folder may be gone; the file is safe
            fsync_dir(Path(os.fsdecode(folder or b".")))


def _copy_then_remove(src: Path | bytes, dst: Path | bytes) -> None:
    src_b, dst_b = os.fsencode(src), os.fsencode(dst)
    temporary = fit(os.fsdecode(os.path.basename(dst_b)), ".copying", head=".")
    tmp = os.path.join(os.path.dirname(dst_b), os.fsencode(temporary))
    if os.path.islink(src_b):
        os.symlink(os.readlink(src_b), tmp)
    else:
        shutil.copy2(src_b, tmp, follow_symlinks=False)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, dst_b)
    fsync_dir(Path(os.fsdecode(os.path.dirname(dst_b) or b".")))
    os.unlink(src_b)


def free_destination(folder: Path, rel: str | bytes, *, dir_mode: int = PRIVATE_DIR) -> Path:
    """`folder/rel`, or `folder/stem (n).ext` when taken; parent folders are created."""
    target = Path(os.fsdecode(os.path.join(os.fsencode(folder), os.fsencode(rel))))
    make_folder(target.parent, dir_mode)
    if not os.path.lexists(target):
        return target
    stem, suffix = _split_name(target.name)
    n = 1
    while True:
        candidate = target.with_name(fit(stem, f" ({n}){suffix}"))
        if not os.path.lexists(candidate):
            return candidate
        n += 1


def _split_name(name: str) -> tuple[str, str]:
    # Keep a multi-part ending whole: "talk.summary.md" -> ("talk", ".summary.md") is not
    # needed for originals; one extension is.
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, f".{ext}"


def work_name(job_id: int, original: str) -> str:
    """The claimed file's name in work/: the job id and the original's (safe) extension."""
    ext = Path(original).suffix.lower()
    if not (ext[1:].isascii() and ext[1:].isalnum()) or len(ext) > 10:
        ext = ""
    return f"{job_id}{ext}"


def write_note(path: Path, text: str, *, shared: bool = False) -> None:
    """A small text file beside a failed or quarantined original, written atomically;
    0600, or 0640 for a file from a shared inbox (its producers read why it failed)."""
    tmp = path.with_name(fit(path.name, ".tmp", head="."))
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fd, file_mode(shared))
        fh.write(text)
    os.replace(tmp, path)


def crash_point(name: str) -> None:
    """Crash tests kill the daemon (SIGKILL, like `kill -9`) at an exact point.

    VOXBATCH_CRASH_AT=claim (inbox → work/ planned), =leased (a job just claimed by a worker),
    =file (work/ → done/ or failed/ planned); nothing happens otherwise.
    """
    if os.environ.get("VOXBATCH_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
