"""The daemon's small parts: names, stability, breaker, mounts, sd_notify, redaction."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxbatch.config import DEFAULT_EXTENSIONS
from voxbatch.daemon.breaker import Breaker
from voxbatch.daemon.notify import Notifier
from voxbatch.ingest.scan import StabilityTracker, Verdict, classify_name
from voxbatch.ingest.watch import filesystem_type, is_remote, needs_polling
from voxbatch.logs import RedactingFilter


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        (b"talk.mp3", Verdict.candidate),
        (b"TALK.WAV", Verdict.candidate),
        (b".syncthing.talk.mp3.tmp", Verdict.ignored),
        (b".talk.mp3.aBc123", Verdict.ignored),  # rsync's temporary name
        (b"._talk.mp3", Verdict.ignored),
        (b"~syncthing~talk.mp3.tmp", Verdict.ignored),
        (b"talk.mp3.part", Verdict.ignored),
        (b"talk.mp3.crdownload", Verdict.ignored),
        (b"talk.filepart", Verdict.ignored),
        (b"notes.txt", Verdict.unsupported),
        (b"README", Verdict.unsupported),
        (b"caf\xe9.mp3", Verdict.quarantine),
    ],
)
def test_names(name: bytes, verdict: Verdict) -> None:
    assert classify_name(name, DEFAULT_EXTENSIONS)[0] is verdict


def _stat(size: int, mtime: int = 1, ino: int = 1) -> os.stat_result:
    return os.stat_result((0o100644, ino, 0, 1, 0, 0, size, 0, 0, 0, 0, 0, 0, mtime, 0, 0))


def test_stability_needs_a_quiet_period_and_content() -> None:
    tracker = StabilityTracker(quiet=5)
    assert not tracker.observe(b"f", _stat(10), now=0)
    assert not tracker.observe(b"f", _stat(10), now=4.9)
    assert tracker.observe(b"f", _stat(10), now=5.0)
    assert not tracker.observe(b"f", _stat(20), now=6)  # grew: the clock starts again
    assert not tracker.observe(b"f", _stat(20, mtime=2), now=10)  # touched
    assert not tracker.observe(b"f", _stat(20, mtime=2, ino=9), now=14)  # replaced
    assert tracker.observe(b"f", _stat(20, mtime=2, ino=9), now=19)
    assert not tracker.observe(b"e", _stat(0), now=0)
    assert not tracker.observe(b"e", _stat(0), now=100)  # empty files never are ready


@given(st.lists(st.tuples(st.integers(0, 3), st.floats(0, 2)), max_size=30))
def test_stability_is_never_ready_before_the_quiet_period(steps: list[tuple[int, float]]) -> None:
    tracker = StabilityTracker(quiet=5)
    now, last_change, last_sig = 0.0, 0.0, None
    for size, advance in steps:
        now += advance
        sig = (size + 1, 1, 1)
        if sig != last_sig:
            last_change, last_sig = now, sig
        ready = tracker.observe(b"f", _stat(size + 1), now)
        assert ready == (now - last_change >= 5)


def test_breaker_opens_probes_and_closes() -> None:
    clock = [0.0]
    breaker = Breaker(3, 10, clock=lambda: clock[0])
    for _ in range(2):
        breaker.failure()
    assert breaker.allow() and not breaker.is_open
    breaker.failure()
    assert breaker.is_open and not breaker.allow()
    clock[0] = 10
    assert breaker.allow()  # one probe
    assert not breaker.allow()  # only one
    breaker.failure()  # the probe failed: twice the wait
    clock[0] = 29
    assert not breaker.allow()
    clock[0] = 30
    assert breaker.allow()
    breaker.success()
    assert not breaker.is_open and breaker.allow() and breaker.describe() == "ok"


def test_filesystem_type_from_mountinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /srv/share rw - nfs4 server:/export rw\n"
        "41 22 0:51 / /srv/my\\040files rw - cifs //nas/x rw\n"
    )
    assert filesystem_type(Path("/srv/share/inbox"), info) == "nfs4"
    assert filesystem_type(Path("/srv/my files/inbox"), info) == "cifs"
    assert filesystem_type(Path("/srv/shared"), info) == "ext4"
    assert needs_polling("poll", [Path("/")]) and not needs_polling("inotify", [Path("/")])
    # auto (the default) polls exactly the network and FUSE mounts
    import voxbatch.ingest.watch as watch

    monkeypatch.setattr(watch, "filesystem_type", lambda p: filesystem_type(p, info))
    assert needs_polling("auto", [Path("/srv/shared"), Path("/srv/share/inbox")])
    assert not needs_polling("auto", [Path("/srv/shared")])
    assert is_remote("nfs4") and is_remote("fuse.sshfs") and not is_remote("ext4")


def test_notifier_sends_datagrams(notify_socket: tuple[socket.socket, str]) -> None:
    sock, address = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "30000000"})
    assert notifier.watchdog_interval == 15.0
    notifier.ready("hello")
    assert sock.recv(1024).decode().startswith("READY=1\nSTATUS=hello")
    notifier.stopping("bye")
    assert sock.recv(1024) == b"STOPPING=1\nSTATUS=bye"
    assert not Notifier({}).send(READY="1")  # no socket: nothing to do, no error
    sock.close()


def test_redaction_hides_the_key_everywhere_in_a_record() -> None:
    redactor = RedactingFilter()
    redactor.add_secret("sk-live-0123456789")
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "key %s and %s", ("sk-live-0123456789", "Bearer abc.def"),
        None,
    )  # fmt: skip
    assert redactor.filter(record)
    assert record.getMessage() == "key *** and Bearer ***"


@pytest.mark.parametrize(
    ("src", "dst", "action"),
    [
        ("ours", None, "the move was finished now"),
        (None, "ours", "the move had been made"),
        ("ours", "ours", "the copy had been made; its source was removed now"),
        ("new", "ours", "the move had been made"),  # a new file of the same name stays
        ("ours", "stranger", "the move was finished now"),  # to a free name, never over it
        (None, None, "file missing"),
        ("new", None, "file missing"),
    ],
)
def test_reconcile_finishes_half_made_moves_and_removes_nothing_it_does_not_own(
    tmp_path: Path, src: str | None, dst: str | None, action: str
) -> None:
    import hashlib

    from voxbatch.daemon.recovery import reconcile_moves
    from voxbatch.ingest.scan import signature
    from voxbatch.store.db import open_database
    from voxbatch.store.models import Job
    from voxbatch.store.queue import plan_move

    audio = b"our audio"
    inbox_file, work_file = tmp_path / "inbox" / "a.wav", tmp_path / "work" / "1.wav"
    inbox_file.parent.mkdir()
    work_file.parent.mkdir()
    inbox_file.write_bytes(audio)
    with open_database(tmp_path / "v.db") as db:
        with db.write() as session:
            job = Job(
                content_sha256=hashlib.sha256(audio).hexdigest(),
                source_path=str(inbox_file), source_name="a.wav", size_bytes=len(audio),
            )  # fmt: skip
            plan_move(session, job, inbox_file, work_file, signature(inbox_file))
        # What the crash left behind:
        if dst == "ours":
            work_file.write_bytes(audio)
        elif dst == "stranger":
            work_file.write_bytes(b"somebody else's")
        if src is None:
            inbox_file.unlink()
        elif src == "new":
            inbox_file.unlink()
            inbox_file.write_bytes(b"a new recording, same name")
        done = reconcile_moves(db)
        assert [d.action for d in done] == [action]
        with db.read() as session:
            job = session.get_one(Job, 1)
            assert job.move_to is None
            if action == "file missing":
                assert job.state == "failed" and "neither" in (job.error_message or "")
            else:
                assert Path(job.work_path or "").read_bytes() == audio
        if src == "new":
            assert inbox_file.read_bytes() == b"a new recording, same name"
        elif src == "ours":
            assert not inbox_file.exists()
        if dst == "stranger":
            assert work_file.read_bytes() == b"somebody else's"
