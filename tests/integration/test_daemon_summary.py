"""Summaries and spend caps inside `voxbatch run --once` (real SDK against the emulator)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import Cli, cli_for
from tests.helpers.daemon import originals, rows
from tests.helpers.media import wav_bytes
from voxbatch.emulator import Emulator
from voxbatch.media.audio import probe
from voxbatch.media.ffmpeg import find_ffmpeg

pytestmark = pytest.mark.media  # they run ffmpeg


def summary_cli(emu: Emulator, **env: str) -> Cli:
    return cli_for(
        emu,
        VOXBATCH_DAEMON__STABLE_SECONDS="0.2",
        VOXBATCH_INBOX__SUMMARY="true",
        VOXBATCH_INBOX__VOICE_ID="marie",
        **env,
    )


def drop(home: Path, name: str, seconds: float = 3.0, tag: int = 0) -> None:
    inbox = home / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_bytes(wav_bytes(seconds, tag=tag))


def test_summary_inbox_writes_summary_and_playable_speech(
    emulator: Emulator, isolated_env: Path
) -> None:
    import asyncio

    drop(isolated_env, "meeting.wav")
    cli = summary_cli(emulator)
    assert cli("run", "--once").exit_code == 0
    outbox = isolated_env / "outbox"
    assert (outbox / "meeting.summary.md").read_text().strip()
    speech = outbox / "meeting.summary.mp3"
    info = asyncio.run(probe(speech, ffmpeg=find_ffmpeg()))
    assert info.duration_seconds and info.duration_seconds > 0
    kinds = rows(isolated_env, "SELECT kind, outcome FROM api_call ORDER BY id")
    assert [k for k, _ in kinds].count("stt") == 1
    assert [k for k, _ in kinds].count("chat") == 1  # a 3-second transcript fits one call
    assert [k for k, _ in kinds].count("tts") == 1
    assert all(o == "ok" for _, o in kinds)
    assert originals(isolated_env / "done") == {"meeting.wav"}
    shown = cli("show", "1").stdout
    assert "ummary" in shown


def test_speech_failure_then_retry_buys_nothing_twice(make_emulator, isolated_env: Path) -> None:
    emu = make_emulator(http_fail_first=50, http_fail_endpoints=("speech",), retry_after=0)
    drop(isolated_env, "call.wav")
    cli = summary_cli(
        emu, VOXBATCH_DAEMON__MAX_REQUEUES="0", VOXBATCH_DAEMON__RETRY_INITIAL_S="0.01"
    )
    assert cli("run", "--once", ok=None).exit_code == 1
    assert originals(isolated_env / "failed") == {"call.wav"}
    before = rows(isolated_env, "SELECT kind, COUNT(*) FROM api_call GROUP BY kind")
    assert dict(before)["stt"] == 1 and dict(before)["chat"] == 1
    emu.reconfigure(http_fail_first=0)
    cli("retry", "1")
    assert cli("run", "--once").exit_code == 0
    assert originals(isolated_env / "done") == {"call.wav"}
    after = dict(rows(isolated_env, "SELECT kind, COUNT(*) FROM api_call GROUP BY kind"))
    assert after["stt"] == 1 and after["chat"] == dict(before)["chat"]  # nothing bought twice
    assert len(emu.records.sessions) == 1
    assert (isolated_env / "outbox" / "call.summary.mp3").exists()


def test_daily_cap_makes_jobs_wait_never_fail(emulator: Emulator, isolated_env: Path) -> None:
    for i in range(3):
        drop(isolated_env, f"j{i}.wav", seconds=3.0, tag=i)
    # One 3-second job is estimated at $0.0003: the cap fits one, not two.
    cli = cli_for(
        emulator, VOXBATCH_DAEMON__STABLE_SECONDS="0.2", VOXBATCH_BUDGET__DAILY_USD="0.0005"
    )
    assert cli("run", "--once").exit_code == 0
    assert rows(isolated_env, "SELECT state, COUNT(*) FROM job GROUP BY state") == [
        ("done", 1),
        ("queued", 2),
    ]
    status = cli("status").stdout
    assert "2 job(s) wait for the spend cap" in status
    assert "daily cap" in status
    waiting = cli.json("status")["waiting"]
    assert len(waiting) == 2 and all("daily cap" in w["reason"] for w in waiting)
    held = rows(isolated_env, "SELECT source_name FROM job WHERE state = 'queued'")[0][0]
    assert "daily cap" in cli("why", held).stdout
    spent = sum(Decimal(c) for (c,) in rows(isolated_env, "SELECT cost_usd FROM api_call"))
    assert spent <= Decimal("0.0005")
    raised = cli_for(
        emulator, VOXBATCH_DAEMON__STABLE_SECONDS="0.2", VOXBATCH_BUDGET__DAILY_USD="1"
    )
    assert raised("run", "--once").exit_code == 0
    assert rows(isolated_env, "SELECT state, COUNT(*) FROM job GROUP BY state") == [("done", 3)]


def test_a_copy_that_would_buy_a_summary_respects_the_cap(
    emulator: Emulator, isolated_env: Path
) -> None:
    drop(isolated_env, "first.wav", tag=1)
    plain = cli_for(emulator, VOXBATCH_DAEMON__STABLE_SECONDS="0.2")
    assert plain("run", "--once").exit_code == 0  # transcript bought, no summary
    (isolated_env / "inbox" / "again.wav").write_bytes(wav_bytes(3.0, tag=1))
    capped = summary_cli(emulator, VOXBATCH_BUDGET__DAILY_USD="0.0000001")
    assert capped("run", "--once").exit_code == 0
    assert emulator.records.chat == [] and emulator.records.speech == []
    waiting = capped.json("why", "again.wav")["jobs"][0]["waiting"]
    assert waiting and "daily cap" in waiting

    # A cap with room for the summary, but not for buying the transcript again: it runs,
    # and buys only what it lacks.
    from voxbatch.accounting import budget
    from voxbatch.accounting.prices import stt_charge
    from voxbatch.config import Settings

    settings = Settings.model_validate(
        {"home": str(isolated_env), "inbox": [{"summary": True, "voice_id": "marie"}]}
    )
    stt = stt_charge(settings.prices, settings.mistral.transcription_model, 3).cost_usd
    summary_part = budget.estimate_job_cost(settings, settings.inbox[0], 3.0) - stt
    spent = sum(Decimal(c) for (c,) in rows(isolated_env, "SELECT cost_usd FROM api_call"))
    cap = spent + summary_part + stt / 2  # below spent + a full new job
    roomy = summary_cli(emulator, VOXBATCH_BUDGET__DAILY_USD=str(cap))
    assert roomy("run", "--once").exit_code == 0
    kinds = [k for (k,) in rows(isolated_env, "SELECT kind FROM api_call ORDER BY id")]
    assert kinds == ["stt", "chat", "tts"]  # no second transcription
    assert originals(isolated_env / "done") == {"first.wav", "again.wav"}


def test_an_unpriced_summary_model_is_refused_before_any_claim(
    emulator: Emulator, isolated_env: Path
) -> None:
    drop(isolated_env, "x.wav")
    cli = summary_cli(emulator, VOXBATCH_MISTRAL__CHAT_MODEL="mistral-unknown-9999")
    result = cli("run", "--once", ok=None)
    assert result.exit_code == 3  # the daemon cannot start
    assert "mistral-unknown-9999" in result.stderr
    assert rows(isolated_env, "SELECT COUNT(*) FROM job") == [(0,)]  # nothing was claimed
    assert (isolated_env / "inbox" / "x.wav").exists()  # untouched


def test_a_slow_chat_answer_is_tried_again_in_a_later_round_not_failed(
    make_emulator, isolated_env: Path
) -> None:
    emu = make_emulator(http_delay_first=1, http_delay_s=5, http_delay_endpoints=("chat",))
    drop(isolated_env, "slow.wav")
    cli = summary_cli(
        emu, VOXBATCH_MISTRAL__HTTP_TIMEOUT_S="1", VOXBATCH_DAEMON__REQUEUE_DELAY_S="0.2"
    )
    assert cli("run", "--once", ok=None).exit_code == 1  # a round failed, then it succeeded
    assert rows(isolated_env, "SELECT state FROM job") == [("done",)]
    calls = rows(isolated_env, "SELECT kind, outcome, estimated FROM api_call ORDER BY id")
    assert ("chat", "timeout", 1) in calls and calls.count(("stt", "ok", 0)) == 1
    assert originals(isolated_env / "failed") == set()
