"""`voxbatch run` as a real process: watcher, slow writers, bursts, kill -9, SIGTERM, sd_notify."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from tests.helpers.daemon import (
    Daemon,
    assert_invariants,
    collect_notifications,
    daemon_env,
    daemon_ready,
    originals,
    rows,
    run_once,
    voxbatch,
    wait_until,
)
from tests.helpers.media import wav_bytes
from voxbatch.emulator import Emulator

pytestmark = pytest.mark.media  # they run ffmpeg


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def done_count(home: Path) -> int:
    return len(originals(home / "done"))


def test_slow_writer_is_processed_once_after_it_is_complete(
    emulator: Emulator, home: Path, spawn
) -> None:
    env = daemon_env(emulator, home, VOXBATCH_DAEMON__STABLE_SECONDS="2")
    daemon = spawn(env)
    wait_until(lambda: daemon_ready(home), 30, "the daemon to start", daemon)
    data = wav_bytes(10.0)
    target = home / "inbox" / "slow.wav"
    with target.open("wb") as out:  # 10 s of writing, a piece every 0.5 s
        pieces = 20
        step = len(data) // pieces + 1
        for i in range(pieces):
            out.write(data[i * step : (i + 1) * step])
            out.flush()
            time.sleep(0.5)
    wait_until(lambda: done_count(home) == 1, 60, "the file to be done", daemon)
    assert rows(home, "SELECT size_bytes, state FROM job") == [(len(data), "done")]
    assert len(emulator.records.sessions) == 1
    assert emulator.records.sessions[0].total_bytes == len(data) - 44  # all of the PCM
    assert (home / "done" / "slow.wav").read_bytes() == data


def test_temp_then_rename_and_partial_names(emulator: Emulator, home: Path, spawn) -> None:
    env = daemon_env(emulator, home, VOXBATCH_DAEMON__STABLE_SECONDS="1")
    daemon = spawn(env)
    wait_until(lambda: daemon_ready(home), 30, "the daemon to start", daemon)
    incoming = home / "inbox" / ".incoming"
    first = wav_bytes(3.0, tag=1)
    with (incoming / "a.wav").open("wb") as out:
        for i in range(0, len(first), 8000):
            out.write(first[i : i + 8000])
            out.flush()
            time.sleep(0.1)
    time.sleep(1.5)
    assert rows(home, "SELECT COUNT(*) FROM job") == [(0,)]  # nothing taken from .incoming/
    os.rename(incoming / "a.wav", home / "inbox" / "a.wav")
    (home / "inbox" / "b.wav.part").write_bytes(wav_bytes(2.0, tag=2))
    time.sleep(1.5)
    os.rename(home / "inbox" / "b.wav.part", home / "inbox" / "b.wav")
    wait_until(lambda: done_count(home) == 2, 60, "both files done", daemon)
    assert sorted(r[0] for r in rows(home, "SELECT source_name FROM job")) == ["a.wav", "b.wav"]
    assert len(emulator.records.sessions) == 2


@pytest.mark.timeout(1800)  # a last resort: the progress check below is what bounds it
def test_a_burst_of_1000_files_none_lost_or_duplicated(
    emulator: Emulator, home: Path, spawn
) -> None:
    env = daemon_env(
        emulator, home, VOXBATCH_DAEMON__CONCURRENCY="8", VOXBATCH_DAEMON__STABLE_SECONDS="0.5"
    )
    daemon = spawn(env)
    wait_until(lambda: daemon_ready(home), 30, "the daemon to start", daemon)
    inbox = home / "inbox"
    names = {f"burst-{i:04d}.wav" for i in range(1000)}
    base = bytearray(wav_bytes(0.3))
    for i, name in enumerate(sorted(names)):
        base[-2:] = i.to_bytes(2, "little")  # the last sample: every file hashes apart
        tmp = inbox / ".incoming" / name
        tmp.write_bytes(bytes(base))
        os.rename(tmp, inbox / name)
    # Two ffmpeg runs a file: 260-600+ s on two cores shared with other work, with either ffmpeg.
    # So the limit is on progress, not on the machine's speed: 60 s without a file done fails.
    done, progressed = 0, time.monotonic()
    while done < 1000:
        if (now_done := done_count(home)) > done:
            done, progressed = now_done, time.monotonic()
        elif time.monotonic() - progressed > 60:
            raise AssertionError(f"stuck at {done} files done\n{daemon.text()[-4000:]}")
        time.sleep(0.5)
    assert originals(home / "done") == names
    assert rows(home, "SELECT COUNT(*), COUNT(DISTINCT content_sha256) FROM job") == [(1000, 1000)]
    assert len(emulator.records.sessions) == 1000
    assert len({s.sha256 for s in emulator.records.sessions}) == 1000
    assert_invariants(home, names, emulator)


def test_watcher_is_restarted_after_an_undecodable_name_and_keeps_watching(
    emulator: Emulator, home: Path, spawn, tmp_path: Path
) -> None:
    env = daemon_env(emulator, home, VOXBATCH_DAEMON__WATCH_MODE="inotify")
    daemon = spawn(env)
    wait_until(lambda: daemon_ready(home), 30, "the daemon to start", daemon)
    inbox = home / "inbox"
    with open(os.fsencode(inbox) + b"/r\xe9union.wav", "wb") as f:
        f.write(wav_bytes(1.0, tag=3))
    target = tmp_path / "elsewhere.wav"
    target.write_bytes(wav_bytes(1.0, tag=4))
    (inbox / "link.wav").symlink_to(target)
    wait_until(lambda: len(originals(home / "quarantine")) == 2, 30, "both quarantined", daemon)
    # watchfiles raises on the undecodable name: the supervisor restarted it, and the scan
    # that follows a restart set both aside. Give the new watcher time to be up; after that
    # the periodic rescan is 600 s away, so only its events can find the next file.
    time.sleep(2.5)
    (inbox / "after.wav").write_bytes(wav_bytes(2.0, tag=5))
    wait_until(lambda: done_count(home) == 1, 30, "the next file done", daemon)
    assert originals(home / "done") == {"after.wav"}
    assert target.exists()
    assert daemon.process.poll() is None
    assert daemon.text().count("the folder watcher stopped") == 1


# --- crashes -----------------------------------------------------------------------------------


def _kill_when(daemon: Daemon, check, what: str) -> None:
    wait_until(check, 60, what, daemon)
    daemon.process.send_signal(signal.SIGKILL)
    daemon.wait(10)


@pytest.mark.parametrize("point", ["claim", "leased", "file"])
def test_kill_9_after_claim_or_mid_move_then_restart(
    emulator: Emulator, home: Path, spawn, point: str
) -> None:
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    names = {f"m{i}.wav" for i in range(3)}
    for i, name in enumerate(sorted(names)):
        (inbox / name).write_bytes(wav_bytes(2.0, tag=i))
    crashing = spawn(daemon_env(emulator, home, VOXBATCH_CRASH_AT=point))
    assert crashing.wait(60) == -signal.SIGKILL
    planned = rows(home, "SELECT COUNT(*) FROM job WHERE move_to IS NOT NULL")
    leased = rows(home, "SELECT COUNT(*) FROM job WHERE state = 'claimed'")
    if point == "leased":
        assert leased == [(1,)]  # it died holding a job, already moved to work/; the scan may
        # have been moving another file meanwhile (planned, not made: the restart finishes it)
        held = "SELECT COUNT(*) FROM job WHERE state = 'claimed' AND move_to IS NOT NULL"
        assert rows(home, held) == [(0,)] and planned in ([(0,)], [(1,)])
    elif point == "file":
        # It died between recording a job's move to done/ and making it; the scan may have been
        # claiming another file meanwhile (its move planned too: the restart finishes both).
        ending = (
            "SELECT COUNT(*) FROM job WHERE move_to IS NOT NULL AND state IN ('done', 'failed')"
        )
        assert rows(home, ending) == [(1,)] and planned in ([(1,)], [(2,)])
    else:
        assert planned == [(1,)]  # it died between recording a move and making it
    restarted = run_once(daemon_env(emulator, home))
    assert restarted.returncode == 0, restarted.stderr
    story = voxbatch(daemon_env(emulator, home), "why", "m0.wav").stdout
    expected = "its worker stopped" if point == "leased" else "after a restart"
    assert expected in story
    assert originals(home / "done") == names
    assert_invariants(home, names, emulator)


@pytest.mark.parametrize("threshold", ["0.50", "0"])
def test_kill_9_mid_stream_then_restart(make_emulator, home: Path, spawn, threshold: str) -> None:
    emu = make_emulator(speed=1.0)  # real time: the stream lasts seconds
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "long.wav").write_bytes(wav_bytes(8.0))
    (inbox / "short.wav").write_bytes(wav_bytes(1.0, tag=9))
    env = daemon_env(emu, home, VOXBATCH_DAEMON__REVIEW_ABOVE_USD=threshold)
    daemon = spawn(env)
    _kill_when(
        daemon,
        lambda: any(s.total_bytes > 64000 and s.outcome == "open" for s in emu.records.sessions),
        "a stream under way",
    )
    assert rows(home, "SELECT COUNT(*) FROM api_call WHERE outcome = 'started'")[0][0] >= 1
    fast = daemon_env(emu, home, VOXBATCH_DAEMON__REVIEW_ABOVE_USD=threshold)
    emu.reconfigure(speed=0)
    result = run_once(fast)
    assert result.returncode == 0, result.stderr
    abandoned = rows(home, "SELECT estimated, cost_usd FROM api_call WHERE outcome = 'abandoned'")
    assert abandoned and all(est == 1 and float(cost) > 0 for est, cost in abandoned)
    inputs = {"long.wav", "short.wav"}
    if threshold == "0":  # paying again costs more than allowed: an operator decides
        review = rows(home, "SELECT id, source_name FROM job WHERE state = 'needs_review'")
        assert len(review) >= 1
        status = voxbatch(fast, "status").stdout
        assert "needs review:  " + str(len(review)) in status
        for job_id, _name in review:
            assert voxbatch(fast, "retry", str(job_id)).returncode == 0
        assert run_once(fast).returncode == 0
    assert originals(home / "done") == inputs
    assert_invariants(home, inputs, emu)


def test_sigterm_drains_then_requeues_what_is_unfinished(make_emulator, home: Path, spawn) -> None:
    emu = make_emulator(speed=1.0)
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "long.wav").write_bytes(wav_bytes(20.0))
    env = daemon_env(emu, home, VOXBATCH_DAEMON__DRAIN_SECONDS="1")
    daemon = spawn(env)
    wait_until(
        lambda: any(s.total_bytes > 0 for s in emu.records.sessions), 60, "streaming", daemon
    )
    started = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    assert time.monotonic() - started < 8  # 1 s of drain, then out
    assert rows(home, "SELECT state, wait_reason FROM job") == [
        ("queued", "voxbatch stopped before it finished")
    ]
    assert rows(home, "SELECT outcome, estimated FROM api_call") == [("cancelled", 1)]
    assert originals(home / "work") == {"1.wav"}
    emu.reconfigure(speed=0)
    assert run_once(env).returncode == 0
    assert originals(home / "done") == {"long.wav"}
    assert_invariants(home, {"long.wav"}, emu)


def test_sigterm_lets_a_short_job_finish(make_emulator, home: Path, spawn) -> None:
    emu = make_emulator(speed=1.0)
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "short.wav").write_bytes(wav_bytes(3.0))
    daemon = spawn(daemon_env(emu, home, VOXBATCH_DAEMON__DRAIN_SECONDS="30"))
    wait_until(
        lambda: any(s.total_bytes > 0 for s in emu.records.sessions), 60, "streaming", daemon
    )
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    assert originals(home / "done") == {"short.wav"}


def test_sd_notify_ready_status_stopping(
    emulator: Emulator, home: Path, spawn, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, address = notify_socket
    messages = collect_notifications(sock)
    env = daemon_env(emulator, home, NOTIFY_SOCKET=address, WATCHDOG_USEC="2000000")
    env["WATCHDOG_PID"] = ""
    daemon = spawn(env)
    wait_until(lambda: any("READY=1" in m for m in messages), 30, "READY=1", daemon)
    ready = next(m for m in messages if "READY=1" in m)
    assert "STATUS=0 queued, 0 running" in ready
    wait_until(lambda: any(m == "WATCHDOG=1" for m in messages), 10, "WATCHDOG=1", daemon)
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    wait_until(lambda: any("STOPPING=1" in m for m in messages), 5, "STOPPING=1", daemon)
    sock.close()


def test_refused_key_pauses_until_the_key_file_changes(
    make_emulator, home: Path, spawn, tmp_path: Path
) -> None:
    right, wrong = "right-key-0123456789", "wrong-key-9876543210"
    emu = make_emulator(api_key=right)
    key_file = tmp_path / "key"
    key_file.write_text(wrong)
    env = daemon_env(emu, home, VOXBATCH_MISTRAL__API_KEY_FILE=str(key_file))
    del env["MISTRAL_API_KEY"]
    env["VOXBATCH_LOG_LEVEL"] = "DEBUG"  # the key must stay out of even the noisiest log
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    for i in range(3):
        (inbox / f"k{i}.wav").write_bytes(wav_bytes(1.0, tag=i))
    daemon = spawn(env)
    wait_until(
        lambda: rows(home, "SELECT 1 FROM worker WHERE provider = 'paused'"), 30, "pause", daemon
    )
    assert voxbatch(env, "status", "--json").stdout.count("the queue is paused") >= 1
    assert rows(home, "SELECT COUNT(*) FROM job WHERE state = 'failed'") == [(0,)]
    assert len(emu.records.refused) == 1  # one refusal, not one per file
    key_file.write_text(right)
    wait_until(lambda: done_count(home) == 3, 60, "all done after the key was fixed", daemon)
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    log = daemon.text()
    assert log.count("the queue is paused") == 1
    assert "accepted again" in log
    stored = (home / "voxbatch.db").read_bytes()
    outputs = b"".join(p.read_bytes() for p in (home / "outbox").iterdir())
    for key in (right, wrong):
        assert key not in log and key.encode() not in stored and key.encode() not in outputs


def test_tail_shows_the_partial_transcript_while_streaming(
    make_emulator, home: Path, spawn
) -> None:
    emu = make_emulator(speed=1.0)
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "live.wav").write_bytes(wav_bytes(8.0))
    env = daemon_env(emu, home)
    daemon = spawn(env)
    partial = wait_until(
        lambda: rows(home, "SELECT partial_text FROM job WHERE partial_text != ''"),
        60, "partial text", daemon,
    )[0][0]  # fmt: skip
    snapshot = voxbatch(env, "tail", "1").stdout.strip()
    followed = voxbatch(env, "tail", "1", "--follow")
    assert followed.returncode == 0
    final = rows(home, "SELECT text FROM transcript")[0][0]
    assert followed.stdout.strip() == final.strip()
    assert snapshot and final.strip().startswith(snapshot) and len(snapshot) < len(final.strip())
    assert final.startswith(partial)


def test_a_linked_copy_as_circuit_probe_does_not_stall_the_queue(
    make_emulator, home: Path, spawn
) -> None:
    emu = make_emulator()
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    known = wav_bytes(2.0, tag=1)
    (inbox / "known.wav").write_bytes(known)
    assert run_once(daemon_env(emu, home)).returncode == 0  # its transcript is bought
    emu.reconfigure(refuse_first=2)  # the next connection is refused (one was used)
    env = daemon_env(
        emu,
        home,
        VOXBATCH_DAEMON__RETRY_ATTEMPTS="1",
        VOXBATCH_DAEMON__BREAKER_THRESHOLD="1",
        VOXBATCH_DAEMON__BREAKER_PROBE_S="1",
        VOXBATCH_DAEMON__REQUEUE_DELAY_S="3",
    )
    daemon = spawn(env)
    (inbox / "new.wav").write_bytes(wav_bytes(2.0, tag=2))
    wait_until(
        lambda: rows(home, "SELECT 1 FROM job WHERE source_name = 'new.wav' AND requeues = 1"),
        30, "a failed round and an open circuit", daemon,
    )  # fmt: skip
    (inbox / "known again.wav").write_bytes(known)  # the next claim, the probe: linked, free
    wait_until(lambda: done_count(home) == 3, 30, "the queue moving again", daemon)


def test_kill_9_mid_summary_then_restart(make_emulator, home: Path, spawn) -> None:
    emu = make_emulator(http_delay_first=1, http_delay_s=60, http_delay_endpoints=("chat",))
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "meeting.wav").write_bytes(wav_bytes(3.0))
    env = daemon_env(emu, home, VOXBATCH_INBOX__SUMMARY="true", VOXBATCH_INBOX__VOICE_ID="marie")
    daemon = spawn(env)
    _kill_when(
        daemon,
        lambda: rows(home, "SELECT 1 FROM api_call WHERE kind = 'chat' AND outcome = 'started'"),
        "a chat call under way",
    )
    emu.reconfigure(http_delay_first=0)
    result = run_once(env)
    assert result.returncode == 0, result.stderr
    calls = rows(home, "SELECT kind, outcome, estimated FROM api_call ORDER BY id")
    assert calls[0] == ("stt", "ok", 0)
    assert ("chat", "abandoned", 1) in calls  # settled, charged as an estimate
    assert [k for k, _, _ in calls].count("stt") == 1  # the transcript was not bought again
    assert calls[-1] == ("tts", "ok", 0)
    assert (home / "outbox" / "meeting.summary.mp3").exists()
    assert_invariants(home, {"meeting.wav"}, emu)


def test_a_worker_that_lost_its_lease_does_not_file_the_original(
    make_emulator, home: Path, spawn
) -> None:
    emu = make_emulator(speed=2.0)
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "contested.wav").write_bytes(wav_bytes(6.0))
    daemon = spawn(daemon_env(emu, home))
    wait_until(
        lambda: any(s.total_bytes > 0 for s in emu.records.sessions), 60, "streaming", daemon
    )
    with sqlite3.connect(home / "voxbatch.db", timeout=10) as conn:  # another worker took over
        conn.execute(
            "UPDATE job SET lease_owner = 'elsewhere:1:x', "
            "lease_expires_at = '2999-01-01 00:00:00' WHERE id = 1"
        )
    wait_until(lambda: "its lease passed to elsewhere" in daemon.text(), 60, "the refusal", daemon)
    assert originals(home / "work") == {"1.wav"}  # left to the new owner
    assert originals(home / "done") == set()
    assert rows(home, "SELECT state, lease_owner FROM job") == [("transcribed", "elsewhere:1:x")]
