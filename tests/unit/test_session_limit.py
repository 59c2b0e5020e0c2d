"""The adaptive session limit (stages.sessions): a fake clock for its arithmetic, a fake provider
that allows fewer sessions than `concurrency` for `voxbatch process`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import pytest

from tests.helpers.fakes import FakeTranscriber
from tests.helpers.media import wav_bytes
from voxbatch.config import DaemonSettings, Settings
from voxbatch.errors import SessionLimitError
from voxbatch.process import ProcessRun
from voxbatch.providers.realtime import StreamOptions, StreamProgress, StreamResult
from voxbatch.stages.pipeline import Pipeline
from voxbatch.stages.sessions import SessionLimit
from voxbatch.store.db import open_database


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_refusal_lowers_the_limit_to_the_sessions_held_by_others() -> None:
    limit = SessionLimit(lambda: 4, clock=Clock())
    limit.held = 4  # the refused holder and three others
    limit.refused()
    assert limit.limit == 3
    limit.held = 3  # the first refused one gave its slot back; two open, one refused
    limit.refused()
    assert limit.limit == 2 and limit.limited
    assert limit.describe().startswith("provider allows fewer sessions: running 2 of 4")


def test_the_limit_never_drops_below_one() -> None:
    limit = SessionLimit(lambda: 4, clock=Clock())
    limit.held = 1
    for _ in range(3):
        limit.refused()
    assert limit.limit == 1


def test_the_limit_rises_by_one_per_quiet_period_up_to_the_ceiling() -> None:
    clock = Clock()
    limit = SessionLimit(lambda: 4, quiet_s=60, clock=clock)
    limit.held = 2
    limit.refused()
    assert limit.limit == 1
    clock.now += 59
    assert limit.limit == 1
    clock.now += 1
    assert limit.limit == 2
    clock.now += 30
    limit.held = 3
    limit.refused()  # a refusal starts the quiet period again
    assert limit.limit == 1
    clock.now += 59
    assert limit.limit == 1
    for expected in (2, 3, 4, 4):
        clock.now += 60
        assert limit.limit == expected
    assert not limit.limited


def test_the_ceiling_is_read_at_each_use() -> None:
    clock = Clock()
    concurrency = [4]
    limit = SessionLimit(lambda: concurrency[0], quiet_s=60, clock=clock)
    concurrency[0] = 6  # a reload raised it
    assert limit.limit == 6
    limit.held = 3
    limit.refused()
    assert limit.limit == 2
    concurrency[0] = 1  # and lowered it below the limit
    assert limit.limit == 1 and not limit.limited


def test_a_refused_holder_waits_at_least_retry_after_and_backs_off_within_bounds() -> None:
    limit = SessionLimit(lambda: 2, backoff_s=1.0, max_backoff_s=8.0, clock=Clock())
    limit.held = 1
    assert limit.refused(retry_after=5.0) >= 5.0
    waits = [limit.refused() for _ in range(10)]
    assert all(0 <= w <= 8.0 for w in waits)


def test_slots_wait_for_room_and_are_held_until_the_session_is_closed() -> None:
    async def scenario() -> list[str]:
        limit = SessionLimit(lambda: 1)
        seen: list[str] = []
        progress = StreamProgress()
        closed = asyncio.Event()

        async def first() -> None:
            async with limit.slot() as slot:
                slot.watch(progress)
                assert progress.on_connected is not None
                progress.on_connected()  # the server accepted the session
                seen.append("first in")
            seen.append("first left, still closing")
            await closed.wait()
            assert progress.on_closed is not None
            progress.on_closed()

        async def second() -> None:
            await asyncio.sleep(0.05)
            async with limit.slot():
                seen.append("second in")

        waiting = asyncio.gather(first(), second())
        await asyncio.sleep(0.2)
        seen.append("closing")
        closed.set()
        await waiting
        return seen

    assert asyncio.run(scenario()) == [
        "first in",
        "first left, still closing",
        "closing",
        "second in",
    ]


class FewSessions:
    """A provider that allows `allowed` open sessions and refuses more with a 429."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.open = 0
        self.peak = 0
        self.refusals = 0
        self.inner = FakeTranscriber()

    async def handshake(self, model: str) -> str | None:
        return "few"

    async def transcribe(
        self,
        audio: AsyncGenerator[bytes, None],
        options: StreamOptions,
        *,
        progress: StreamProgress | None = None,
        on_delta: Callable[[str], None] | None = None,
        deadline_s: float | None = None,
    ) -> StreamResult:
        if self.open >= self.allowed:
            self.refusals += 1
            await audio.aclose()
            raise SessionLimitError(
                "Mistral refused the connection (HTTP 429): too many sessions",
                status=429,
                retry_after=0,
                retryable=True,
            )
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            await asyncio.sleep(0.3)  # a session that lasts
            return await self.inner.transcribe(
                audio, options, progress=progress, on_delta=on_delta, deadline_s=deadline_s
            )
        finally:
            self.open -= 1


