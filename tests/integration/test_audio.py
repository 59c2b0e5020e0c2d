"""Probing and PCM streaming with the real ffmpeg, on sample clips, generated and hostile media.

Damaged-file policy under test (see voxbatch/audio.py): ffmpeg exiting non-zero always raises
ConversionError after the partial output; a file that decodes to clearly less than the length its
header declares (a truncated mp3 or flac) yields what it has, then raises ConversionError; a file
that cannot be opened, has no audio or is a playlist raises NotAudioError before any audio.
Nothing fails silently into short audio, except a cut file that declares no length at all
(ogg, or a wav whose header ffmpeg distrusts), which is indistinguishable from a shorter one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import stat
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import imageio_ffmpeg
import pytest

from tests.conftest import ffmpeg_under_test
from tests.helpers.media import (
    HOSTILE_NAMES,
    concat_script,
    hostile_set,
    long_audio,
    tone_bursts,
    truncated,
)
from voxbatch.errors import ConfigError, ConversionError, InputError, NotAudioError
from voxbatch.media.audio import (
    MAX_CHUNK_BYTES,
    PCM_BYTES_PER_SECOND,
    AudioInfo,
    file_sha256,
    parse_input_dump,
    pcm_seconds,
    probe,
    stream_pcm,
)
from voxbatch.media.ffmpeg import ALLOWED_DEMUXERS, find_ffmpeg, input_url, pcm_args

pytestmark = pytest.mark.media  # they run ffmpeg

SAMPLES = Path(__file__).resolve().parents[2] / "voxbatch" / "sample_audio"
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def ff() -> str:
    return find_ffmpeg()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, bool]]:
    return hostile_set(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def twenty_minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return long_audio(tmp_path_factory.mktemp("long") / "twenty.mp3", hours=1 / 3)


async def collect(stream: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in stream]


async def probe_and_stream(path: Path, ff: str, **kw: Any) -> tuple[AudioInfo, list[bytes]]:
    """What the pipeline does: probe, then stream."""
    info = await probe(path, ffmpeg=ff)
    return info, await collect(stream_pcm(path, ffmpeg=ff, **kw))


def samples(pcm: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(pcm) // 2}h", pcm)


def rms(pcm: bytes, start_s: float, end_s: float) -> float:
    window = samples(pcm[int(start_s * 16000) * 2 : int(end_s * 16000) * 2])
    return math.sqrt(sum(s * s for s in window) / len(window))


def procs() -> dict[int, tuple[str, int, int]]:
    """pid -> (state, ppid, pgrp) of every process in the table, zombies (state Z) included."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = raw[raw.rindex(")") + 2 :].split()  # the name may hold spaces and ")"
            table[int(entry)] = (fields[0], int(fields[1]), int(fields[2]))
    return table


def children() -> set[int]:
    return {pid for pid, (_, ppid, _) in procs().items() if ppid == os.getpid()}


def running_in_group(pgid: int, settle_s: float = 2.0) -> set[int]:
    """Live members of a process group, after giving SIGKILLed ones `settle_s` to finish dying.

    A killed grandchild may linger as a zombie until PID 1 reaps it: dead all the same.
    """
    deadline = time.monotonic() + settle_s
    while True:
        alive = {pid for pid, (st, _, pgrp) in procs().items() if pgrp == pgid and st != "Z"}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.01)


async def gone(pid: int, within_s: float = 5.0) -> bool:
    """Whether our child `pid` is dead and reaped (asyncio's child watcher reaps it)."""
    for _ in range(int(within_s / 0.01)):
        if pid not in procs():
            return True
        await asyncio.sleep(0.01)
    return False


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def fake_ffmpeg(tmp_path: Path, body: str) -> str:
    """An executable standing in for ffmpeg (it ignores its arguments)."""
    script = tmp_path / "fake-ffmpeg"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


# --- locating ffmpeg and the demuxer allow-list ---------------------------------------------


def test_find_ffmpeg_prefers_configured_then_path_then_bundled(tmp_path: Path, monkeypatch) -> None:
    fake = fake_ffmpeg(tmp_path, "exit 0\n")
    assert find_ffmpeg(fake) == fake
    with pytest.raises(ConfigError) as err:
        find_ffmpeg(str(tmp_path / "missing-ffmpeg"))
    assert err.value.hint

    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "ffmpeg").symlink_to(fake)
    assert find_ffmpeg() == str(tmp_path / "ffmpeg")  # the system's wins over the bundled one

    monkeypatch.setenv("PATH", "")
    bundled = find_ffmpeg()  # no system ffmpeg: imageio-ffmpeg's
    assert "imageio_ffmpeg" in bundled and os.access(bundled, os.X_OK)


