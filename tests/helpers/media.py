"""Test media made on the spot with the real ffmpeg: tone bursts, long files, hostile files.

Every factory writes into a directory the caller owns (tmp_path) and runs ffmpeg synchronously.
Import from other tests as `from tests.helpers.media import tone_bursts, hostile_set, ...`.
"""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path

from voxbatch.media.ffmpeg import find_ffmpeg


@cache
def ffmpeg_exe() -> str:
    return find_ffmpeg()


def run_ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly, overwriting outputs; raise with its stderr on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(args)}\n{done.stderr}")


def burst_intervals(
    seconds: float, on_s: float = 0.6, off_s: float = 0.4
) -> list[tuple[float, float]]:
    """The voiced (start, end) intervals `tone_bursts` writes: on_s of tone, off_s of silence."""
    intervals = []
    start = 0.0
    while start < seconds - 1e-9:
        intervals.append((round(start, 6), round(min(start + on_s, seconds), 6)))
        start += on_s + off_s
    return intervals


def tone_bursts(
    path: Path,
    seconds: float,
    *,
    on_s: float = 0.6,
    off_s: float = 0.4,
    freq: float = 440.0,
    sample_rate: int = 16_000,
    channels: int = 1,
    extra_args: tuple[str, ...] = (),
) -> list[tuple[float, float]]:
    """Speech-like bursts of a tone separated by silence, in the container `path`'s extension picks.

    Returns the voiced intervals. Samples are exact (aevalsrc), so interval edges are too, before
    any lossy codec's padding.
    """
    period = on_s + off_s
    expr = f"if(lt(mod(t\\,{period})\\,{on_s})\\,0.4*sin(2*PI*{freq}*t)\\,0)"
    expr = "|".join([expr] * channels)
    run_ffmpeg(
        "-f", "lavfi", "-i", f"aevalsrc={expr}:s={sample_rate}:d={seconds}",
        *extra_args, "-map_metadata", "-1", "file:" + os.path.abspath(path),
    )  # fmt: skip
    return burst_intervals(seconds, on_s, off_s)


def long_audio(path: Path, hours: float = 2) -> Path:
    """A long, small mp3 (8 kHz, 8 kb/s tone bursts), made in well under a second.

    One minute is encoded, then looped with stream copy; `path` should end in .mp3.
    """
    minute = path.with_name(path.stem + ".minute.mp3")
    tone_bursts(minute, 60, sample_rate=8000, extra_args=("-b:a", "8k", "-write_xing", "0"))
    loops = max(1, round(hours * 60))
    run_ffmpeg(
        "-stream_loop", str(loops - 1), "-i", "file:" + str(minute.absolute()),
        "-c", "copy", "file:" + str(path.absolute()),
    )  # fmt: skip
    minute.unlink()
    return path


def zero_bytes(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def truncated(good: Path, path: Path, *, keep_bytes: int | None = None) -> Path:
    """A copy of `good` cut to `keep_bytes` (default: half of it)."""
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep_bytes is None else keep_bytes])
    return path


def text_as_audio(path: Path) -> Path:
    path.write_text("These are meeting notes, not audio.\n" * 20)
    return path


def video_without_audio(path: Path, seconds: float = 2) -> Path:
    run_ffmpeg(
        "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=64x48:rate=5",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "file:" + str(path.absolute()),
    )  # fmt: skip
    return path


def hls_playlist(path: Path, target: Path) -> Path:
    """An HLS playlist naming a real local file (`path` may end in .wav or .m3u8)."""
    path.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:10.0,\n{target.absolute()}\n#EXT-X-ENDLIST\n"
    )
    return path


def concat_script(path: Path, target: Path) -> Path:
    """An ffconcat script naming a good file by a relative name, which ffmpeg's concat demuxer
    calls safe: without a format whitelist ffmpeg decodes `target`'s audio through it."""
    path.write_text(f"ffconcat version 1.0\nfile '{os.path.relpath(target, path.parent)}'\n")
    return path


