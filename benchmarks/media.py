"""Test audio for the benchmarks, made with ffmpeg and kept in a cache folder between runs.

The audio is speech-like for the emulator and for silence detection alike: "sentences" of five
"words" (0.55 s tone bursts, 0.25 s apart: the emulator hears one token each) followed by a
1.0 s pause (longer than silencedetect's 0.4 s default, so parts can be cut there). The pitch
moves from sentence to sentence, and `voice` shifts it so that files differ in content (voxbatch
would otherwise take them for copies and not transcribe them again).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SENTENCE_S = 5.0
_ENCODERS = {
    ".opus": ("-c:a", "libopus", "-b:a", "24k"),
    ".mp3": ("-c:a", "libmp3lame", "-b:a", "32k"),
}
_LOOP_BLOCK_S = 60.0  # a long file is this much audio encoded once, then looped by stream copy


def _expression(voice: int, clip_s: float | None = None) -> str:
    """aevalsrc expression: words inside sentences, each sentence's pitch a little different.

    With `clip_s`, the pitch also changes every `clip_s` seconds (one file each when cut up).
    """
    pitch = f"(170+23*{voice % 40}+31*mod(floor(t/{SENTENCE_S:g})\\,7)"
    if clip_s is not None:
        pitch += f"+3*floor(t/{clip_s:g})"
    pitch += ")"
    voiced = f"lt(mod(t\\,{SENTENCE_S:g})\\,4)*lt(mod(t\\,0.8)\\,0.55)"
    return f"if({voiced}\\,0.3*sin(2*PI*{pitch}*t)\\,0)"


def _ffmpeg(ffmpeg: str, *args: str, timeout: float = 600) -> None:
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(args)}\n{done.stderr}")


def _publish(tmp: Path, final: Path) -> Path:
    """Files appear in the cache whole or not at all (an interrupted run leaves no half file)."""
    os.replace(tmp, final)
    return final


def speech(ffmpeg: str, cache: Path, seconds: float, *, ext: str = ".opus", voice: int = 0) -> Path:
    """A mono 16 kHz file of `seconds` of speech-like audio, from the cache when made before."""
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / f"speech-{seconds:g}s-v{voice}{ext}"
    if final.exists():
        return final
    tmp = final.with_name(f".tmp-{final.name}")
    if seconds <= _LOOP_BLOCK_S:
        _encode(ffmpeg, tmp, seconds, voice, ext)
        return _publish(tmp, final)
    # Encoding two hours takes minutes on a small machine; looping a minute by stream copy
    # takes a second. Whole sentences fit in the block, so the loop has no seam.
    block = speech(ffmpeg, cache, _LOOP_BLOCK_S, ext=ext, voice=voice)
    loops = int(seconds // _LOOP_BLOCK_S) + 1
    _ffmpeg(
        ffmpeg, "-stream_loop", str(loops - 1), "-i", f"file:{block}",
        "-t", f"{seconds:g}", "-c", "copy", "-f", _muxer(ext), f"file:{tmp}",
    )  # fmt: skip
    return _publish(tmp, final)


def _muxer(ext: str) -> str:
    return "ogg" if ext == ".opus" else ext.lstrip(".")


def _encode(ffmpeg: str, path: Path, seconds: float, voice: int, ext: str) -> None:
    _ffmpeg(
        ffmpeg, "-f", "lavfi", "-i", f"aevalsrc={_expression(voice)}:s=16000:d={seconds:g}",
        *_ENCODERS[ext], "-map_metadata", "-1", "-f", _muxer(ext), f"file:{path}",
    )  # fmt: skip


def clips(ffmpeg: str, cache: Path, count: int, seconds: float, *, ext: str = ".mp3") -> Path:
    """A folder of `count` clips of about `seconds` each, all different, made by one ffmpeg."""
    final = cache / f"clips-{count}x{seconds:g}s{ext.replace('.', '-')}"
    if final.exists():
        return final
    tmp = cache / f".tmp-{final.name}"
    tmp.mkdir(parents=True, exist_ok=True)
    total = count * seconds
    _ffmpeg(
        ffmpeg, "-f", "lavfi",
        "-i", f"aevalsrc={_expression(0, clip_s=seconds)}:s=16000:d={total:g}",
        *_ENCODERS[ext], "-map_metadata", "-1",
        "-f", "segment", "-segment_time", f"{seconds:g}", "-reset_timestamps", "1",
        f"file:{tmp}/clip-%04d{ext}",
    )  # fmt: skip
    for extra in sorted(tmp.iterdir())[count:]:
        extra.unlink()  # the segmenter's last few milliseconds, cut at a frame boundary
    return _publish(tmp, final)


def pcm(ffmpeg: str, source: Path) -> Path:
    """`source` decoded to raw 16 kHz mono s16le beside it (the SDK baseline streams this)."""
    final = source.with_suffix(".s16le")
    if final.exists():
        return final
    tmp = final.with_name(f".tmp-{final.name}")
    _ffmpeg(
        ffmpeg, "-i", f"file:{source}", "-map", "0:a:0",
        "-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", "16000", f"file:{tmp}",
    )  # fmt: skip
    return _publish(tmp, final)
