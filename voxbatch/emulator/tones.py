"""Stand-in speech synthesis: a beep per word, encoded as a real, playable audio file."""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import sys
import wave
from array import array

import imageio_ffmpeg

from voxbatch.errors import VoxbatchError

SPEECH_SAMPLE_RATE = 24_000
SPEECH_FORMATS = ("pcm", "wav", "mp3", "flac", "opus")
_FADE_SAMPLES = SPEECH_SAMPLE_RATE * 5 // 1000
_FFMPEG_OUTPUT = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"],
    "flac": ["-c:a", "flac", "-f", "flac"],
    "opus": ["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"],
}
_ENCODE_TIMEOUT_S = 60


def tone_pattern(text: str, *, voice: str, ms_per_char: int, max_s: float) -> array:
    """Float samples in [-1, 1] at 24 kHz: every character lasts `ms_per_char`, words beep.

    The pitch of each word depends on the voice, so two voices give different files.
    """
    per_char = SPEECH_SAMPLE_RATE * ms_per_char // 1000
    limit = int(max_s * SPEECH_SAMPLE_RATE)
    samples = array("f")
    for run in _runs(text):
        if len(samples) >= limit:
            break
        count = min(len(run) * per_char, limit - len(samples))
        if run[0].isspace():
            samples.frombytes(bytes(4 * count))  # zeros: silence between words
            continue
        seed = hashlib.blake2b(f"{voice}\0{run}".encode(), digest_size=2).digest()
        frequency = 300 + int.from_bytes(seed, "big") % 600
        step = 2 * math.pi * frequency / SPEECH_SAMPLE_RATE
        fade = min(_FADE_SAMPLES, count // 2) or 1
        samples.extend(
            0.3 * math.sin(step * i) * min(1.0, i / fade, (count - 1 - i) / fade)
            for i in range(count)
        )
    return samples


def _runs(text: str) -> list[str]:
    """Split into alternating runs of non-space and space characters."""
    runs: list[str] = []
    for char in text:
        if runs and runs[-1][0].isspace() == char.isspace():
            runs[-1] += char
        else:
            runs.append(char)
    return runs


def pcm_s16le(samples: array) -> bytes:
    ints = array("h", (int(max(-1.0, min(1.0, s)) * 32767) for s in samples))
    if sys.byteorder == "big":
        ints.byteswap()
    return ints.tobytes()


async def encode(samples: array, response_format: str) -> bytes:
    """The whole file in `response_format`; pcm is float32 little-endian mono 24 kHz."""
    if response_format == "pcm":
        floats = array("f", samples)
        if sys.byteorder == "big":
            floats.byteswap()
        return floats.tobytes()
    if response_format == "wav":
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SPEECH_SAMPLE_RATE)
            out.writeframes(pcm_s16le(samples))
        return buffer.getvalue()
    if response_format not in _FFMPEG_OUTPUT:
        raise VoxbatchError(f"Unsupported speech format: {response_format}")
    return await _ffmpeg_encode(pcm_s16le(samples), _FFMPEG_OUTPUT[response_format])


async def _ffmpeg_encode(pcm: bytes, output_args: list[str]) -> bytes:
    args = [
        *("-nostdin", "-hide_banner", "-loglevel", "error"),
        *("-f", "s16le", "-ar", str(SPEECH_SAMPLE_RATE), "-ac", "1", "-i", "pipe:0"),
        *output_args,
        "pipe:1",
    ]
    process = await asyncio.create_subprocess_exec(
        imageio_ffmpeg.get_ffmpeg_exe(),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(pcm), _ENCODE_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise VoxbatchError("ffmpeg timed out encoding emulated speech") from None
    if process.returncode != 0:
        message = err.decode(errors="replace").strip()
        raise VoxbatchError(f"ffmpeg could not encode emulated speech: {message}")
    return out
