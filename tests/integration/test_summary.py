"""Written and spoken summaries: the real SDK against the emulator, real ffmpeg, the database.

The transcript comes from the real pipeline (one realtime session); the summary stages then run
as the pipeline will call them once the transcript is saved.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.media import tone_bursts
from tests.helpers.summary import KEY, make_settings, summarise, summary_profile, transcribe
from voxbatch.config import Settings
from voxbatch.emulator import Emulator
from voxbatch.emulator.http_api import estimate_tokens, summarize
from voxbatch.errors import ConfigError, ProviderError
from voxbatch.media import audio
from voxbatch.media.ffmpeg import find_ffmpeg
from voxbatch.prompts import part_chars, split_text
from voxbatch.stages.summary import SummaryOutcome, run_summary_stages
from voxbatch.store import calls as store_calls
from voxbatch.store import jobs, summaries, transcripts
from voxbatch.store.db import Database, open_database
from voxbatch.store.models import ApiCall, Job, JobState

pytestmark = pytest.mark.media  # they run ffmpeg

PRICE_IN, PRICE_OUT = Decimal("0.15"), Decimal("0.60")
TTS_PRICE = Decimal("16.0")


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)


@pytest.fixture
def db(isolated_env: Path) -> Iterator[Database]:
    with open_database(isolated_env / "voxbatch.db") as database:
        yield database


def calls(db: Database, job_id: int | None = None) -> list[ApiCall]:
    with db.read() as session:
        rows = store_calls.all_calls(session)
        for row in rows:
            session.expunge(row)
    return [r for r in rows if job_id is None or r.job_id == job_id]


def expected_chat_cost(body: dict[str, Any]) -> tuple[int, int, Decimal]:
    """What the emulator bills for one chat request, priced from the default table."""
    prompt = sum(len(m["content"]) for m in body["messages"])
    reply = summarize(body["messages"][-1]["content"])
    tokens_in, tokens_out = estimate_tokens(prompt), estimate_tokens(len(reply))
    return tokens_in, tokens_out, (tokens_in * PRICE_IN + tokens_out * PRICE_OUT) / 1_000_000


def test_summary_and_playable_speech_with_exact_costs(
    emulator: Emulator, db: Database, isolated_env: Path, samples: list[Path]
) -> None:
    settings = make_settings(isolated_env, emulator)
    outbox = isolated_env / "outbox"
    clip = samples[0]
    job_id = transcribe(settings, db, clip, outbox)
    outcome = summarise(settings, db, job_id, summary_profile(voice_id="marie"), outbox)

    assert outcome.bought_summary and outcome.bought_speech
    assert outcome.summary_path == outbox / f"{clip.stem}.summary.md"
    assert outcome.speech_path == outbox / f"{clip.stem}.summary.mp3"
    with db.read() as session:
        transcript = transcripts.transcript_for(session, session.get_one(Job, job_id))
        assert transcript is not None
        summary = summaries.summaries_for(session, transcript.content_sha256)[0]
        job = session.get_one(Job, job_id)
        assert (job.state, job.stage) == (JobState.summarizing, "speech")
    (chat_request,) = emulator.records.chat
    user = chat_request.body["messages"][-1]["content"]
    assert user.startswith(transcript.text.strip()) and user.endswith(summary.prompt)
    assert summary.text == summarize(user)  # what the emulator answered, saved as is
    assert outcome.summary_path.read_text().endswith(summary.text + "\n")
    info = asyncio.run(audio.probe(outcome.speech_path, ffmpeg=find_ffmpeg()))
    assert info.audio_codec == "mp3" and (info.duration_seconds or 0) > 0

    rows = calls(db, job_id)
    assert [r.kind for r in rows] == ["stt", "chat", "tts"]
    assert all(r.outcome == "ok" and not r.estimated for r in rows)
    tokens_in, tokens_out, chat_cost = expected_chat_cost(chat_request.body)
    chat, tts = rows[1], rows[2]
    assert (chat.input_tokens, chat.output_tokens, chat.cost_usd) == (
        tokens_in,
        tokens_out,
        chat_cost,
    )
    assert "$0.15/M input tokens" in (chat.price_basis or "")
    assert tts.characters == len(summary.text)
    assert tts.cost_usd == len(summary.text) * TTS_PRICE / 1_000_000
    (speech_request,) = emulator.records.speech
    assert speech_request.body["voice_id"] == "marie"
    assert speech_request.body["input"] == summary.text
    assert "ref_audio" not in speech_request.body
    # The prompt asks for the transcript's language.
    assert "'en'" in chat_request.body["messages"][0]["content"]


def test_ref_audio_clip_is_sent_base64_and_a_missing_clip_is_a_clear_error(
    emulator: Emulator, db: Database, isolated_env: Path, samples: list[Path]
) -> None:
    settings = make_settings(isolated_env, emulator)
    outbox = isolated_env / "outbox"
    job_id = transcribe(settings, db, samples[1], outbox)
    with pytest.raises(ConfigError, match=r"voices/me\.wav does not exist"):
        summarise(settings, db, job_id, summary_profile(ref_audio="voices/me.wav"), outbox)
    assert emulator.records.chat == []  # found before paying for anything

    clip = isolated_env / "voices" / "me.wav"
    clip.parent.mkdir()
    tone_bursts(clip, 1.0)
    cloned = summary_profile(ref_audio="voices/me.wav", speech_format="wav")
    outcome = summarise(settings, db, job_id, cloned, outbox)
    (speech_request,) = emulator.records.speech
    assert base64.b64decode(speech_request.body["ref_audio"]) == clip.read_bytes()
    assert "voice_id" not in speech_request.body
    assert outcome.speech_path is not None and outcome.speech_path.suffix == ".wav"


def test_speech_failure_then_retry_buys_neither_transcript_nor_summary_again(
    make_emulator: Any, db: Database, isolated_env: Path, samples: list[Path]
) -> None:
    # Every speech request of the first run fails (3 attempts); the retry's succeeds.
    emu = make_emulator(http_fail_first=3, http_fail_endpoints=("speech",), retry_after=0)
    settings = make_settings(isolated_env, emu)
    outbox = isolated_env / "outbox"
    job_id = transcribe(settings, db, samples[2], outbox)
    with pytest.raises(ProviderError, match="HTTP 503") as info:
        summarise(settings, db, job_id, summary_profile(), outbox)
    assert info.value.retryable and info.value.status == 503
    assert not (outbox / f"{samples[2].stem}.summary.md").exists()
    outcomes = [r.outcome for r in calls(db, job_id)]
    assert outcomes == ["ok", "ok", "http_503", "http_503", "http_503"]
    assert all(r.cost_usd == 0 for r in calls(db, job_id)[2:])

    outcome = summarise(settings, db, job_id, summary_profile(), outbox)
    assert not outcome.bought_summary and outcome.bought_speech
    assert len(emu.records.sessions) == 1 and len(emu.records.chat) == 1
    assert [r.kind for r in calls(db, job_id)] == ["stt", "chat", "tts", "tts", "tts", "tts"]
    assert outcome.speech_path is not None and outcome.speech_path.stat().st_size > 0

    # Everything is bought: a third run only rewrites the files, at no cost.
    again = summarise(settings, db, job_id, summary_profile(), outbox)
    assert not again.bought and len(calls(db, job_id)) == 6


def test_chat_is_retried_on_429_honouring_retry_after(
    make_emulator: Any, db: Database, isolated_env: Path, samples: list[Path]
) -> None:
    emu = make_emulator(
        http_fail_first=1, http_fail_status=429, http_fail_endpoints=("chat",), retry_after=1
    )
    settings = make_settings(isolated_env, emu)
    job_id = transcribe(settings, db, samples[0], isolated_env / "outbox")
    began = time.monotonic()
    summarise(settings, db, job_id, summary_profile(), isolated_env / "outbox")
    assert time.monotonic() - began >= 1.0  # the backoff alone would be ~0.01 s
    rows = [r for r in calls(db, job_id) if r.kind == "chat"]
    assert [r.outcome for r in rows] == ["http_429", "ok"]


def test_bad_request_is_not_retried(
    make_emulator: Any, db: Database, isolated_env: Path, samples: list[Path]
) -> None:
    emu = make_emulator(http_fail_first=5, http_fail_status=400, http_fail_endpoints=("chat",))
    settings = make_settings(isolated_env, emu)
    job_id = transcribe(settings, db, samples[0], isolated_env / "outbox")
    with pytest.raises(ProviderError, match="HTTP 400") as info:
        summarise(settings, db, job_id, summary_profile(), isolated_env / "outbox")
    assert not info.value.retryable
    assert len(emu.records.chat) == 1 and emu.records.speech == []


def test_duplicate_audio_reuses_the_summary_at_no_cost(
    emulator: Emulator, db: Database, isolated_env: Path, samples: list[Path], tmp_path: Path
) -> None:
    settings = make_settings(isolated_env, emulator)
    outbox = isolated_env / "outbox"
    first = transcribe(settings, db, samples[0], outbox)
    summarise(settings, db, first, summary_profile(), outbox)
    copy = tmp_path / "copy" / "again.mp3"
    copy.parent.mkdir()
    copy.write_bytes(samples[0].read_bytes())
    second = transcribe(settings, db, copy, outbox)
    outcome = summarise(settings, db, second, summary_profile(), outbox)
    assert not outcome.bought and outcome.reused_from_job == first
    assert calls(db, second) == []
    assert (outbox / "again.summary.md").read_text() == (
        outbox / f"{samples[0].stem}.summary.md"
    ).read_text().replace(samples[0].name, "again.mp3")
    assert len(emulator.records.chat) == 1 and len(emulator.records.speech) == 1

    # A different prompt is a different summary: bought once more.
    other = summarise(settings, db, second, summary_profile(summary_prompt="One line."), outbox)
    assert other.bought_summary and len(emulator.records.chat) == 2


def test_long_transcript_is_summarised_in_parts(
    make_emulator: Any, db: Database, isolated_env: Path
) -> None:
    # A context the emulator enforces (400 above it): only a split transcript gets through.
    emu = make_emulator(max_context_tokens=20_000)
    settings = make_settings(isolated_env, emu, chat_context_tokens=20_000)
    words = [f"word{i % 997}" for i in range(60_000)]
    sentences = [" ".join(words[i : i + 12]) + "." for i in range(0, len(words), 12)]
    text = " ".join(sentences)
    assert len(text) > 400_000
    with db.write() as session:
        job = jobs.create_job(
            session,
            content_sha256="ab" * 32,
            source_path="/x/long.wav",
            size_bytes=1,
            inbox=None,
            output_dir=None,
            primary=None,
        )
        transcripts.save_transcript(
            session, job, model="m", text=text, language="fr", audio_seconds=36_000, segments=()
        )
        job_id = job.id
    assert job_id is not None
    outbox = isolated_env / "outbox"
    outcome = summarise(settings, db, job_id, summary_profile(), outbox)

    limit = part_chars(settings.mistral, summary_profile().summary_prompt)
    parts = split_text(text, limit)
    assert len(parts) >= 7
    bodies = [r.body for r in emu.records.chat]
    assert all(r.status == 200 for r in emu.records.chat)
    assert len(bodies) == len(parts) + 1  # map, then one combining call
    for body, part in zip(bodies, parts, strict=False):
        assert body["messages"][1]["content"].startswith(part)
        assert "part" in body["messages"][1]["content"].lower()
        assert "'fr'" in body["messages"][0]["content"]
    # Nothing lost or reordered between the parts.
    assert " ".join(parts).split() == text.split()
    combined = bodies[-1]["messages"][1]["content"]
    assert combined.startswith("Part 1: Summary: word0 word1")
    with db.read() as session:
        (summary,) = summaries.summaries_for(session, "ab" * 32)
        assert summary.parts == len(parts)
    assert outcome.summary_path.read_text().startswith("# Summary of long.wav")
    chat_rows = [r for r in calls(db, job_id) if r.kind == "chat"]
    assert len(chat_rows) == len(parts) + 1
    expected = sum((expected_chat_cost(b)[2] for b in bodies), Decimal(0))
    assert sum((r.cost_usd or Decimal(0) for r in chat_rows), Decimal(0)) == expected


def test_split_text_respects_the_limit_and_boundaries() -> None:
    text = "First sentence here. Second one follows!\n\nNew paragraph with words " * 50
    pieces = split_text(text, 300)
    assert all(len(p) <= 300 for p in pieces)
    assert " ".join(pieces).split() == text.split()
    assert all(p.endswith((".", "!", "words")) for p in pieces[:-1])
    assert split_text("  short  ", 300) == ["short"]
    assert math.ceil(len("x" * 1000) / 300) == len(split_text("x" * 1000, 300))


def test_a_timeout_after_sending_is_not_retried_and_is_charged_as_estimated(
    make_emulator: Any, db: Database, isolated_env: Path, samples: list[Path]
) -> None:
    emu = make_emulator(http_delay_first=1, http_delay_s=1.5, http_delay_endpoints=("chat",))
    settings = make_settings(isolated_env, emu, http_timeout_s=0.3)
    job_id = transcribe(settings, db, samples[0], isolated_env / "outbox")
    with pytest.raises(ProviderError, match=r"no chat answer within 0.3 s") as info:
        summarise(settings, db, job_id, summary_profile(), isolated_env / "outbox")
    assert not info.value.retryable and "billed" in info.value.hint
    (row,) = [r for r in calls(db, job_id) if r.kind == "chat"]
    assert row.outcome == "timeout" and row.estimated
    assert row.cost_usd is not None and row.cost_usd > 0 and row.output_tokens == 1024
    assert len(emu.records.chat) == 1
    # The retry of the job (the server answers at once now) buys the summary then. Its timeout
    # is a roomy one: the emulator's speech is ffmpeg-encoded, which 0.3 s does not always cover.
    roomy = make_settings(isolated_env, emu)
    outcome = summarise(roomy, db, job_id, summary_profile(), isolated_env / "outbox")
    assert outcome.bought_summary and len(emu.records.chat) == 2


def test_unreachable_server_is_retried_then_reported_retryable(
    emulator: Emulator, db: Database, isolated_env: Path, samples: list[Path]
) -> None:
    job_id = transcribe(make_settings(isolated_env, emulator), db, samples[0], isolated_env / "o")
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings.model_validate(
        {
            "home": str(isolated_env),
            "mistral": {"base_url": f"http://127.0.0.1:{port}"},
            "daemon": {"retry_initial_s": 0.01, "retry_max_s": 0.02, "retry_attempts": 3},
        }
    )
    with pytest.raises(ProviderError, match="cannot reach Mistral for chat") as info:
        summarise(settings, db, job_id, summary_profile(), isolated_env / "o")
    assert info.value.retryable
    rows = [r for r in calls(db, job_id) if r.kind == "chat"]
    assert [(r.outcome, r.cost_usd, r.estimated) for r in rows] == [
        ("connect_error", Decimal(0), False)
    ] * 3
    with db.read() as session:
        retries = [e for e in jobs.events_for(session, job_id) if e.kind == "retry_scheduled"]
    assert len(retries) == 2


def test_a_copy_waits_for_the_summary_its_primary_is_buying(
    emulator: Emulator, db: Database, isolated_env: Path, samples: list[Path], tmp_path: Path
) -> None:
    settings = make_settings(isolated_env, emulator)
    outbox = isolated_env / "outbox"
    first = transcribe(settings, db, samples[0], outbox)
    copy = tmp_path / "copy.mp3"
    copy.write_bytes(samples[0].read_bytes())
    second = transcribe(settings, db, copy, outbox)
    with db.write() as session:  # the primary is still working, under a live lease
        job = session.get_one(Job, first)
        job.lease_expires_at = datetime.now(UTC) + timedelta(minutes=1)
        jobs.set_state(session, job, JobState.summarizing, stage="summary")

    async def both() -> tuple[SummaryOutcome, SummaryOutcome]:
        def stage(job_id: int) -> Any:
            return run_summary_stages(
                settings, db, job_id, summary_profile(), outbox, api_key=KEY, poll_s=0.01
            )

        copy_task = asyncio.create_task(stage(second))
        await asyncio.sleep(0.2)  # the copy starts first, and must wait
        assert not copy_task.done()
        primary = await stage(first)
        return primary, await copy_task

    primary, duplicate = asyncio.run(both())
    assert primary.bought and not duplicate.bought and duplicate.reused_from_job == first
    assert len(emulator.records.chat) == 1 and len(emulator.records.speech) == 1
    assert calls(db, second) == []
    assert (outbox / "copy.summary.mp3").read_bytes() == primary.speech_path.read_bytes()  # type: ignore[union-attr]
