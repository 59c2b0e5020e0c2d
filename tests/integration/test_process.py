"""`voxbatch process` end to end: real ffmpeg, the real SDK, the emulator, the database, the CLI."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pysubs2
import pytest

from tests.conftest import Cli, cli_for
from tests.helpers.media import hostile_set, tone_bursts
from voxbatch.emulator import Emulator, Segment, recognize
from voxbatch.errors import display_path
from voxbatch.media.audio import stream_pcm
from voxbatch.media.ffmpeg import find_ffmpeg

pytestmark = pytest.mark.media  # they run ffmpeg

KEY = "test-key-0123456789"


@dataclass
class Expected:
    text: str
    segments: tuple[Segment, ...]
    audio_seconds: float


def expected_recognition(path: Path) -> Expected:
    """What the emulator must answer for this file, computed from our own conversion."""

    async def collect() -> bytes:
        return b"".join([c async for c in stream_pcm(path, ffmpeg=find_ffmpeg())])

    pcm = asyncio.run(collect())
    got = recognize(pcm)
    return Expected(got.text, got.segments, len(pcm) / 32_000)


def db_rows(home: Path, query: str) -> list[tuple]:  # type: ignore[type-arg]
    with sqlite3.connect(home / "voxbatch.db") as conn:
        return conn.execute(query).fetchall()


def poll_rows(home: Path, query: str) -> list[tuple]:  # type: ignore[type-arg]
    """db_rows while another process may still be creating or migrating the database."""
    if not (home / "voxbatch.db").exists():
        return []
    try:
        return db_rows(home, query)
    except sqlite3.OperationalError:  # no such table yet, or briefly locked
        return []


def test_samples_are_transcribed_exactly(
    cli: Cli, emulator: Emulator, samples: list[Path], isolated_env: Path
) -> None:
    rows = cli.json("process", *map(str, samples))
    assert [r["state"] for r in rows] == ["done"] * len(samples)
    assert [r["job_id"] for r in rows] == list(range(1, len(samples) + 1))  # command-line order
    assert len(emulator.records.sessions) == len(samples)
    for row, clip in zip(rows, samples, strict=True):
        expected = expected_recognition(clip)
        shown = cli.json("show", str(row["job_id"]))
        assert shown["transcript"]["text"] == expected.text
        assert expected.text.strip(), f"{clip.name} should contain voiced audio"
        times = [(s["start"], s["end"]) for s in shown["transcript"]["segments"]]
        assert times == [(s.start, s.end) for s in expected.segments]
        assert row["audio_seconds"] == pytest.approx(expected.audio_seconds, abs=0.001)
        assert {Path(p).suffix for p in row["outputs"]} == {".txt", ".srt", ".vtt", ".json"}
        outbox = isolated_env / "outbox"
        assert (outbox / f"{clip.stem}.txt").read_text().strip() == expected.text.strip()


def test_export_srt_times_rise_and_match_audio(
    cli: Cli, samples: list[Path], tmp_path: Path
) -> None:
    clip = samples[0]
    [row] = cli.json("process", str(clip))
    srt = cli("export", str(row["job_id"]), "--format", "srt").stdout
    subs = pysubs2.SSAFile.from_string(srt)
    expected = expected_recognition(clip)
    assert [(e.start, e.end) for e in subs] == [
        (round(s.start * 1000), round(s.end * 1000)) for s in expected.segments
    ]
    assert all(a.end <= b.start for a, b in itertools.pairwise(subs))
    assert subs[-1].end <= row["audio_seconds"] * 1000 + 1
    out = tmp_path / "x.vtt"
    prefix = cli.json("show", str(row["job_id"]))["content_sha256"][:10]
    cli("export", prefix, "--format", "vtt", "-o", str(out))
    assert out.read_text().startswith("WEBVTT")


def test_search_finds_the_job_with_a_snippet(cli: Cli, samples: list[Path]) -> None:
    rows = cli.json("process", *map(str, samples[:2]))
    text = cli.json("show", str(rows[1]["job_id"]))["transcript"]["text"]
    word = text.split()[len(text.split()) // 2]
    hits = cli.json("search", word)
    assert rows[1]["job_id"] in [h["job_id"] for h in hits]
    assert any(f"[{word}]" in h["snippet"] for h in hits)
    assert cli.json("search", "zzzznotaword") == []
    # Hostile query syntax is searched for, never a crash.
    assert cli("search", 'AND("', "--json").exit_code == 0


def test_same_audio_twice_costs_one_transcription(
    cli: Cli, emulator: Emulator, samples: list[Path], tmp_path: Path, isolated_env: Path
) -> None:
    first = cli.json("process", *map(str, samples))
    sessions = len(emulator.records.sessions)
    copy = tmp_path / "renamed copy.wav"
    copy.write_bytes(samples[0].read_bytes())
    again = cli.json("process", *map(str, samples), str(copy), "--out", str(tmp_path / "out2"))
    assert len(emulator.records.sessions) == sessions  # no new transcription call
    assert all(r["state"] == "done" for r in again)
    by_first = {r["file"]: r["job_id"] for r in first}
    for row in again[:-1]:
        assert row["duplicate_of"] == by_first[row["file"]]
        assert row["cost_usd"] == "0"
        assert len(row["outputs"]) == 4 and all(Path(p).exists() for p in row["outputs"])
    assert again[-1]["duplicate_of"] == first[0]["job_id"]
    # One transcript per content hash; stt calls only for the first run.
    assert db_rows(isolated_env, "SELECT count(*) FROM transcript") == [(len(samples),)]
    assert db_rows(isolated_env, "SELECT count(*) FROM api_call") == [(len(samples),)]
    history = cli.json("show", str(again[-1]["job_id"]))["history"]
    assert any("same audio as job" in h["detail"] for h in history)


def test_costs_match_the_api_call_rows(
    make_emulator, samples: list[Path], isolated_env: Path
) -> None:
    # The first two sessions drop after 2 s of audio: failed, estimated attempts cost money too.
    emu = make_emulator(drop_after_s=2.0, fault_sessions=2)
    cli = cli_for(emu, VOXBATCH_DAEMON__CONCURRENCY="1")
    cli.json("process", *map(str, samples))
    report = cli.json("costs")
    rows = db_rows(isolated_env, "SELECT cost_usd, outcome, estimated FROM api_call")
    assert {(r[1], r[2]) for r in rows} == {("incomplete", 1), ("ok", 0)}
    assert Decimal(report["total_usd"]) == sum(Decimal(r[0]) for r in rows)
    billed = sum(math.ceil(s.total_bytes / 32_000) for s in emu.records.sessions)
    assert Decimal(report["total_usd"]) == Decimal(billed) * Decimal("0.006") / 60
    [group] = report["rows"]
    assert (group["model"], group["kind"], group["calls"], group["failed_calls"]) == (
        "voxtral-mini-transcribe-realtime-2602",
        "stt",
        len(samples) + 2,
        2,
    )
    human = cli("costs").stdout
    assert "total: $" in human


def test_hostile_files_among_good_ones(cli: Cli, emulator: Emulator, tmp_path: Path) -> None:
    cases = hostile_set(tmp_path / "hostile")
    paths = [str(p) for p, _ in cases]
    result = cli("process", "--json", "--", *paths, ok=False)
    assert result.exit_code == 1, result.stderr
    rows = {r["file"]: r for r in json.loads(result.stdout)}
    for path, should_succeed in cases:
        row = rows[display_path(path)]
        if should_succeed:
            assert row["state"] == "done", (path.name, row["error"])
            assert row["error"] is None
        else:
            assert row["state"] == "failed", path.name
            assert row["error"] and "\n" not in row["error"], row
            assert "Traceback" not in row["error"]
    # Every good file, whatever its name, was read as itself: one session each, exact words.
    good = [path for path, ok in cases if ok]
    # (A truncated mp3 is only found out while streaming: its session never gets `end`.)
    assert sum(s.end_received for s in emulator.records.sessions) == len(good)
    for path in good:
        shown = cli.json("show", str(rows[display_path(path)]["job_id"]))
        assert shown["transcript"]["text"] == expected_recognition(path).text, path.name
    stderr_lines = [line for line in result.stderr.splitlines() if "FAILED" in line]
    assert len(stderr_lines) == sum(1 for _, ok in cases if not ok)


def test_missing_file_and_directory_get_clear_reasons(cli: Cli, tmp_path: Path) -> None:
    # A usage error (exit 2), refused before any file is processed.
    result = cli("process", "--json", str(tmp_path / "nope.wav"), str(tmp_path), ok=False)
    assert result.exit_code == 2 and result.stdout == ""
    assert "nope.wav does not exist" in result.stderr
    result = cli("process", "--json", str(tmp_path), ok=False)
    assert result.exit_code == 2 and "is a directory" in result.stderr


@pytest.mark.parametrize(
    ("fault", "expected_outcomes"),
    [
        ({"refuse_first": 2, "retry_after": 0}, ["http_503", "http_503", "ok"]),
        ({"drop_after_s": 1.0, "fault_sessions": 1}, ["incomplete", "ok"]),
        ({"close_without_done": True, "fault_sessions": 1}, ["incomplete", "ok"]),
        ({"error_after_s": 1.0, "fault_sessions": 1}, ["error_3500", "ok"]),
        ({"max_sessions": 1}, None),
        ({"no_session_created": True, "fault_sessions": 1}, ["provider_error", "ok"]),
    ],
)
def test_faults_are_retried_and_every_attempt_recorded(
    make_emulator,
    tmp_path: Path,
    fault: dict,
    expected_outcomes: list[str] | None,
    isolated_env: Path,
) -> None:
    emu = make_emulator(**fault)
    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 3.0)
    files = [clip]
    if expected_outcomes is None:  # 429: two files, one session allowed at a time
        other = tmp_path / "other.wav"
        tone_bursts(other, 3.0, freq=660)
        files.append(other)
    rows = cli_for(emu, VOXBATCH_MISTRAL__CONNECT_TIMEOUT_S="1").json("process", *map(str, files))
    assert all(r["state"] == "done" for r in rows), rows
    calls = db_rows(isolated_env, "SELECT outcome, cost_usd, estimated FROM api_call ORDER BY id")
    if expected_outcomes is not None:
        assert [c[0] for c in calls] == expected_outcomes
    else:
        assert {c[0] for c in calls} <= {"ok", "http_429"} and len(calls) >= 2
    for outcome, cost, estimated in calls:
        if outcome in ("http_503", "http_429"):
            assert Decimal(cost) == 0 and not estimated  # refused before any audio
        if outcome == "incomplete":
            assert Decimal(cost) > 0 and estimated  # audio was sent: charged as an estimate


def test_stall_is_detected_by_the_idle_timeout(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(stall_after_s=0.5, fault_sessions=1)
    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 2.0)
    cli = cli_for(emu, VOXBATCH_MISTRAL__IDLE_TIMEOUT_S="1.5")
    [row] = cli.json("process", str(clip))
    assert row["state"] == "done"
    calls = cli.json("show", str(row["job_id"]))["api_calls"]
    assert [c["outcome"] for c in calls] == ["incomplete", "ok"]
    assert "no answer" in calls[0]["error"]


def test_bad_key_fails_fast_with_one_clear_reason(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(api_key="the-right-key")
    clips = []
    for i in range(3):
        clip = tmp_path / f"c{i}.wav"
        tone_bursts(clip, 1.0, freq=300 + 100 * i)
        clips.append(str(clip))
    # One file at a time: the first refusal must stop the others from even trying.
    cli = cli_for(emu, VOXBATCH_DAEMON__CONCURRENCY="1")
    result = cli("process", "--json", *clips, ok=False)
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert all("refused the API key" in r["error"] for r in rows)
    assert emu.records.sessions == []
    assert [r.status for r in emu.records.refused] == [401]  # no retry, no second file


def test_retries_exhausted_fail_with_the_reason(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(refuse_first=100, retry_after=0)
    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 1.0)
    result = cli_for(emu, VOXBATCH_DAEMON__RETRY_ATTEMPTS="3")(
        "process", "--json", str(clip), ok=False
    )
    [row] = json.loads(result.stdout)
    assert row["state"] == "failed" and "HTTP 503" in row["error"]
    assert len(cli_for(emu).json("show", str(row["job_id"]))["api_calls"]) == 3


def spawn_voxbatch(emu: Emulator, *args: str, **env: str) -> subprocess.Popen[str]:
    """`voxbatch ARGS` in its own process, pointed at the emulator; stderr kept for messages."""
    return subprocess.Popen(
        [sys.executable, "-m", "voxbatch", *args],
        env={**os.environ, "MISTRAL_BASE_URL": emu.base_url, "MISTRAL_API_KEY": KEY, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def run_voxbatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process: logging configured exactly as users get it."""
    return subprocess.run(
        [sys.executable, "-m", "voxbatch", *args], env={**os.environ, **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("server_key", "client_key"),
    [(None, KEY), ("the-right-key-987", KEY)],  # accepted, and refused with 401
)
def test_the_key_never_lands_in_logs_database_or_outputs(
    make_emulator,
    samples: list[Path],
    isolated_env: Path,
    server_key: str | None,
    client_key: str,
) -> None:
    emu = make_emulator(api_key=server_key)
    env = {
        "MISTRAL_BASE_URL": emu.base_url,
        "MISTRAL_API_KEY": client_key,
        "VOXBATCH_LOG_LEVEL": "DEBUG",
        "VOXBATCH_DAEMON__RETRY_INITIAL_S": "0.05",
    }
    outputs = [
        run_voxbatch(env, "process", str(samples[0])),
        run_voxbatch(env, "show", "1"),
        run_voxbatch(env, "config", "show"),
    ]
    assert "DEBUG" in outputs[0].stderr  # debug logging really was on
    for done in outputs:
        assert client_key not in done.stdout + done.stderr
    for path in isolated_env.rglob("*"):
        if path.is_file():
            assert client_key.encode() not in path.read_bytes(), path


def test_a_key_with_a_line_break_is_refused_without_echoing_it(
    emulator: Emulator, samples: list[Path], isolated_env: Path
) -> None:
    secret = "abc\rdef-secret-456"
    done = run_voxbatch(
        {"MISTRAL_BASE_URL": emulator.base_url, "MISTRAL_API_KEY": secret},
        "process",
        str(samples[0]),
    )
    assert done.returncode == 2
    assert "line breaks" in done.stderr and "def-secret-456" not in done.stderr
    assert emulator.records.sessions == [] and emulator.records.refused == []


def test_jobs_listing_and_filters(cli: Cli, samples: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp3"
    bad.write_text("not audio")
    cli("process", str(samples[0]))
    cli("process", str(bad), ok=False)
    jobs = cli.json("jobs")
    assert [j["state"] for j in jobs] == ["failed", "done"]
    assert [j["id"] for j in cli.json("jobs", "--status", "failed")] == [jobs[0]["id"]]
    assert cli.json("jobs", "--since", "1h") == jobs
    assert cli.json("jobs", "--since", "2999-01-01") == []
    assert "state" in cli("jobs").stdout
    assert cli("jobs", "--since", "yesterday", ok=False).exit_code == 2
    assert cli("show", "999", ok=False).exit_code == 2  # an unknown JOB is a usage error


def test_session_settings_reach_the_server(
    cli: Cli, emulator: Emulator, tmp_path: Path, isolated_env: Path
) -> None:
    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 4.0, on_s=0.5, off_s=0.7)
    [row] = cli.json(
        "process", str(clip), "--language", "fr", "--context-bias", "Voxtral",
        "--context-bias", "Kubernetes", "--diarize", "--format", "srt", "--format", "json",
    )  # fmt: skip
    [session] = emulator.records.sessions
    sent = {k: v for update in session.session_updates for k, v in update.items()}
    assert sent["language"] == "fr"
    assert sent["context_bias"] == ["Voxtral", "Kubernetes"]
    assert sent["diarize"] is True
    assert sent["target_streaming_delay_ms"] == 480
    assert sent["audio_format"] == {"encoding": "pcm_s16le", "sample_rate": 16000}
    assert [Path(p).suffix for p in row["outputs"]] == [".srt", ".json"]
    data = json.loads(Path(row["outputs"][1]).read_text())
    assert {s["speaker"] for s in data["segments"]} == {"speaker_1", "speaker_2"}
    assert "[speaker_1]" in Path(row["outputs"][0]).read_text()
    assert row["language"] == "fr"


def test_pace_limits_the_sending_rate(make_emulator, tmp_path: Path) -> None:
    """pace = 2: three seconds of audio cannot be sent in less than 1.5 s."""
    import time

    emu = make_emulator()
    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 3.0)
    cli = cli_for(emu, VOXBATCH_DAEMON__PACE="2")
    started = time.monotonic()
    [row] = cli.json("process", str(clip))
    assert row["state"] == "done"
    assert time.monotonic() - started >= 1.5 - 0.3  # the last chunk is sent without waiting


