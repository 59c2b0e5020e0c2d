"""Finding ffmpeg, building safe argument lists, and running it so that it never outlives us.

Untrusted media rules (docs/reliability.md §4): the input is always `file:` + an absolute path (a
file named `concat:a|b` or `-x.mp3` stays a file name), only container demuxers on an allow-list
may open it (a playlist or concat script saved as `.wav` is refused instead of opening the files
it names), only the file protocol is allowed, stdin is closed, and ffmpeg runs in its own process
group that is killed as a whole on timeout or cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import stat
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import ffmpeg as ffmpeg_args  # ffmpeg-python: only used to build argument lists
import imageio_ffmpeg

from voxbatch.errors import ConfigError, InputError

# Audio/video container demuxers only; each name checked against `ffmpeg -demuxers` (ffmpeg 9).
# A list entry matches a demuxer whose name list contains it ("mov" matches "mov,mp4,m4a,...").
# Deliberately absent: hls, dash, concat, ffconcat, image sequences, lavfi, sdp/rtp/rtsp, data.
ALLOWED_DEMUXERS: tuple[str, ...] = (
    "wav", "w64", "aiff", "caf", "au", "sox", "voc",
    "mp3", "aac", "loas", "ac3", "eac3", "dts", "flac", "ogg", "wv", "ape", "tta", "tak",
    "mpc", "mpc8", "amr", "amrnb", "amrwb", "gsm", "dsf", "xwma",
    "mov", "matroska", "avi", "asf", "flv", "mpeg", "mpegts",
)  # fmt: skip

# Every line ffmpeg logs is tagged with its level (`-loglevel level+info`), so errors can be told
# from the informational input dump: "[mp3 @ 0x55d0] [error] Header missing".
_TAGGED = re.compile(
    r"^(?:\[[^\]]*@ ?0x[0-9a-f]+\] )*"
    r"\[(?P<level>panic|fatal|error|warning|info|verbose|debug|trace)\] ?"
)
_ERROR_LEVELS = frozenset({"panic", "fatal", "error"})
# Lines that close most failures and say nothing about the cause.
_NOISE = re.compile(
    r"^(Conversion failed!|Terminating thread with return code|Task finished with error code|"
    r"Error opening input|Error opening output|Exiting normally)"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def find_ffmpeg(configured: str | None = None) -> str:
    """The ffmpeg to run: the configured one, else the system's, else imageio-ffmpeg's."""
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise ConfigError(
                f"the configured ffmpeg {configured!r} is not an executable file",
                hint="fix the ffmpeg path in the configuration, or remove it to use the default",
            )
        return found
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        bundled = imageio_ffmpeg.get_ffmpeg_exe()
    except (RuntimeError, OSError):
        bundled = None
    if bundled and os.access(bundled, os.X_OK):
        return bundled
    raise ConfigError(
        "ffmpeg not found",
        hint="install ffmpeg (apt-get install ffmpeg) or the imageio-ffmpeg package, "
        "or set the path of an ffmpeg binary in the configuration",
    )


def check_regular_file(path: Path) -> os.stat_result:
    """lstat the input: it must be a regular file, never a symlink, FIFO or device."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise InputError("file not found") from None
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise InputError("the file is a symbolic link; only regular files are processed")
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file (a directory, FIFO or device)")
    return st


def input_url(path: Path) -> str:
    """`file:` + absolute path, so that no part of a file name is read as a protocol or option."""
    return "file:" + os.path.abspath(path)  # abspath, not resolve(): never follow links here


# ffmpeg-python hashes its arguments as UTF-8, which a non-UTF-8 file name cannot be: the graph
# is built with this stand-in, replaced by the real URL in the compiled list.
_URL_SLOT = "file:/voxbatch-input"


def _input_node() -> ffmpeg_args.nodes.FilterableStream:
    return ffmpeg_args.input(
        _URL_SLOT,
        format_whitelist=",".join(ALLOWED_DEMUXERS),
        protocol_whitelist="file",
    )


def pcm_args(
    ffmpeg: str,
    path: Path,
    *,
    sample_rate: int,
    max_seconds: float | None,
    audio_filter: str | None = None,
) -> list[str]:
    """Argument list decoding the first audio stream to raw s16le mono on stdout."""
    extra: dict[str, object] = {"t": max_seconds} if max_seconds is not None else {}
    if audio_filter is not None:
        extra["af"] = audio_filter
    out = ffmpeg_args.output(
        _input_node()["a:0"],  # compiles to -map 0:a:0: the first audio stream only
        "pipe:1",
        f="s16le",
        acodec="pcm_s16le",
        ac=1,
        ar=sample_rate,
        vn=None,
        sn=None,
        dn=None,
        **extra,
    )
    compiled = [input_url(path) if arg == _URL_SLOT else arg for arg in out.compile(cmd=ffmpeg)]
    # Global options go first: ffmpeg may ignore options trailing the output file.
    globals_ = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info"]
    return [compiled[0], *globals_, *compiled[1:]]


def packet_args(ffmpeg: str, path: Path) -> list[str]:
    """Argument list reading the first audio stream's packets to the end without decoding them
    (`-c copy` into the null muxer), its progress (`out_time_us=`) on stdout."""
    out = ffmpeg_args.output(
        _input_node()["a:0"], "pipe:1", f="null", acodec="copy", vn=None, sn=None, dn=None
    )
    compiled = [input_url(path) if arg == _URL_SLOT else arg for arg in out.compile(cmd=ffmpeg)]
    globals_ = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+error"]
    return [compiled[0], *globals_, "-progress", "pipe:1", *compiled[1:]]


