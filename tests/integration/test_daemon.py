"""`voxbatch run --once` end to end (real files, real ffmpeg, the real SDK vs the emulator)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Cli, cli_for
from tests.helpers.daemon import assert_invariants, originals, rows
from tests.helpers.media import wav_bytes
from voxbatch.emulator import Emulator

pytestmark = pytest.mark.media  # they run ffmpeg


def once(cli: Cli, *, ok: bool | None = None) -> int:
    return cli("run", "--once", ok=ok).exit_code


def drop(inbox: Path, name: str, seconds: float = 2.0, tag: int = 0) -> Path:
    path = inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(seconds, tag=tag))
    return path


def fast(emu: Emulator, **env: str) -> Cli:
    return cli_for(emu, VOXBATCH_DAEMON__STABLE_SECONDS="0.2", **env)


def test_files_present_before_start_are_processed_and_filed(
    emulator: Emulator, isolated_env: Path, samples: list[Path]
) -> None:
    inbox = isolated_env / "inbox"
    (inbox / "sub").mkdir(parents=True)
    for clip in samples[:3]:
        shutil.copy(clip, inbox / clip.name)
    shutil.copy(samples[0], inbox / "sub" / "copy of first.wav")  # same audio: no new session
    (inbox / "notes.txt").write_text("not audio")
    (inbox / ".hidden.wav").write_bytes(wav_bytes(1))
    (inbox / "upload.wav.part").write_bytes(wav_bytes(1))
    cli = fast(emulator)
    assert once(cli) == 0
    home = isolated_env
    expected = {c.name for c in samples[:3]} | {"sub/copy of first.wav"}
    assert originals(home / "done") == expected
    assert sorted(p.name for p in inbox.iterdir()) == [
        ".hidden.wav",
        ".incoming",
        "notes.txt",
        "sub",
        "upload.wav.part",
    ]
    assert (home / "outbox" / "sub" / "copy of first.srt").exists()
    assert len(emulator.records.sessions) == 3
    assert_invariants(home, expected, emulator)
    states = rows(home, "SELECT state, COUNT(*) FROM job GROUP BY state")
    assert states == [("done", 4)]
    why = cli("why", str(inbox / "notes.txt")).stdout
    assert "not on the allow-list" in why
    why_dup = cli("why", "copy of first.wav").stdout
    assert "linked to the transcript of job" in why_dup
    assert "original now at" in why_dup


def test_quarantine_symlinks_fifos_and_undecodable_names(
    emulator: Emulator, isolated_env: Path, samples: list[Path], tmp_path: Path
) -> None:
    inbox = isolated_env / "inbox"
    inbox.mkdir(parents=True)
    outside = tmp_path / "secret.wav"
    outside.write_bytes(wav_bytes(1))
    (inbox / "link.wav").symlink_to(outside)
    os.mkfifo(inbox / "pipe.wav")
    bad = os.fsencode(inbox) + b"/caf\xe9.wav"
    with open(bad, "wb") as f:
        f.write(wav_bytes(1, tag=7))
    drop(inbox, "good.wav")
    cli = fast(emulator)
    assert once(cli) == 0
    quarantine = isolated_env / "quarantine"
    assert originals(quarantine) == {"link.wav", "pipe.wav", os.fsdecode(b"caf\xe9.wav")}
    assert (quarantine / "link.wav").is_symlink() and outside.exists()
    note = (quarantine / "link.wav.error.txt").read_text()
    assert "symbolic link" in note
    assert (
        "not valid UTF-8"
        in Path(os.fsdecode(os.fsencode(quarantine) + b"/caf\xe9.wav.error.txt")).read_text()
    )
    assert originals(isolated_env / "done") == {"good.wav"}
    assert len(emulator.records.sessions) == 1  # nothing quarantined reached the API


# Each fault, and the calls it must leave in the ledger: every attempt, then success.
FAULTS = {
    "503 with Retry-After": ({"refuse_first": 2, "retry_after": 1}, ["http_503", "http_503"]),
    "drop mid-stream (1011)": ({"drop_after_s": 1.0, "fault_sessions": 1}, ["incomplete"]),
    "clean close without done": ({"close_without_done": True, "fault_sessions": 1}, ["incomplete"]),
    "error event": ({"error_after_s": 1.0, "fault_sessions": 1}, ["error_3500"]),
    "stall": ({"stall_after_s": 1.0, "fault_sessions": 1}, ["incomplete"]),
    "no session.created": ({"no_session_created": True, "fault_sessions": 1}, ["provider_error"]),
}


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_transient_faults_end_done_with_every_attempt_recorded(
    make_emulator, isolated_env: Path, fault: str
) -> None:
    import time

    switches, failed_attempts = FAULTS[fault]
    emu = make_emulator(**switches)
    inbox = isolated_env / "inbox"
    drop(inbox, "talk.wav", seconds=3)
    cli = fast(
        emu,
        VOXBATCH_MISTRAL__IDLE_TIMEOUT_S="1.5",
        VOXBATCH_MISTRAL__CONNECT_TIMEOUT_S="2",
    )
    started = time.monotonic()
    assert once(cli) == 0
    assert originals(isolated_env / "done") == {"talk.wav"}
    calls = [r[0] for r in rows(isolated_env, "SELECT outcome FROM api_call ORDER BY id")]
    assert calls == [*failed_attempts, "ok"]
    if "retry_after" in switches:  # two refusals, each honoured for 1 s
        assert time.monotonic() - started >= 2.0
    assert_invariants(isolated_env, {"talk.wav"}, emu)


def test_429_over_the_session_limit_is_retried(make_emulator, isolated_env: Path) -> None:
    emu = make_emulator(max_sessions=1, speed=20)
    inbox = isolated_env / "inbox"
    names = {f"f{i}.wav" for i in range(3)}
    for i, name in enumerate(sorted(names)):
        drop(inbox, name, seconds=3, tag=i)
    assert once(fast(emu, VOXBATCH_DAEMON__CONCURRENCY="3")) == 0
    assert originals(isolated_env / "done") == names
    refusals = sum(r.status == 429 for r in emu.records.refused)
    assert refusals >= 1
    recorded = rows(isolated_env, "SELECT COUNT(*) FROM api_call WHERE outcome = 'http_429'")
    assert recorded == [(refusals,)]  # every refusal in the ledger, at no cost
    assert len(emu.records.sessions) == 3  # and each file bought once
    assert_invariants(isolated_env, names, emu)


def test_persistent_error_fails_with_a_note_after_bounded_rounds(
    make_emulator, isolated_env: Path
) -> None:
    emu = make_emulator(error_after_s=1.0)
    drop(isolated_env / "inbox", "bad day.wav", seconds=3)
    cli = fast(
        emu,
        VOXBATCH_DAEMON__RETRY_ATTEMPTS="2",
        VOXBATCH_DAEMON__MAX_REQUEUES="1",
        VOXBATCH_DAEMON__REQUEUE_DELAY_S="0",
    )
    assert once(cli) == 1
    assert originals(isolated_env / "failed") == {"bad day.wav"}
    note = (isolated_env / "failed" / "bad day.wav.error.txt").read_text()
    assert "code 3500" in note and "voxbatch retry 1" in note
    # Two rounds of two attempts, each one recorded.
    assert rows(isolated_env, "SELECT COUNT(*) FROM api_call")[0][0] == 4
    assert rows(isolated_env, "SELECT state, requeues FROM job") == [("failed", 1)]
    # retry brings it back, and with the fault gone it succeeds.
    assert "queued again" in cli("retry", "1").stdout
    assert not (isolated_env / "failed" / "bad day.wav.error.txt").exists()
    assert once(fast(make_emulator())) == 0
    assert originals(isolated_env / "done") == {"bad day.wav"}


def test_bad_key_pauses_the_queue_instead_of_failing_files(
    make_emulator, isolated_env: Path
) -> None:
    emu = make_emulator(api_key="the-right-key-123")
    inbox = isolated_env / "inbox"
    for i in range(3):
        drop(inbox, f"f{i}.wav", tag=i)
    cli = fast(emu)
    result = cli("run", "--once", ok=None)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert sum("ERROR" in line and "the queue is paused" in line for line in lines) == 1
    assert "3 job(s) left in the queue: waiting: the queue is paused" in result.stderr
    assert len(emu.records.refused) + len(emu.records.sessions) == 1  # one refusal, not three
    assert rows(isolated_env, "SELECT state FROM job") == [("queued",)] * 3
    assert originals(isolated_env / "work") == {"1.wav", "2.wav", "3.wav"}
    assert "the queue is paused" in cli("why", "f0.wav").stdout
    # With the right key, the same jobs run: nothing was lost or failed.
    good = fast(emu)
    good.env["MISTRAL_API_KEY"] = "the-right-key-123"
    assert once(good) == 0
    assert originals(isolated_env / "done") == {"f0.wav", "f1.wav", "f2.wav"}


def test_outbox_inside_the_inbox_is_refused(emulator: Emulator, isolated_env: Path) -> None:
    cli = fast(emulator, VOXBATCH_INBOX__PATH=str(isolated_env))
    result = cli("run", "--once", ok=None)
    assert result.exit_code == 3
    assert "lies inside the inbox" in result.stderr


def test_subfolders_can_be_excluded(emulator: Emulator, isolated_env: Path) -> None:
    inbox = isolated_env / "inbox"
    drop(inbox, "top.wav")
    drop(inbox / "nested", "deep.wav", tag=1)
    assert once(fast(emulator, VOXBATCH_INBOX__RECURSIVE="false")) == 0
    assert originals(isolated_env / "done") == {"top.wav"}
    assert (inbox / "nested" / "deep.wav").exists()


def test_done_never_overwrites(emulator: Emulator, isolated_env: Path) -> None:
    inbox = isolated_env / "inbox"
    drop(inbox, "same name.wav", tag=1)
    cli = fast(emulator)
    assert once(cli) == 0
    drop(inbox, "same name.wav", tag=2)
    assert once(cli) == 0
    assert originals(isolated_env / "done") == {"same name.wav", "same name (1).wav"}
    assert len(emulator.records.sessions) == 2


def test_status_and_doctor(emulator: Emulator, isolated_env: Path) -> None:
    cli = fast(emulator)
    drop(isolated_env / "inbox", "a.wav")
    assert once(cli) == 0
    data = cli.json("status")
    assert data["done"] == 1 and data["queued"] == 0
    assert data["provider"] == "no daemon running"
    assert float(data["spend_today_usd"]) > 0
    checks = {c["check"]: c for c in cli.json("doctor")}
    assert all(c["ok"] for c in checks.values()), checks
    assert "realtime session opened" in checks["api"]["detail"]
    bad = fast(emulator)
    bad.env["MISTRAL_BASE_URL"] = "http://127.0.0.1:9"  # nothing listens there
    result = bad("doctor", ok=None)
    assert result.exit_code == 1
    assert "FAIL  api" in result.stdout


def test_an_outage_opens_the_circuit_and_stops_claiming(make_emulator, isolated_env: Path) -> None:
    emu = make_emulator(refuse_first=1000, retry_after=0)
    for i in range(5):
        drop(isolated_env / "inbox", f"o{i}.wav", tag=i)
    cli = fast(
        emu,
        VOXBATCH_DAEMON__RETRY_ATTEMPTS="1",
        VOXBATCH_DAEMON__BREAKER_THRESHOLD="2",
        VOXBATCH_DAEMON__BREAKER_PROBE_S="600",
        VOXBATCH_DAEMON__CONCURRENCY="1",
    )
    result = cli("run", "--once", ok=None)
    assert result.exit_code == 1  # work left undone by an outage is not a success
    assert len(emu.records.refused) == 2  # then the circuit opened: no third attempt
    assert rows(isolated_env, "SELECT COUNT(*) FROM job WHERE state = 'queued'") == [(5,)]
    assert originals(isolated_env / "failed") == set()
    waiting = cli.json("status")["waiting"]
    assert len(waiting) == 2 and all("503" in w["reason"] for w in waiting)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm (tmpfs) here")
def test_an_inbox_on_another_filesystem(emulator: Emulator, isolated_env: Path) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        assert os.stat(other).st_dev != os.stat(isolated_env.parent).st_dev
        inbox = Path(other) / "inbox"
        drop(inbox, "remote.wav")
        assert once(fast(emulator, VOXBATCH_INBOX__PATH=str(inbox))) == 0
        assert originals(isolated_env / "done") == {"remote.wav"}
        assert not (inbox / "remote.wav").exists()
        assert [p.name for p in inbox.iterdir()] == [".incoming"]  # no copy left behind


def test_empty_files_and_undecodable_folders_never_block_once(
    emulator: Emulator, isolated_env: Path
) -> None:
    inbox = isolated_env / "inbox"
    drop(inbox, "good.wav")
    (inbox / "empty.wav").write_bytes(b"")
    bad_dir = os.fsencode(inbox) + b"/d\xe9j\xe0"
    os.makedirs(bad_dir)
    with open(bad_dir + b"/inside.wav", "wb") as f:
        f.write(wav_bytes(1, tag=3))
    cli = fast(emulator)
    assert once(cli) == 0  # returns although the empty file never becomes ready
    assert (inbox / "empty.wav").exists()  # left alone, not lost
    assert "an empty file" in cli("why", "empty.wav").stdout
    assert originals(isolated_env / "done") == {"good.wav"}
    assert originals(isolated_env / "quarantine") == {os.fsdecode(b"d\xe9j\xe0/inside.wav")}


def test_a_copy_does_not_spin_while_its_original_waits_for_a_retry_round(
    make_emulator, isolated_env: Path
) -> None:
    emu = make_emulator(refuse_first=1000, retry_after=0)
    inbox = isolated_env / "inbox"
    drop(inbox, "original.wav", tag=1)
    cli = fast(
        emu,
        VOXBATCH_DAEMON__RETRY_ATTEMPTS="1",
        VOXBATCH_DAEMON__REQUEUE_DELAY_S="300",
        VOXBATCH_DAEMON__BREAKER_THRESHOLD="50",
    )
    assert once(cli) == 1  # a round failed: not a success, and it returns at once
    drop(inbox, "copy.wav", tag=1)
    assert once(cli) == 1  # job 1 still waits for its retry round: work left undone
    copy = cli.json("why", "copy.wav")
    assert copy["jobs"][0]["waiting"] == "waiting for job 1 (same audio) to finish"
    kinds = [e["kind"] for e in copy["events"]]
    assert kinds == ["seen", "duplicate", "picked_up", "waiting"]  # no claim loop
    assert len(emu.records.refused) == 1  # the copy bought nothing


def test_process_does_not_steal_a_job_queued_in_the_daemon(
    make_emulator, isolated_env: Path, tmp_path: Path
) -> None:
    emu = make_emulator(refuse_first=1, retry_after=0)
    inbox = isolated_env / "inbox"
    drop(inbox, "queued.wav", tag=5)
    copy = tmp_path / "copy.wav"
    copy.write_bytes((inbox / "queued.wav").read_bytes())
    cli = fast(emu, VOXBATCH_DAEMON__RETRY_ATTEMPTS="1", VOXBATCH_DAEMON__REQUEUE_DELAY_S="300")
    assert once(cli) == 1  # its first round failed: queued for another in 5 minutes
    result = cli("process", str(copy), ok=None)
    assert result.exit_code == 1
    assert "queued in the daemon" in result.stdout + result.stderr
    assert rows(isolated_env, "SELECT state FROM job WHERE id = 1") == [("queued",)]
    assert originals(isolated_env / "work") == {"1.wav"}
    with sqlite3.connect(isolated_env / "voxbatch.db") as conn:  # five minutes later
        conn.execute("UPDATE job SET not_before = NULL WHERE id = 1")
    assert once(cli) == 0  # the daemon still owns it and finishes it
    assert originals(isolated_env / "done") == {"queued.wav"}


def test_one_daemon_per_home(emulator: Emulator, isolated_env: Path) -> None:
    from voxbatch.ingest.folders import lock_home

    isolated_env.mkdir(parents=True, exist_ok=True)
    held = lock_home(isolated_env)
    try:
        result = fast(emulator)("run", "--once", ok=None)
        assert result.exit_code == 3
        assert "another `voxbatch run` is using" in result.stderr
    finally:
        os.close(held)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm (tmpfs) here")
def test_a_pipe_in_an_inbox_on_another_filesystem_is_left_with_a_reason(
    emulator: Emulator, isolated_env: Path
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        inbox = Path(other) / "inbox"
        drop(inbox, "good.wav")
        os.mkfifo(inbox / "pipe.wav")
        cli = fast(emulator, VOXBATCH_INBOX__PATH=str(inbox))
        assert once(cli) == 0
        assert originals(isolated_env / "done") == {"good.wav"}
        assert (inbox / "pipe.wav").exists()
        assert "cannot be quarantined" in cli("why", str(inbox / "pipe.wav")).stdout