@pytest.fixture
def six_minutes(tmp_path: Path) -> Path:
    """Long enough that ffmpeg is still converting when a fault strikes."""
    from tests.helpers.media import long_audio

    return long_audio(tmp_path / "long.mp3", hours=0.1)


def test_fault_mid_stream_on_a_long_file_is_retried(
    make_emulator, six_minutes: Path, isolated_env: Path
) -> None:
    # A slowish server keeps the socket (and so ffmpeg's pipe) full when the fault strikes.
    emu = make_emulator(speed=100, error_after_s=30.0, fault_sessions=1)
    [row] = cli_for(emu).json("process", str(six_minutes))
    assert row["state"] == "done", row
    outcomes = db_rows(isolated_env, "SELECT outcome, estimated FROM api_call ORDER BY id")
    assert [o for o, _ in outcomes][-1] == "ok" and len(outcomes) == 2
    assert outcomes[0][1] == 1  # the failed attempt sent audio: charged as an estimate


def test_sigint_stops_promptly_and_records_the_attempt(
    six_minutes: Path, isolated_env: Path
) -> None:
    import signal
    import subprocess
    import time

    from voxbatch.emulator import EmulatorConfig, running_emulator

    with running_emulator(EmulatorConfig(speed=20)) as emu:
        proc = spawn_voxbatch(emu, "process", str(six_minutes), "--json")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if poll_rows(isolated_env, "SELECT count(*) FROM api_call") == [(1,)] and any(
                s.total_bytes for s in emu.records.sessions
            ):
                break
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("voxbatch process did not stop within 15 s of SIGINT")
    assert proc.returncode != 0, stderr
    assert "Traceback" not in stderr, stderr
    [(state, error)] = db_rows(isolated_env, "SELECT state, error_message FROM job")
    assert state == "failed" and "interrupted" in error, (state, error, stderr)
    [(outcome, cost, estimated)] = db_rows(
        isolated_env, "SELECT outcome, cost_usd, estimated FROM api_call"
    )
    assert (outcome, estimated) == ("cancelled", 1) and Decimal(cost) > 0, stderr