def test_the_ffmpeg_found_is_the_one_under_test(ff: str) -> None:
    """VOXBATCH_TEST_FFMPEG decides, not whichever ffmpeg the machine has."""
    choice, real, version = ffmpeg_under_test()
    shown = subprocess.run([ff, "-version"], capture_output=True, text=True, check=True).stdout
    assert shown.splitlines()[0] == version
    if choice == "bundled":
        assert real == imageio_ffmpeg.get_ffmpeg_exe()


def test_allowed_demuxers_exist_and_exclude_playlists(ff: str) -> None:
    listing = subprocess.run(
        [ff, "-hide_banner", "-demuxers"], capture_output=True, text=True, check=True
    ).stdout
    names = [line.split()[1].split(",") for line in listing.splitlines() if line[:3] == " D "]
    for allowed in ALLOWED_DEMUXERS:
        assert any(allowed in group for group in names), f"{allowed} is not an ffmpeg demuxer"
    for dangerous in ("hls", "concat", "dash", "image2", "lavfi", "sdp", "rtsp", "data", "tty"):
        assert dangerous not in ALLOWED_DEMUXERS


def test_argument_list_is_safe_for_any_name(ff: str, tmp_path: Path) -> None:
    path = tmp_path / "-i concat:x|y.wav"
    args = pcm_args(ff, path, sample_rate=16000, max_seconds=None)
    assert args[args.index("-i") + 1] == input_url(path) == "file:" + str(path)
    for flag in ("-nostdin", "-vn", "-sn", "-dn", "-format_whitelist", "-protocol_whitelist"):
        assert flag in args
    assert args[args.index("-map") + 1] == "0:a:0"
    assert args[args.index("-protocol_whitelist") + 1] == "file"


# --- sample clips ------------------------------------------------------------------------------

SAMPLE_CLIPS = {
    "voxtral_intro.wav": ("wav", "pcm_s16le"),
    "kubernetes_meeting.mp3": ("mp3", "mp3"),
    "standup.ogg": ("ogg", "opus"),
    "release_plan.m4a": ("mov,mp4,m4a,3gp,3g2,mj2", "aac"),
    "counting.flac": ("flac", "flac"),
}