@pytest.mark.media  # ffmpeg decodes the clips
def test_process_shares_the_limit_and_a_429_never_fails_a_file(
    isolated_env: Path, tmp_path: Path
) -> None:
    settings = Settings(
        home=isolated_env,
        daemon=DaemonSettings(concurrency=4, retry_attempts=1, retry_initial_s=0),
    )
    clips = []
    for i in range(6):
        clip = tmp_path / f"c{i}.wav"
        clip.write_bytes(wav_bytes(1, tag=i))
        clips.append(clip)
    provider = FewSessions(allowed=2)
    with open_database(settings.db_path) as db:
        pipeline = Pipeline.open(settings, db, transcriber=lambda: provider)
        outcomes = asyncio.run(
            ProcessRun(pipeline).process_paths(
                clips, profile=settings.inbox[0], out_dir=isolated_env / "out"
            )
        )
        assert pipeline.stt.sessions.limit == 2
    assert [o.state for o in outcomes] == ["done"] * 6, [o.error for o in outcomes]
    assert provider.peak == 2
    assert provider.refusals, "no session was refused: the limit was never exercised"
    assert provider.refusals <= 4 - 2  # only until the limit came down (concurrency − allowed)
    assert len(provider.inner.requests) == 6


def test_status_says_the_limit_and_why(tmp_path: Path) -> None:
    from types import SimpleNamespace
    from typing import Any

    from voxbatch.daemon.breaker import Breaker
    from voxbatch.daemon.housekeeping import Housekeeping

    limit = SessionLimit(lambda: 4, clock=Clock())
    fake: Any = SimpleNamespace(health=SimpleNamespace(fault=None), paused=False)
    chores = Housekeeping(
        Settings(home=tmp_path), fake, state=fake, notifier=fake, breaker=Breaker(5, 30), keys=fake,
        owner="me", tick_s=1, sessions=limit,
    )  # fmt: skip
    assert chores.provider_state() == ("ok", "")
    limit.held = 3
    limit.refused()
    provider, detail = chores.provider_state()
    assert provider == "limited"
    assert detail.startswith("provider allows fewer sessions: running 2 of 4 (HTTP 429")


@pytest.mark.media  # ffmpeg decodes the clips
@pytest.mark.timeout(60)
def test_a_provider_that_refuses_even_one_session_is_an_ordinary_failure(
    isolated_env: Path, tmp_path: Path
) -> None:
    """A 429 with no other session open is a rate limit or an outage, not a cap on sessions:
    it spends attempts (so rounds, the breaker and `run --once` end), never waits for ever."""
    settings = Settings(
        home=isolated_env,
        daemon=DaemonSettings(concurrency=2, retry_attempts=2, retry_initial_s=0),
    )
    clip = tmp_path / "c.wav"
    clip.write_bytes(wav_bytes(1))
    provider = FewSessions(allowed=0)
    with open_database(settings.db_path) as db:
        pipeline = Pipeline.open(settings, db, transcriber=lambda: provider)
        [outcome] = asyncio.run(
            ProcessRun(pipeline).process_paths(
                [clip], profile=settings.inbox[0], out_dir=isolated_env / "out"
            )
        )
    assert outcome.state == "failed" and "429" in (outcome.error or "")
    assert provider.refusals == 2  # one a retry attempt
