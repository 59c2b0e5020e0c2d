"""`voxbatch run --once` exit codes: 1 while it leaves work undone, also an earlier run's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import cli_for
from tests.helpers.daemon import originals, rows
from tests.helpers.media import wav_bytes

pytestmark = pytest.mark.media  # they run ffmpeg


def test_once_exits_1_while_a_job_waits_for_a_retry_round(
    make_emulator, isolated_env: Path
) -> None:
    emu = make_emulator(error_after_s=0.5, fault_sessions=1)  # the first round fails
    inbox = isolated_env / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "later.wav").write_bytes(wav_bytes(2.0))
    cli = cli_for(
        emu,
        VOXBATCH_DAEMON__STABLE_SECONDS="0.2",
        VOXBATCH_DAEMON__RETRY_ATTEMPTS="1",
        VOXBATCH_DAEMON__REQUEUE_DELAY_S="300",
    )
    first = cli("run", "--once", ok=None)
    assert first.exit_code == 1, first.stderr
    assert rows(isolated_env, "SELECT state, requeues FROM job") == [("queued", 1)]
    # A second run finds the job still waiting for its round: work left undone, exit 1.
    second = cli("run", "--once", ok=None)
    assert second.exit_code == 1, second.stderr
    assert "1 job(s) left in the queue" in second.stderr
    assert rows(isolated_env, "SELECT state FROM job") == [("queued",)]
    assert originals(isolated_env / "work") == {"1.wav"}
    assert len(emu.records.sessions) == 1  # the round was not tried early


def test_once_exits_0_when_a_failed_round_was_retried_and_succeeded_earlier(
    make_emulator, isolated_env: Path
) -> None:
    """The round that failed was tried again in the same run and finished: nothing is left."""
    emu = make_emulator(error_after_s=0.5, fault_sessions=1)
    inbox = isolated_env / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "soon.wav").write_bytes(wav_bytes(2.0))
    cli = cli_for(
        emu,
        VOXBATCH_DAEMON__STABLE_SECONDS="0.2",
        VOXBATCH_DAEMON__RETRY_ATTEMPTS="1",
        VOXBATCH_DAEMON__REQUEUE_DELAY_S="0.2",
    )
    assert cli("run", "--once", ok=None).exit_code == 1  # a round failed in this run
    assert rows(isolated_env, "SELECT state FROM job") == [("done",)]
    assert cli("run", "--once", ok=None).exit_code == 0  # nothing left: a clean run