# Hostile names for a perfectly good file: each must be read as exactly that file.
HOSTILE_NAMES = (
    "with space.wav",
    "quo'te\"s.wav",
    "-leading-dash.wav",
    "emoji 🎙️ talk.wav",
    "concat:a.wav|b.wav",
    "file:looks-like-a-url.wav",
    "pipe:0.wav",
    "new\nline.wav",
    os.fsdecode(b"not-utf8-\xff\xfe.wav"),
)


def hostile_set(directory: Path) -> list[tuple[Path, bool]]:
    """(path, should_succeed) for every hostile input; good audio under nasty names succeeds.

    The failing files must each raise NotAudioError or ConversionError, never give short audio.
    """
    directory.mkdir(parents=True, exist_ok=True)
    good = directory / "good.wav"
    tone_bursts(good, 1.0)
    good_mp3 = directory / "good.mp3"
    tone_bursts(good_mp3, 4.0, extra_args=("-b:a", "32k"))
    cases: list[tuple[Path, bool]] = []
    for i, name in enumerate(HOSTILE_NAMES):
        # Distinct audio per name, so that deduplication cannot hide a name from ffmpeg.
        target = directory / name
        tone_bursts(target, 1.0, freq=300.0 + 70 * i)
        cases.append((target, True))
    # Decoys the concat name would read if it were taken as the concat protocol.
    for decoy in ("a.wav", "b.wav"):
        tone_bursts(directory / decoy, 3.0)
    bad = [
        zero_bytes(directory / "empty.mp3"),
        truncated(good_mp3, directory / "half.mp3"),
        truncated(good_mp3, directory / "first-100-bytes.mp3", keep_bytes=100),
        text_as_audio(directory / "notes.mp3"),
        video_without_audio(directory / "silent-video.mp4"),
        hls_playlist(directory / "playlist.wav", good),
        hls_playlist(directory / "playlist.m3u8", good),
        concat_script(directory / "script.wav", good),
    ]
    cases.extend((path, False) for path in bad)
    return cases


def wav_bytes(seconds: float, *, tag: int = 0, freq: float = 440.0) -> bytes:
    """A 16 kHz mono WAV of tone bursts; `tag` changes one sample so every file hashes apart."""
    import io
    import math
    import wave
    from array import array

    rate = 16_000
    samples = array("h")
    for i in range(int(seconds * rate)):
        t = i / rate
        voiced = (t % 1.0) < 0.6
        samples.append(int(12000 * math.sin(2 * math.pi * freq * t)) if voiced else 0)
    if samples:
        samples[-1] = tag % 30000
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def lying_mp3(path: Path, *, real_seconds: float, claimed_seconds: float) -> Path:
    """An mp3 whose Xing/Info header claims `claimed_seconds` over `real_seconds` of frames.

    LAME writes an Info frame first (frame count, byte count); rewriting its frame count makes
    ffmpeg report the claimed length without "estimating from bitrate", as a file cut and
    re-joined by a careless tool does. 16 kHz MPEG-2 Layer III: 576 samples a frame.
    """
    import struct

    tone_bursts(path, real_seconds, extra_args=("-b:a", "32k", "-id3v2_version", "0"))
    data = bytearray(path.read_bytes())
    at = max(data.find(b"Info", 0, 200), data.find(b"Xing", 0, 200))
    assert at > 0, "no Xing/Info frame: is this ffmpeg built with LAME?"
    (flags,) = struct.unpack(">I", data[at + 4 : at + 8])
    assert flags & 3 == 3, "the Info frame should hold the frame and byte counts"
    data[at + 8 : at + 12] = struct.pack(">I", round(claimed_seconds * 16_000 / 576))
    data[at + 12 : at + 16] = struct.pack(">I", len(data))  # the size matches: no "concatenated"
    path.write_bytes(bytes(data))
    return path
