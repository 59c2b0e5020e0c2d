"""SIGHUP reloads `voxbatch run`'s configuration: the daemon stays up, nothing is bought twice."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from tests.helpers.daemon import (
    collect_notifications,
    daemon_env,
    daemon_ready,
    originals,
    rows,
    wait_until,
)
from tests.helpers.media import wav_bytes

pytestmark = pytest.mark.media  # they run ffmpeg


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_sighup_mid_stream_reloads_and_the_job_finishes_once(
    make_emulator, home: Path, spawn, tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, address = notify_socket
    messages = collect_notifications(sock)
    emu = make_emulator(speed=1.0)  # real time: the stream lasts seconds
    config = tmp_path / "voxbatch.toml"
    config.write_text("[budget]\ndaily_usd = 5\n")
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "long.wav").write_bytes(wav_bytes(6.0))
    env = daemon_env(emu, home, VOXBATCH_CONFIG=str(config), NOTIFY_SOCKET=address)
    daemon = spawn(env)
    wait_until(
        lambda: any(s.total_bytes > 0 and s.outcome == "open" for s in emu.records.sessions),
        60, "a stream under way", daemon,
    )  # fmt: skip
    config.write_text("[budget]\ndaily_usd = 7\n")
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in daemon.text(), 15, "the reload", daemon)
    assert daemon.process.poll() is None, daemon.text()[-3000:]
    wait_until(lambda: originals(home / "done") == {"long.wav"}, 60, "the job done", daemon)
    assert daemon.process.poll() is None
    assert len(emu.records.sessions) == 1  # bought once: the stream was not cut
    assert rows(home, "SELECT outcome FROM api_call") == [("ok",)]
    assert "budget.daily_usd" in daemon.text()
    reloading = [i for i, m in enumerate(messages) if "RELOADING=1" in m]
    assert reloading, messages
    assert "MONOTONIC_USEC=" in messages[reloading[0]]
    assert any("READY=1" in m for m in messages[reloading[0] + 1 :]), messages
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0


def test_sighup_adds_an_inbox_and_keeps_what_needs_a_restart(
    emulator, home: Path, spawn, tmp_path: Path
) -> None:
    config = tmp_path / "voxbatch.toml"
    config.write_text('[[inbox]]\npath = "inbox"\n')
    env = daemon_env(emulator, home, VOXBATCH_CONFIG=str(config))
    daemon = spawn(env)
    wait_until(lambda: daemon_ready(home), 30, "the daemon to start", daemon)
    config.write_text(
        '[mistral]\nconnect_timeout_s = 7\n\n[[inbox]]\npath = "inbox"\n\n'
        '[[inbox]]\npath = "second"\nlanguage = "fr"\noutputs = ["txt"]\n'
    )
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in daemon.text(), 15, "the reload", daemon)
    assert "mistral.connect_timeout_s changed: needs a restart, keeping the old value" in (
        daemon.text()
    )
    second = home / "second"
    wait_until(second.is_dir, 5, "the new inbox's folder", daemon)
    (second / "new.wav").write_bytes(wav_bytes(1.0, tag=3))
    wait_until(lambda: originals(home / "done") == {"new.wav"}, 30, "the file done", daemon)
    assert rows(home, "SELECT inbox, language FROM job") == [("second", "fr")]
    assert sorted(p.name for p in (home / "outbox").iterdir()) == ["new.txt"]  # its profile

    # A configuration that does not load: said once, the old one kept, the daemon running.
    config.write_text("[daemon\nconcurrency = 2\n")
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "not reloaded" in daemon.text(), 15, "the refusal", daemon)
    assert daemon.process.poll() is None
    (second / "after.wav").write_bytes(wav_bytes(1.0, tag=4))
    wait_until(lambda: len(originals(home / "done")) == 2, 30, "the second file done", daemon)

    # A spend cap added by a reload holds the next job.
    config.write_text(
        '[budget]\ndaily_usd = 0.0000001\n\n[[inbox]]\npath = "inbox"\n\n'
        '[[inbox]]\npath = "second"\n'
    )
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: daemon.text().count("configuration reloaded") == 2, 15, "the reload", daemon)
    (home / "inbox" / "capped.wav").write_bytes(wav_bytes(1.0, tag=5))

    def held_by_the_cap() -> bool:
        found = rows(home, "SELECT wait_reason FROM job WHERE source_name = 'capped.wav'")
        return bool(found) and "daily cap" in (found[0][0] or "")

    wait_until(held_by_the_cap, 30, "the job waiting for the cap", daemon)
    assert len(emulator.records.sessions) == 2  # not bought
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0


def test_the_unit_reloads_with_sighup() -> None:
    unit = Path(__file__).resolve().parents[2] / "systemd" / "voxbatch.service"
    lines = [line.strip() for line in unit.read_text().splitlines()]
    assert "ExecReload=/bin/kill -HUP $MAINPID" in lines
