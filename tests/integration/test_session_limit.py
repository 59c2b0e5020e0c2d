"""A provider that allows fewer sessions than `daemon.concurrency` (429 at the upgrade).

The real SDK against the emulator: the 429s lower voxbatch's own concurrency, cost nothing and
never fail a file, however few retry attempts and rounds the configuration allows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import cli_for
from tests.helpers.daemon import assert_invariants, originals, rows
from tests.helpers.media import wav_bytes

pytestmark = pytest.mark.media  # they run ffmpeg


def test_fewer_sessions_than_concurrency_lowers_the_limit_and_fails_nothing(
    make_emulator, isolated_env: Path
) -> None:
    # Sessions last ~0.5 s each, so the provider is full most of the run.
    emu = make_emulator(max_sessions=2, speed=4, retry_after=0)
    inbox = isolated_env / "inbox"
    inbox.mkdir(parents=True)
    names = {f"f{i:02}.wav" for i in range(12)}
    for i, name in enumerate(sorted(names)):
        (inbox / name).write_bytes(wav_bytes(2, tag=i))
    cli = cli_for(
        emu,
        VOXBATCH_DAEMON__STABLE_SECONDS="0.2",
        VOXBATCH_DAEMON__CONCURRENCY="4",
        # Strict retry settings: a 429 that used up attempts or rounds would fail files.
        VOXBATCH_DAEMON__RETRY_ATTEMPTS="1",
        VOXBATCH_DAEMON__MAX_REQUEUES="1",
        VOXBATCH_DAEMON__REQUEUE_DELAY_S="0",
    )
    result = cli("run", "--once", ok=None)
    assert result.exit_code == 0, result.stderr[-3000:]
    assert originals(isolated_env / "failed") == set()
    assert originals(isolated_env / "done") == names
    assert len(emu.records.sessions) == 12  # each file bought once
    refusals = [r for r in emu.records.refused if r.status == 429]
    # The provider's limit was reached (else this test shows nothing), and once the limit
    # dropped to what the provider allows it was not asked for more: only the first round
    # (concurrency 4 − 2 allowed, at most) was refused. Without the limiter every refused job
    # would ask again and again.
    assert refusals, "no connect was refused: the provider's limit was never reached"
    assert len(refusals) <= 4 - 2, len(refusals)
    # Every refused connect is in the ledger at no cost, and none spent a round.
    refused_rows = rows(
        isolated_env,
        "SELECT cost_usd, estimated, audio_seconds FROM api_call WHERE outcome = 'http_429'",
    )
    assert len(refused_rows) == len(refusals)
    assert all(float(cost) == 0 and not estimated for cost, estimated, _ in refused_rows)
    assert rows(isolated_env, "SELECT MAX(requeues) FROM job") == [(0,)]
    assert "provider allows fewer sessions" in result.stderr
    # Down to what the provider takes, not below it.
    assert "running 2 of 4" in result.stderr and "running 1 of 4" not in result.stderr
    assert_invariants(isolated_env, names, emu)
