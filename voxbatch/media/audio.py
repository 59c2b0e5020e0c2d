"""Probing media and streaming it as 16 kHz mono PCM, with ffmpeg alone (no ffprobe needed).

Both read ffmpeg's own description of the input (the `Input #0` dump it logs at info level,
each line tagged with its level) and decode with the same safe argument list.

Policy for damaged files:
- ffmpeg exiting non-zero is always an error, raised after the audio it did produce.
- A file that decodes to clearly less audio than its header declares (a truncated mp3 or flac)
  is an error, raised after the audio it did produce: never a silently short transcript.
- Decoding errors ffmpeg recovers from (a corrupt frame in a long recording) are logged as a
  warning, not fatal: losing a few milliseconds beats losing the transcript.
- A cut file whose container declares no length (ogg, a wav whose header ffmpeg distrusts) cannot
  be told from a shorter recording; it is transcribed as what it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import stat
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from pathlib import Path

from voxbatch.errors import ConversionError, InputError, NotAudioError
from voxbatch.media.ffmpeg import (
    FfmpegProcess,
    StderrCapture,
    check_regular_file,
    input_url,
    packet_args,
    pcm_args,
    split_level,
)

log = logging.getLogger(__name__)

PCM_SAMPLE_RATE = 16_000
PCM_BYTES_PER_SECOND = PCM_SAMPLE_RATE * 2  # s16le mono
MAX_CHUNK_BYTES = 262_144
PROBE_DECODE_SECONDS = 0.5  # probing decodes this much to prove the audio is readable
MEASURE_TIMEOUT_S = 300.0  # reading packets runs at thousands x real time: ~1 s an hour
DUMP_BYTES = 256 * 1024  # stderr kept from the start: the input dump, however much metadata

_INPUT_LINE = re.compile(r"^Input #0, (?P<format>.+?), from '<input>':$")
_DURATION = re.compile(r"^\s+Duration: (?:(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)|N/A)")
_STREAM = re.compile(
    r"^\s+Stream #0:\d+\S*: (?P<kind>Audio|Video|Subtitle|Data|Attachment): (?P<rest>.*)$"
)
_RATE = re.compile(r"\b(\d+) Hz\b")
_NAMED_LAYOUTS = {"mono": 1, "stereo": 2, "downmix": 2, "quad": 4, "hexagonal": 6, "octagonal": 8}


def pcm_seconds(nbytes: int) -> float:
    """Seconds of audio in `nbytes` of 16 kHz mono s16le."""
    return nbytes / PCM_BYTES_PER_SECOND


@dataclass(frozen=True)
class AudioInfo:
    duration_seconds: float | None
    format_name: str  # ffmpeg's demuxer name list, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    audio_codec: str
    sample_rate: int | None
    channels: int | None
    has_video: bool
    duration_estimated: bool = False  # ffmpeg guessed the length from the bitrate
    # What the header claimed, when `duration_seconds` was measured from the packets instead.
    declared_seconds: float | None = None

    @property
    def trusted_duration(self) -> float | None:
        """The declared length of the audio, when it is trustworthy enough to detect truncation.

        Not when ffmpeg estimated it, nor for video containers (their length may be the video's).
        """
        if self.duration_estimated or self.has_video:
            return None
        return self.duration_seconds


def _channels(layout: str) -> int | None:
    layout = layout.strip()
    if layout in _NAMED_LAYOUTS:
        return _NAMED_LAYOUTS[layout]
    if m := re.match(r"(\d+) channels", layout):
        return int(m.group(1))
    if m := re.match(r"(\d+)\.(\d+)", layout):  # 5.1, 7.1(wide), 22.2 ...
        return int(m.group(1)) + int(m.group(2))
    return None


def _audio_details(rest: str) -> tuple[str, int | None, int | None]:
    codec = rest.split(",")[0].split()[0] if rest.strip() else ""
    rate = _RATE.search(rest)
    channels = None
    parts = [p.strip() for p in rest.split(",")]
    for i, part in enumerate(parts):
        if _RATE.fullmatch(part) and i + 1 < len(parts):
            channels = _channels(parts[i + 1])
            break
    return codec, int(rate.group(1)) if rate else None, channels


def parse_input_dump(stderr: str, path: Path) -> AudioInfo | None:
    """Read ffmpeg's `Input #0` dump; None when ffmpeg printed none (it could not open the file)."""
    # The file name may hold newlines or anything else: take it out before reading lines.
    stderr = stderr.replace(f"from '{input_url(path)}':", "from '<input>':")
    fmt: str | None = None
    duration: float | None = None
    audio: tuple[str, int | None, int | None] | None = None
    has_video = False
    for raw in stderr.splitlines():
        if raw.startswith("[") and not raw.startswith("[info]"):
            continue  # a component's log line, or another level: the dump is plain "[info]"
        line = split_level(raw)[1]
        if fmt is None:
            if m := _INPUT_LINE.match(line):
                fmt = m.group("format")
            continue
        if not line.startswith(" "):
            break  # "Stream mapping:", "Output #0": the input dump is over
        if m := _DURATION.match(line):
            if m.group("h") is not None:
                duration = int(m.group("h")) * 3600 + int(m.group("m")) * 60 + float(m.group("s"))
        elif m := _STREAM.match(line):
            kind, rest = m.group("kind"), m.group("rest")
            if kind == "Audio" and audio is None:
                audio = _audio_details(rest)
            elif kind == "Video" and "(attached pic)" not in rest:
                has_video = True  # cover art is not video
    if fmt is None:
        return None
    codec, rate, channels = audio if audio else ("", None, None)
    return AudioInfo(
        duration_seconds=duration,
        format_name=fmt,
        audio_codec=codec,
        sample_rate=rate,
        channels=channels,
        has_video=has_video,
        duration_estimated="Estimating duration from bitrate" in stderr,
    )


def _failure_reason(stderr: StderrCapture, info: AudioInfo | None, path: Path) -> str:
    """A one-line reason a user understands for a file ffmpeg would not decode."""
    text = "\n".join(stderr.errors(path))  # errors only, and without the file's own name
    if "not on whitelist" in text:
        return "not an accepted audio/video container (playlists and scripts are refused)"
    if "matches no streams" in text:
        if info is not None and info.has_video:
            return "the file has video but no audio stream"
        return "the file has no audio stream"
    if "moov atom not found" in text:
        return "incomplete MP4/M4A file (its index is missing: truncated or still being written?)"
    if "Invalid data found when processing input" in text and info is None:
        return "not an audio or video file ffmpeg can read (unknown format, damaged or truncated)"
    detail = stderr.last_error(path)
    return (
        f"ffmpeg cannot decode the audio: {detail}" if detail else "ffmpeg cannot decode the audio"
    )


async def probe(path: Path, *, ffmpeg: str, timeout_s: float = 60) -> AudioInfo:
    """Describe the file's first audio stream, proving it decodes by converting its first moments.

    Raises InputError (not a regular file), NotAudioError (empty, not media, refused container,
    no audio, undecodable) or ConversionError (ffmpeg timed out).
    """
    if check_regular_file(path).st_size == 0:
        raise NotAudioError("the file is empty (0 bytes)")
    args = pcm_args(ffmpeg, path, sample_rate=PCM_SAMPLE_RATE, max_seconds=PROBE_DECODE_SECONDS)
    stderr = StderrCapture(head_bytes=DUMP_BYTES, tail_bytes=8192)
    decoded = 0
    async with FfmpegProcess(args, stderr=stderr, stdout_limit=65_536) as proc:
        try:
            async with asyncio.timeout(timeout_s):
                while block := await proc.stdout.read(65_536):
                    decoded += len(block)
                code = await proc.finish()
        except TimeoutError:
            raise _timeout_error("probing", timeout_s) from None
    info = parse_input_dump(stderr.head, path)
    if code != 0 or info is None:
        raise NotAudioError(_failure_reason(stderr, info, path))
    if decoded == 0:
        raise NotAudioError("the audio stream holds no decodable sound")
    return info


async def probe_length(path: Path, *, ffmpeg: str) -> AudioInfo:
    """`probe`, with the length measured from the audio's packets when they can be read.

    A header's length can lie: an mp3's Xing frame count, a guess from the bitrate. Reading the
    packets to the end (no decoding) costs about a second an hour and says how long the audio
    that will be streamed is; the header's claim stays in `declared_seconds`.
    """
    info = await probe(path, ffmpeg=ffmpeg)
    measured = await measure_seconds(path, ffmpeg=ffmpeg)
    if measured is None:
        return info
    return replace(info, duration_seconds=measured, declared_seconds=info.duration_seconds)


async def measure_seconds(
    path: Path, *, ffmpeg: str, timeout_s: float = MEASURE_TIMEOUT_S
) -> float | None:
    """The first audio stream's length from its packets' timestamps, read to the end without
    decoding; None when ffmpeg cannot tell (it failed, found no packet, or timed out)."""
    stderr = StderrCapture(tail_bytes=4096)
    last: int | None = None
    async with FfmpegProcess(packet_args(ffmpeg, path), stderr=stderr, stdout_limit=65_536) as proc:
        try:
            async with asyncio.timeout(timeout_s):
                while line := await proc.stdout.readline():
                    key, _, value = line.decode(errors="replace").strip().partition("=")
                    if key == "out_time_us" and value.isdigit():
                        last = int(value)
                code = await proc.finish()
        except TimeoutError:
            log.warning("measuring %s took over %g s; its header is used", path.name, timeout_s)
            return None
    if code != 0 or not last:
        return None
    return last / 1_000_000


def _timeout_error(doing: str, timeout_s: float) -> ConversionError:
    err = ConversionError(
        f"ffmpeg took longer than {timeout_s:g} s {doing} the file and was stopped",
        hint="the machine may be overloaded, or the file is pathological",
    )
    err.retryable = True  # a busy machine is worth another try; the attempt limit bounds it
    return err


async def stream_pcm(
    path: Path,
    *,
    ffmpeg: str,
    chunk_bytes: int = MAX_CHUNK_BYTES,
    timeout_s: float | None = None,
    expected_seconds: float | None = None,
) -> AsyncGenerator[bytes, None]:
    """Yield the first audio stream as 16 kHz mono pcm_s16le, in chunks of exactly `chunk_bytes`.

    Only the last chunk may be shorter. Memory stays bounded whatever the file's length.
    `timeout_s` bounds the time spent waiting for ffmpeg (not the consumer's time between chunks).
    After all the audio ffmpeg produced, raises ConversionError if it exited non-zero, timed out,
    or the audio is clearly shorter than the length the file declares (truncated) — or than
    `expected_seconds` when given (e.g. `AudioInfo.trusted_duration` from `probe`).
    Ending early: use `contextlib.aclosing`, or cancel the task; either way ffmpeg's process
    group is killed at once (and reaped).
    """
    if chunk_bytes <= 0 or chunk_bytes > MAX_CHUNK_BYTES or chunk_bytes % 2:
        raise ValueError(f"chunk_bytes must be even and in 2..{MAX_CHUNK_BYTES}, not {chunk_bytes}")
    if check_regular_file(path).st_size == 0:
        raise NotAudioError("the file is empty (0 bytes)")
    args = pcm_args(ffmpeg, path, sample_rate=PCM_SAMPLE_RATE, max_seconds=None)
    stderr = StderrCapture(head_bytes=DUMP_BYTES, tail_bytes=8192)
    loop = asyncio.get_running_loop()
    budget = timeout_s
    produced = 0
    async with FfmpegProcess(args, stderr=stderr, stdout_limit=chunk_bytes) as proc:
        while True:
            started = loop.time()
            try:
                chunk = await asyncio.wait_for(_read_up_to(proc.stdout, chunk_bytes), budget)
            except TimeoutError:
                raise _timeout_error("converting", timeout_s or 0) from None
            if budget is not None:
                budget = max(0.0, budget - (loop.time() - started))
            if chunk:
                produced += len(chunk)
                yield chunk
            if len(chunk) < chunk_bytes:
                break  # end of output
        try:
            code = await asyncio.wait_for(proc.finish(), budget)
        except TimeoutError:
            raise _timeout_error("converting", timeout_s or 0) from None
    problem = stderr.last_error(path)
    if code != 0:
        raise decoding_failure(stderr, path, code, produced)
    if expected_seconds is None and (info := parse_input_dump(stderr.head, path)) is not None:
        expected_seconds = info.trusted_duration
    if expected_seconds is not None:
        check_complete(pcm_seconds(produced), expected_seconds)
    if problem:
        log.warning("ffmpeg recovered from decoding errors in %s: %s", path.name, problem)


def decoding_failure(
    stderr: StderrCapture, path: Path, code: int, produced: int
) -> ConversionError:
    """ffmpeg exited `code` after `produced` bytes of PCM: why, for a user's eyes."""
    problem = stderr.last_error(path)
    reason = _failure_reason(stderr, None, path) if produced == 0 else problem
    return ConversionError(
        f"ffmpeg failed (exit status {code}) after {pcm_seconds(produced):.1f} s of audio: "
        + (reason or "no message"),
        hint="the file is probably damaged; re-export or re-record it",
    )


def check_complete(got: float, expected: float) -> None:
    if got < expected - max(1.0, 0.002 * expected):
        raise ConversionError(
            f"the audio stops at {got:.1f} s but the file declares {expected:.1f} s: "
            "it looks truncated",
            hint="the file is incomplete; copy or export it again",
        )


async def _read_up_to(stream: asyncio.StreamReader, n: int) -> bytes:
    try:
        return await stream.readexactly(n)
    except asyncio.IncompleteReadError as exc:
        return exc.partial  # end of output: the last, shorter chunk


def _hash_file(path: Path) -> str:
    # O_NOFOLLOW refuses a symlink; O_NONBLOCK keeps a FIFO from blocking the open.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputError(f"cannot open the file for hashing: {exc.strerror}") from None
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError("not a regular file (a directory, FIFO or device)")
        return hashlib.file_digest(f, "sha256").hexdigest()


async def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file's content, read in blocks in a worker thread."""
    return await asyncio.to_thread(_hash_file, path)