def split_level(line: str) -> tuple[str | None, str]:
    """(level, message) of one stderr line; level None for an untagged continuation line."""
    m = _TAGGED.match(line)
    return (m.group("level"), line[m.end() :]) if m else (None, line)


def clean_log_line(line: str, path: Path | None = None) -> str:
    """One readable line: no `[demuxer @ 0x…]`/level prefix, no control characters, no file path."""
    if path is not None:
        line = line.replace(input_url(path), "the file").replace(os.path.abspath(path), "the file")
    line = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    line = _CONTROL.sub(" ", split_level(line)[1])
    return " ".join(line.split())[:300]


class StderrCapture:
    """Drains ffmpeg's stderr, keeping its first `head_bytes` and last `tail_bytes` only."""

    def __init__(self, *, head_bytes: int = 0, tail_bytes: int = 8192) -> None:
        self._head_limit = head_bytes
        self._tail_limit = tail_bytes
        self._head = bytearray()
        self._tail = bytearray()

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while block := await stream.read(4096):
            room = self._head_limit - len(self._head)
            if room > 0:
                self._head += block[:room]
            self._tail += block
            if len(self._tail) > self._tail_limit:
                del self._tail[: len(self._tail) - self._tail_limit]

    # surrogateescape, like file names: the input's own path can then be found and removed.
    @property
    def head(self) -> str:
        return self._head.decode("utf-8", "surrogateescape")

    @property
    def tail(self) -> str:
        return self._tail.decode("utf-8", "surrogateescape")

    def errors(self, path: Path | None = None) -> list[str]:
        """Error-level lines from the kept start and end of stderr, cleaned, file path removed.

        Lines in both parts (a short log) appear twice, which is harmless for matching."""
        found: list[str] = []
        for text in (self.head, self.tail):
            level: str | None = None
            for raw in text.splitlines():
                level = split_level(raw)[0] or level  # an untagged line continues the one before
                if level in _ERROR_LEVELS and (line := clean_log_line(raw, path)):
                    found.append(line)
        return found

    def last_error(self, path: Path | None = None) -> str:
        """The last informative error ffmpeg logged, cleaned for a user's eyes ("" if none)."""
        errors = self.errors(path)
        for line in reversed(errors):
            if not _NOISE.match(line):
                return line
        return errors[-1] if errors else ""


class FfmpegProcess:
    """Runs ffmpeg in a new session; leaving the context kills its whole process group and reaps it.

    stdin is /dev/null; stderr is drained concurrently into a bounded `StderrCapture`.
    """

    def __init__(self, args: Sequence[str], *, stderr: StderrCapture, stdout_limit: int) -> None:
        self._args = list(args)
        self.stderr = stderr
        self._stdout_limit = stdout_limit
        self._proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None
        self._owner: asyncio.Task[Any] | None = None

    @property
    def proc(self) -> asyncio.subprocess.Process:
        assert self._proc is not None, "use FfmpegProcess as an async context manager"
        return self._proc

    @property
    def stdout(self) -> asyncio.StreamReader:
        assert self.proc.stdout is not None
        return self.proc.stdout

    async def __aenter__(self) -> FfmpegProcess:
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, killed as a whole
                limit=self._stdout_limit,
                env=child_environment(),
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot run ffmpeg ({self._args[0]}): {exc.strerror}",
                hint="check that the configured ffmpeg exists and is executable",
            ) from None
        assert self._proc.stderr is not None
        self._drain = asyncio.create_task(self.stderr.drain(self._proc.stderr))
        # An async generator cancelled while parked at a yield is only closed when it is
        # garbage-collected; tie ffmpeg to the task that started it so it never outlives it.
        self._owner = asyncio.current_task()
        if self._owner is not None:
            self._owner.add_done_callback(self._owner_done)
        return self

    def _owner_done(self, _task: asyncio.Task[Any]) -> None:
        self.kill()

    async def finish(self) -> int:
        """Wait for ffmpeg to exit and for its stderr to be fully read; the exit status."""
        code = await self.proc.wait()
        if self._drain is not None:
            await self._drain
        return code

    def kill(self) -> None:
        """SIGKILL the whole process group (ffmpeg and anything it started)."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owner is not None:
            self._owner.remove_done_callback(self._owner_done)
        self.kill()  # no-op when it already exited; kill() is synchronous, so no orphan survives
        if self._proc is None:
            return
        # Reap it (no zombie) while reading both pipes to EOF: a full stdout buffer would
        # otherwise keep the pipe open and wait() from returning. Bounded all the same.
        tasks: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(self._proc.wait()),
            asyncio.ensure_future(_discard(self.stdout)),
        }
        if self._drain is not None:
            tasks.add(self._drain)
        _, late = await asyncio.wait(tasks, timeout=5)
        for task in late:
            task.cancel()


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(65_536):
        pass


# Secrets a child process has no use for (ffmpeg reads untrusted files: give it nothing).
_SECRET_ENV = ("MISTRAL_API_KEY", "CREDENTIALS_DIRECTORY")


def child_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