def test_output_failure_keeps_the_paid_transcript_and_a_rerun_costs_nothing(
    cli: Cli, emulator: Emulator, samples: list[Path], tmp_path: Path, isolated_env: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    result = cli("process", "--json", str(samples[0]), "--out", str(blocker / "out"), ok=False)
    [row] = json.loads(result.stdout)
    assert row["state"] == "failed" and "cannot write results" in row["error"]
    assert "voxbatch export" in row["error"]  # says how to get the results without paying
    assert db_rows(isolated_env, "SELECT outcome FROM api_call") == [("ok",)]
    assert cli("export", str(row["job_id"])).stdout.strip()
    [again] = cli.json("process", str(samples[0]), "--out", str(tmp_path / "out"))
    assert again["state"] == "done" and again["duplicate_of"] == row["job_id"]
    assert len(emulator.records.sessions) == 1
    assert db_rows(isolated_env, "SELECT count(*) FROM api_call") == [(1,)]


def test_kill_9_then_rerun_takes_over_and_settles_the_dead_call(
    six_minutes: Path, isolated_env: Path
) -> None:
    """A worker killed mid-stream: after its lease expires the same audio is taken over, its
    open call is settled as an estimate, and the new job pays once more, recorded."""
    import signal
    import time

    from voxbatch.emulator import EmulatorConfig, running_emulator

    with running_emulator(EmulatorConfig(speed=20)) as emu:
        proc = spawn_voxbatch(emu, "process", str(six_minutes), VOXBATCH_DAEMON__LEASE_SECONDS="5")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(s.total_bytes for s in emu.records.sessions):
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert db_rows(isolated_env, "SELECT state FROM job") == [("streaming",)]
    time.sleep(5.5)  # the dead worker's lease runs out
    with running_emulator(EmulatorConfig()) as emu:
        [row] = cli_for(emu, VOXBATCH_DAEMON__LEASE_SECONDS="5").json("process", str(six_minutes))
    assert row["state"] == "done" and row["job_id"] == 2
    jobs = db_rows(isolated_env, "SELECT id, state, error_class FROM job ORDER BY id")
    assert jobs == [(1, "failed", "Abandoned"), (2, "done", None)]
    calls = db_rows(isolated_env, "SELECT job_id, outcome, estimated, cost_usd FROM api_call")
    assert [(c[0], c[1], c[2]) for c in calls] == [(1, "abandoned", 1), (2, "ok", 0)]
    [(probed,)] = db_rows(isolated_env, "SELECT audio_seconds FROM job WHERE id = 1")
    # Nobody knows what the dead worker sent: it is charged the whole file, as an estimate.
    assert Decimal(calls[0][3]) == Decimal(math.ceil(probed)) * Decimal("0.006") / 60
    assert db_rows(isolated_env, "SELECT count(*) FROM transcript") == [(1,)]


def test_heartbeat_keeps_a_long_job_leased(tmp_path: Path, isolated_env: Path) -> None:
    """A job that outlives its lease is renewed, so nobody takes it over while it runs."""
    import time
    from datetime import UTC, datetime

    from voxbatch.emulator import EmulatorConfig, running_emulator

    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 4.5)
    expiries: list[datetime] = []
    with running_emulator(EmulatorConfig(speed=1)) as emu:
        proc = spawn_voxbatch(emu, "process", str(clip), VOXBATCH_DAEMON__LEASE_SECONDS="5")
        while proc.poll() is None:
            time.sleep(0.3)
            rows = poll_rows(isolated_env, "SELECT lease_expires_at, state FROM job")
            if rows and rows[0][0] and rows[0][1] == "streaming":
                expiry = datetime.fromisoformat(rows[0][0]).replace(tzinfo=UTC)
                assert expiry > datetime.now(UTC), "the lease ran out while the job was running"
                expiries.append(expiry)
        _, stderr = proc.communicate()
        assert proc.returncode == 0, stderr
    assert len(set(expiries)) >= 2, "the lease was never renewed"
    assert db_rows(isolated_env, "SELECT lease_owner, state FROM job") == [(None, "done")]


