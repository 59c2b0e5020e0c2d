"""The progress line: audio the server has transcribed, an ETA, one terminal row at most."""

from __future__ import annotations

import io
from pathlib import Path

from wcwidth import wcswidth

from voxbatch.cli.progress import StderrReporter
from voxbatch.process import FileOutcome

CLIP = Path("/x/a.wav")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def reporter(width: int = 120) -> tuple[StderrReporter, Tty, Clock]:
    stream, clock = Tty(), Clock()
    return StderrReporter(2, stream=stream, width=lambda: width, clock=clock), stream, clock


def test_audio_sent_does_not_move_the_bar_audio_transcribed_does() -> None:
    live, _, clock = reporter()
    live.started(CLIP, 10.0)
    live.advanced(CLIP, 10.0)  # all of it handed to the socket in the first seconds
    assert "  0.0%" in live.line()
    clock.now = 10.0
    live.transcribed(CLIP, 5.0)
    assert " 50.0% 5/10 s transcribed" in live.line()


def test_eta_from_the_rate_of_transcription() -> None:
    live, _, clock = reporter()
    live.started(CLIP, 60.0)
    assert "ETA ?" in live.line()
    clock.now = 10.0
    live.transcribed(CLIP, 20.0)  # 2 s of audio a second: 40 s left take 20 s
    assert "ETA 0:20" in live.line()


def test_each_redraw_fits_a_narrow_terminal() -> None:
    live, stream, clock = reporter(width=40)
    live.started(CLIP, 10.0)
    clock.now = 1.0
    live.transcribed(CLIP, 3.0)
    live.finished(FileOutcome(CLIP, 1, "done", audio_seconds=10.0))
    drawn = [part.removeprefix("\x1b[2K") for part in stream.getvalue().split("\r")]
    bars = [part for part in drawn if part.startswith("[") and "transcribed" in part]
    assert bars and all(wcswidth(bar) <= 39 for bar in bars), bars
    assert "[1/2] ok      a.wav → job 1" in stream.getvalue()