@pytest.mark.parametrize("name", sorted(SAMPLE_CLIPS))
def test_sample_clip_probes_and_streams_whole(ff: str, name: str) -> None:
    info, chunks = run(probe_and_stream(SAMPLES / name, ff, chunk_bytes=65_536))
    assert (info.format_name, info.audio_codec) == SAMPLE_CLIPS[name]
    assert info.channels == 1 and info.sample_rate and not info.has_video
    assert info.duration_seconds is not None and 3 <= info.duration_seconds <= 8
    total = sum(map(len, chunks))
    assert abs(pcm_seconds(total) - info.duration_seconds) < 0.1
    assert all(len(c) == 65_536 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 65_536
    assert total % 2 == 0
    assert rms(b"".join(chunks), 0.0, info.duration_seconds) > 300  # speech, not silence


def test_samples_folder_is_small_documented_and_only_audio() -> None:
    # Only clips: `voxbatch process voxbatch/sample_audio/*` must transcribe all it is given.
    assert sorted(p.name for p in SAMPLES.iterdir()) == sorted(SAMPLE_CLIPS)
    assert sum(p.stat().st_size for p in SAMPLES.iterdir()) < 500_000
    repo = SAMPLES.parents[1]
    readme = (repo / "docs" / "sample-audio.md").read_text()
    assert "CC0" in readme and "scripts/make_sample_audio.sh" in readme
    assert (repo / "scripts" / "make_sample_audio.sh").is_file()


# --- conversion format and chunking -----------------------------------------------------------


def test_stereo_44k_becomes_16k_mono_with_bursts_in_place(ff: str, tmp_path: Path) -> None:
    path = tmp_path / "stereo.flac"
    intervals = tone_bursts(path, 3.0, sample_rate=44_100, channels=2)
    info, chunks = run(probe_and_stream(path, ff))
    assert (info.channels, info.sample_rate) == (2, 44_100)
    pcm = b"".join(chunks)
    assert len(pcm) == 3 * PCM_BYTES_PER_SECOND
    for start, end in intervals:
        assert rms(pcm, start + 0.05, end - 0.05) > 5000  # tone at 0.4 full scale
        assert rms(pcm, end + 0.05, end + 0.35) < 50  # the silence after it


def test_chunks_are_exact_except_the_last(ff: str, tmp_path: Path) -> None:
    path = tmp_path / "bursts.wav"
    tone_bursts(path, 1.0)  # exactly 32,000 bytes of PCM
    chunks = run(collect(stream_pcm(path, ffmpeg=ff, chunk_bytes=3_000)))
    assert [len(c) for c in chunks] == [3_000] * 10 + [2_000]
    whole = run(collect(stream_pcm(path, ffmpeg=ff, chunk_bytes=MAX_CHUNK_BYTES)))
    assert [len(c) for c in whole] == [32_000] and whole[0] == b"".join(chunks)


@pytest.mark.parametrize("bad", [0, 3_001, MAX_CHUNK_BYTES + 2, -2])
def test_chunk_size_must_be_even_and_bounded(ff: str, bad: int) -> None:
    with pytest.raises(ValueError):
        run(collect(stream_pcm(SAMPLES / "counting.flac", ffmpeg=ff, chunk_bytes=bad)))


def test_pcm_seconds() -> None:
    assert PCM_BYTES_PER_SECOND == 32_000
    assert pcm_seconds(64_000) == 2.0 and pcm_seconds(0) == 0.0


# --- hostile inputs ---------------------------------------------------------------------------

NOT_MP3 = ("not an audio or video file", "ffmpeg cannot decode the audio")
# Each file's error class, and what its one-line reason says (any of a tuple's wordings).
EXPECTED_REASON: dict[str, tuple[type[Exception], str | tuple[str, ...]]] = {
    "empty.mp3": (NotAudioError, "empty"),
    "half.mp3": (ConversionError, "truncated"),
    # Not mp3 inside: ffmpeg 9 says "Invalid data"; 5.1's mp3 demuxer fails with EINVAL instead.
    "first-100-bytes.mp3": (NotAudioError, NOT_MP3),
    "notes.mp3": (NotAudioError, NOT_MP3),
    "silent-video.mp4": (NotAudioError, "video but no audio stream"),
    # ffmpeg 9 sees no playlist in a .wav ("Invalid data"); 5.1 opens it as HLS: not whitelisted.
    "playlist.wav": (NotAudioError, ("not an audio or video file", "playlists and scripts are")),
    "playlist.m3u8": (NotAudioError, "playlists and scripts are refused"),
    "script.wav": (NotAudioError, "playlists and scripts are refused"),
}


def test_hostile_set_covers_every_case(hostile: list[tuple[Path, bool]]) -> None:
    names = {p.name for p, _ in hostile}
    assert names == set(HOSTILE_NAMES) | set(EXPECTED_REASON)
    assert {p.name for p, ok in hostile if not ok} == set(EXPECTED_REASON)


def test_hostile_names_read_exactly_their_own_file(
    ff: str, hostile: list[tuple[Path, bool]]
) -> None:
    for path, should_succeed in hostile:
        if should_succeed:  # a 1.0 s wav: the decoys a.wav/b.wav are 3 s each
            info, chunks = run(probe_and_stream(path, ff))
            assert info.duration_seconds == 1.0, repr(path.name)
            assert sum(map(len, chunks)) == PCM_BYTES_PER_SECOND, repr(path.name)


def test_hostile_files_fail_with_a_readable_one_line_reason(
    ff: str, hostile: list[tuple[Path, bool]]
) -> None:
    for path, should_succeed in hostile:
        if should_succeed:
            continue
        error_type, reasons = EXPECTED_REASON[path.name]
        received: list[bytes] = []

        async def attempt(path: Path = path, received: list[bytes] = received) -> None:
            await probe(path, ffmpeg=ff)
            async for chunk in stream_pcm(path, ffmpeg=ff):
                received.append(chunk)

        with pytest.raises(error_type) as err:
            run(attempt())
        message = str(err.value)
        wordings = reasons if isinstance(reasons, tuple) else (reasons,)
        assert any(w in message for w in wordings), (path.name, message)
        assert "\n" not in message and len(message) < 200, (path.name, message)
        assert str(path.parent) not in message
        if error_type is NotAudioError:
            assert received == [], repr(path.name)  # refused before any audio


def test_playlist_refused_by_whitelist_would_otherwise_leak_the_file_it_names(
    ff: str, tmp_path: Path
) -> None:
    target = tmp_path / "private.wav"
    tone_bursts(target, 2.0)
    script = concat_script(tmp_path / "innocent.wav", target)
    # The control: ffmpeg without the whitelist really reads private.wav through the script.
    bare = subprocess.run(
        [ff, "-nostdin", "-v", "error", "-i", input_url(script), "-f", "s16le", "-ac", "1",
         "-ar", "16000", "pipe:1"],
        capture_output=True, check=False, timeout=30,
    )  # fmt: skip
    assert len(bare.stdout) == 2 * PCM_BYTES_PER_SECOND
    with pytest.raises(NotAudioError, match="playlists and scripts are refused"):
        run(probe(script, ffmpeg=ff))
    received: list[bytes] = []

    async def stream_anyway() -> None:  # a caller that skips probing is protected too
        async for chunk in stream_pcm(script, ffmpeg=ff):
            received.append(chunk)

    with pytest.raises(ConversionError, match="playlists and scripts are refused"):
        run(stream_anyway())
    assert received == []


def test_truncated_mp3_yields_partial_audio_then_fails(ff: str, tmp_path: Path) -> None:
    good = tmp_path / "good.mp3"
    tone_bursts(good, 6.0, extra_args=("-b:a", "32k"))
    half = truncated(good, tmp_path / "half.mp3")
    info = run(probe(half, ffmpeg=ff))
    assert info.trusted_duration == pytest.approx(6.0, abs=0.1)  # the header's claim
    received: list[bytes] = []

    async def consume() -> None:
        async for chunk in stream_pcm(half, ffmpeg=ff, chunk_bytes=16_000):
            received.append(chunk)

    with pytest.raises(ConversionError) as err:
        run(consume())
    got = pcm_seconds(sum(map(len, received)))
    assert 2.5 < got < 3.5
    # The numbers are what was delivered and what the header claims (ffmpeg 9 says 6.0 s; 5.1,
    # counting the encoder's padding, 6.1 s).
    assert f"stops at {got:.1f} s but the file declares {info.trusted_duration:.1f} s" in str(
        err.value
    )


def test_caller_expectation_is_checked_too(ff: str, tmp_path: Path) -> None:
    path = tmp_path / "two.wav"
    tone_bursts(path, 2.0)
    with pytest.raises(ConversionError, match=r"stops at 2\.0 s .* declares 5\.0 s"):
        run(collect(stream_pcm(path, ffmpeg=ff, expected_seconds=5.0)))
    assert len(b"".join(run(collect(stream_pcm(path, ffmpeg=ff, expected_seconds=2.0))))) == 64_000


def test_cut_wav_is_decoded_as_far_as_it_goes_with_a_warning(
    ff: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = tmp_path / "good.wav"
    tone_bursts(good, 2.0)
    cut = truncated(good, tmp_path / "cut.wav", keep_bytes=44 + 32_001)  # mid-sample, ~1 s
    info = run(probe(cut, ffmpeg=ff))
    assert info.duration_estimated and info.trusted_duration is None  # ffmpeg distrusts the header
    with caplog.at_level("WARNING", logger="voxbatch.media.audio"):
        pcm = b"".join(run(collect(stream_pcm(cut, ffmpeg=ff))))
    assert abs(pcm_seconds(len(pcm)) - 1.0) < 0.05
    assert "recovered from decoding errors in cut.wav" in caplog.text


def test_nonzero_exit_raises_after_the_partial_output(tmp_path: Path) -> None:
    ff = fake_ffmpeg(
        tmp_path,
        "head -c 100000 /dev/zero\n"
        "echo '[info] Input #0, mp3, from somewhere' >&2\n"
        "echo '[mp3 @ 0x55d0c0ffee00] [error] Header missing' >&2\n"
        "echo '[fatal] Conversion failed!' >&2\n"
        "exit 69\n",
    )
    clip = SAMPLES / "counting.flac"
    received: list[bytes] = []

    async def consume() -> None:
        async for chunk in stream_pcm(clip, ffmpeg=ff, chunk_bytes=32_000):
            received.append(chunk)

    with pytest.raises(ConversionError) as err:
        run(consume())
    assert [len(c) for c in received] == [32_000, 32_000, 32_000, 4_000]
    assert str(err.value) == "ffmpeg failed (exit status 69) after 3.1 s of audio: Header missing"


def test_input_ffmpeg_cannot_open_is_not_an_audio_file(tmp_path: Path) -> None:
    """The reason for "Invalid data" (how ffmpeg 9 answers a text file or a playlist named .wav,
    see the hostile set above), independent of the ffmpeg installed: its stderr, verbatim."""
    ff = fake_ffmpeg(
        tmp_path,
        "echo '[in#0 @ 0x5579] [error] Error opening input: Invalid data found when processing"
        " input' >&2\n"
        "echo '[fatal] Error opening input files: Invalid data found when processing input' >&2\n"
        "exit 183\n",
    )
    with pytest.raises(NotAudioError) as err:
        run(probe(SAMPLES / "counting.flac", ffmpeg=ff))
    assert str(err.value).startswith("not an audio or video file ffmpeg can read")


def test_file_replaced_after_probing_fails_conversion(ff: str, tmp_path: Path) -> None:
    path = tmp_path / "talk.wav"
    tone_bursts(path, 1.0)
    run(probe(path, ffmpeg=ff))
    path.write_text("not audio any more\n")
    with pytest.raises(
        ConversionError, match=r"exit status \d+\) after 0\.0 s of audio: not an audio"
    ):
        run(collect(stream_pcm(path, ffmpeg=ff)))


def test_non_regular_files_are_refused_before_ffmpeg_runs(ff: str, tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    tone_bursts(good, 0.5)
    link = tmp_path / "link.wav"
    link.symlink_to(good)
    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)
    directory = tmp_path / "dir.wav"
    directory.mkdir()
    for path, reason in [
        (link, "symbolic link"),
        (fifo, "not a regular file"),
        (directory, "not a regular file"),
        (tmp_path / "missing.wav", "not found"),
    ]:
        with pytest.raises(InputError, match=reason):
            run(probe(path, ffmpeg=ff))
        with pytest.raises(InputError, match=reason):
            run(collect(stream_pcm(path, ffmpeg=ff)))


# --- process lifetime: cancellation, early exit, timeouts -------------------------------------


def test_cancelling_the_consumer_kills_and_reaps_ffmpeg(ff: str, twenty_minutes: Path) -> None:
    async def scenario() -> None:
        before = children()
        got_chunk = asyncio.Event()

        async def consumer() -> None:
            async for _ in stream_pcm(twenty_minutes, ffmpeg=ff):
                got_chunk.set()
                await asyncio.sleep(3600)  # a stalled transcription session

        task = asyncio.create_task(consumer())
        await asyncio.wait_for(got_chunk.wait(), 10)
        spawned = children() - before
        assert len(spawned) == 1
        (pid,) = spawned
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert running_in_group(pid) == set()  # killed at once...
        assert await gone(pid)  # ...and reaped: not even a zombie

    run(scenario())


def test_stopping_early_with_aclosing_kills_ffmpeg(ff: str, twenty_minutes: Path) -> None:
    async def scenario() -> None:
        before = children()
        async with contextlib.aclosing(stream_pcm(twenty_minutes, ffmpeg=ff)) as stream:
            async for _ in stream:
                spawned = children() - before
                break
        assert len(spawned) == 1 and not (spawned & set(procs()))  # killed and reaped by aclose

    run(scenario())


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # A hung "ffmpeg" that started a child of its own: without a group kill the child survives.
    # (A surviving child also keeps ffmpeg's pipes open, so asyncio would wait for it: hence
    # the outer 10 s limit, which turns a missing group kill into a quick failure.)
    ff = fake_ffmpeg(tmp_path, f"echo $$ > '{pids}'\nsleep 60 &\necho $! >> '{pids}'\nwait\n")
    clip = SAMPLES / "counting.flac"
    for call in (
        lambda: collect(stream_pcm(clip, ffmpeg=ff, timeout_s=0.5)),
        lambda: probe(clip, ffmpeg=ff, timeout_s=0.5),
    ):
        pids.unlink(missing_ok=True)
        with pytest.raises(ConversionError, match=r"longer than 0\.5 s") as err:
            run(asyncio.wait_for(call(), 10))
        assert err.value.retryable
        leader, grandchild = map(int, pids.read_text().split())
        assert leader not in procs()  # our child: killed and reaped
        assert running_in_group(leader) == set()
        assert grandchild not in procs() or procs()[grandchild][0] == "Z"


def test_timeout_counts_waiting_for_ffmpeg_not_the_consumer(ff: str, tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    tone_bursts(path, 1.0)

    async def slow_consumer() -> int:
        total = 0
        async for chunk in stream_pcm(path, ffmpeg=ff, chunk_bytes=8_000, timeout_s=1.0):
            total += len(chunk)
            await asyncio.sleep(0.3)  # 4 chunks x 0.3 s: longer than the timeout in total
        return total

    assert run(slow_consumer()) == PCM_BYTES_PER_SECOND


def test_long_file_streams_in_bounded_memory(ff: str, twenty_minutes: Path) -> None:
    async def scenario() -> tuple[int, int, float]:
        info = await probe(twenty_minutes, ffmpeg=ff)
        baseline = peak = rss_bytes()
        total = 0
        async for chunk in stream_pcm(twenty_minutes, ffmpeg=ff):
            total += len(chunk)
            peak = max(peak, rss_bytes())
        assert info.duration_seconds is not None
        return total, peak - baseline, info.duration_seconds

    total, growth, duration = run(scenario())
    assert abs(pcm_seconds(total) - duration) < 0.5
    assert total > 38_000_000  # 20 minutes of PCM went through...
    assert growth < 8 * 1024 * 1024, growth  # ...while the process grew by a few chunks at most


# --- hashing and parsing ----------------------------------------------------------------------


def test_file_sha256_matches_and_refuses_non_regular(tmp_path: Path) -> None:
    clip = SAMPLES / "kubernetes_meeting.mp3"
    assert run(file_sha256(clip)) == hashlib.sha256(clip.read_bytes()).hexdigest()
    link = tmp_path / "link.mp3"
    link.symlink_to(clip)
    with pytest.raises(InputError):
        run(file_sha256(link))
    fifo = tmp_path / "fifo.mp3"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        run(file_sha256(fifo))  # and it does not block waiting for a writer
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_parse_input_dump_reads_streams_layouts_and_cover_art(tmp_path: Path) -> None:
    path = tmp_path / "x.mkv"
    dump = (
        "[mp3 @ 0x1] [warning] Estimating duration from bitrate, this may be inaccurate\n"
        f"[info] Input #0, matroska,webm, from '{input_url(path)}':\n"
        "[info]   Metadata:\n"
        "[info]     title           : Stream #0:9: Audio: fake, 1 Hz, mono\n"
        "[info]   Duration: 01:02:03.50, start: 0.000000, bitrate: 256 kb/s\n"
        "[info]   Stream #0:0: Video: mjpeg (Baseline), yuvj420p, 500x500 (attached pic)\n"
        "[matroska @ 0x2] [info]   Stream #0:7: Audio: a log line that looks like the dump\n"
        "[matroska @ 0x2] [warning] a log line in the middle\n"
        "[info]   Stream #0:1(eng): Audio: eac3, 48000 Hz, 5.1(side), fltp, 640 kb/s (default)\n"
        "[info]   Stream #0:2: Audio: aac (LC), 44100 Hz, stereo, fltp\n"
        "[info] Stream mapping:\n"
        "[info]   Stream #0:1 -> #0:0 (eac3 (native) -> pcm_s16le (native))\n"
    )
    info = parse_input_dump(dump, path)
    assert info == AudioInfo(
        duration_seconds=3723.5,
        format_name="matroska,webm",
        audio_codec="eac3",
        sample_rate=48_000,
        channels=6,
        has_video=False,
        duration_estimated=True,
    )
    assert info.trusted_duration is None  # estimated lengths cannot prove truncation
    assert parse_input_dump("[fatal] Error opening input files: Invalid data\n", path) is None
    na = parse_input_dump(
        f"[info] Input #0, wav, from '{input_url(path)}':\n[info]   Duration: N/A, bitrate: N/A\n"
        "[info]   Stream #0:0: Audio: pcm_s16le, 16000 Hz, 3 channels, s16\n",
        path,
    )
    assert na is not None and na.duration_seconds is None and na.channels == 3


def test_leaving_early_with_a_full_pipe_returns_promptly(tmp_path: Path) -> None:
    """A consumer that stops while ffmpeg's output fills the pipe must not wait for EOF forever."""
    from voxbatch.media.ffmpeg import FfmpegProcess, StderrCapture

    source = long_audio(tmp_path / "long.mp3", hours=0.1)
    args = pcm_args(find_ffmpeg(), source, sample_rate=16_000, max_seconds=None)

    async def leave_early() -> int:
        async with FfmpegProcess(args, stderr=StderrCapture(), stdout_limit=4096) as proc:
            await proc.stdout.readexactly(4096)
            await asyncio.sleep(0.5)  # ffmpeg fills the pipe and the reader's buffer meanwhile
            pid = proc.proc.pid
        return pid

    started = time.monotonic()
    pid = asyncio.run(asyncio.wait_for(leave_early(), 20))
    assert time.monotonic() - started < 10
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