def test_chunks_are_at_most_262144_bytes(cli: Cli, emulator: Emulator, tmp_path: Path) -> None:
    clip = tmp_path / "twenty.wav"
    tone_bursts(clip, 20.0)  # 640,000 bytes of PCM: more than two full messages
    cli.json("process", str(clip))
    [session] = emulator.records.sessions
    assert session.max_chunk_bytes == 262_144 and session.appends == 3
    assert session.total_bytes == 640_000


def test_segments_streamed_without_a_copy_in_done(make_emulator, tmp_path: Path) -> None:
    emu = make_emulator(segments_in_done=False)
    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 4.0, on_s=0.3, off_s=0.6)
    cli = cli_for(emu)
    [row] = cli.json("process", str(clip))
    segments = cli.json("show", str(row["job_id"]))["transcript"]["segments"]
    expected = expected_recognition(clip)
    assert [(s["start"], s["end"]) for s in segments] == [
        (seg.start, seg.end) for seg in expected.segments
    ]


def test_billing_follows_the_servers_usage_and_detected_language(
    make_emulator, tmp_path: Path
) -> None:
    emu = make_emulator(usage_seconds=42, detected_language="de")
    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 3.0)
    cli = cli_for(emu)
    [row] = cli.json("process", str(clip))
    assert Decimal(row["cost_usd"]) == Decimal(42) * Decimal("0.006") / 60
    assert row["language"] == "de"
    [call] = cli.json("show", str(row["job_id"]))["api_calls"]
    assert call["audio_seconds"] == 42 and call["estimated"] is False


def test_a_done_message_that_does_not_validate_is_not_paid_for_again(
    make_emulator, tmp_path: Path
) -> None:
    emu = make_emulator(malformed_done=True)
    clip = tmp_path / "talk.wav"
    tone_bursts(clip, 3.0)
    result = cli_for(emu)("process", "--json", str(clip), ok=False)
    [row] = json.loads(result.stdout)
    assert row["state"] == "failed" and "did not validate" in row["error"]
    assert len(emu.records.sessions) == 1  # no retry: it would fail, and cost, the same way
