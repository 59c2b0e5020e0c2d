"""One decoding of a long file, shared by its parts: 16 kHz mono PCM in a file, and its silences.

A single ffmpeg decodes the whole file once, finding silences as it goes (silencedetect,
timed by the samples decoded), into a private spool file that the parts read from as it
grows: the first parts stream while the rest is still being decoded, each part reads only its
own stretch, and memory stays bounded whatever the file's length.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

from voxbatch.errors import ConversionError
from voxbatch.media.audio import (
    DUMP_BYTES,
    MAX_CHUNK_BYTES,
    PCM_SAMPLE_RATE,
    check_complete,
    decoding_failure,
    parse_input_dump,
    pcm_seconds,
)
from voxbatch.media.ffmpeg import FfmpegProcess, StderrCapture, pcm_args

log = logging.getLogger(__name__)

READ_BYTES = 1 << 20
_SILENCE = re.compile(rb"silence_(start|end): (-?\d+(?:\.\d+)?)")


def byte_at(seconds: float) -> int:
    """The byte offset of a time in the PCM (whole samples)."""
    return round(seconds * PCM_SAMPLE_RATE) * 2


class _SilenceLog(StderrCapture):
    """ffmpeg's stderr, kept as usual, with silencedetect's findings picked out as they come."""

    def __init__(self) -> None:
        super().__init__(head_bytes=DUMP_BYTES, tail_bytes=8192)
        self.silences: list[tuple[float, float]] = []
        self.open_since: float | None = None
        self._partial = b""

    async def drain(self, stream: asyncio.StreamReader) -> None:
        async def lines() -> AsyncGenerator[bytes, None]:
            while block := await stream.read(4096):
                self._keep(block)
                yield block

        async for block in lines():
            text = self._partial + block
            *whole, self._partial = text.split(b"\n")
            for line in whole:
                self._note(line)

    def _keep(self, block: bytes) -> None:
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += block[:room]
        self._tail += block
        if len(self._tail) > self._tail_limit:
            del self._tail[: len(self._tail) - self._tail_limit]

    def _note(self, line: bytes) -> None:
        if b"silencedetect" not in line:
            return
        for kind, value in _SILENCE.findall(line):
            at = max(0.0, float(value))
            if kind == b"start":
                self.open_since = at
            elif self.open_since is not None:
                self.silences.append((self.open_since, at))
                self.open_since = None


class Spool:
    """Decode `path` into `spool_path` once (`run`); parts read stretches of it (`chunks`)."""

    def __init__(
        self,
        path: Path,
        spool_path: Path,
        *,
        ffmpeg: str,
        silence_db: float,
        silence_seconds: float,
        timeout_s: float,
    ) -> None:
        self.path, self.spool_path, self.ffmpeg = path, spool_path, ffmpeg
        self._filter = (
            # Timestamps from the samples decoded: silences line up with the PCM's bytes.
            f"asetpts=N/SR/TB,silencedetect=noise={silence_db:g}dB:d={silence_seconds:g}"
        )
        self.timeout_s = timeout_s
        self.decoded = 0  # bytes of PCM in the spool file
        self.ended = False
        self.error: BaseException | None = None
        self._log = _SilenceLog()
        self._grew = asyncio.Condition()

    @property
    def decoded_seconds(self) -> float:
        return pcm_seconds(self.decoded)

    def silences(self) -> list[tuple[float, float]]:
        """Silences found so far; one still going on ends where the decoding has got to."""
        found = list(self._log.silences)
        if self._log.open_since is not None:
            found.append((self._log.open_since, self.decoded_seconds))
        return found

    async def run(self) -> None:
        """Decode the whole file; raises ConversionError (the readers see it too)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._decode()
        except TimeoutError:
            self.error = ConversionError(
                f"ffmpeg took longer than {self.timeout_s:g} s converting the file and was stopped"
            )
            self.error.retryable = True
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended = True
            async with self._grew:
                self._grew.notify_all()
        if self.error is not None:
            raise self.error

    async def _decode(self) -> None:
        args = pcm_args(
            self.ffmpeg,
            self.path,
            sample_rate=PCM_SAMPLE_RATE,
            max_seconds=None,
            audio_filter=self._filter,
        )
        self.spool_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.spool_path, flags, 0o600)
        try:
            async with FfmpegProcess(args, stderr=self._log, stdout_limit=READ_BYTES) as proc:
                while block := await proc.stdout.read(READ_BYTES):
                    os.write(fd, block)  # into the page cache: microseconds a megabyte
                    self.decoded += len(block)
                    async with self._grew:
                        self._grew.notify_all()
                code = await proc.finish()
        finally:
            os.close(fd)
        if code != 0:
            raise decoding_failure(self._log, self.path, code, self.decoded)
        info = parse_input_dump(self._log.head, self.path)
        if info is not None and info.trusted_duration is not None:
            check_complete(self.decoded_seconds, info.trusted_duration)

    async def _wait_for(self, nbytes: int) -> None:
        async with self._grew:
            await self._grew.wait_for(lambda: self.decoded >= nbytes or self.ended)
        if self.error is not None and self.decoded < nbytes:
            raise self.error

    async def wait_for_seconds(self, seconds: float) -> None:
        """Until that much is decoded, or the decoding ended (however it ended)."""
        async with self._grew:
            await self._grew.wait_for(lambda: self.decoded_seconds >= seconds or self.ended)

    async def changed(self) -> None:
        """Wake the readers: a part's end became known."""
        async with self._grew:
            self._grew.notify_all()

    async def _until_known(self, end_s: Callable[[], float | None]) -> None:
        async with self._grew:
            await self._grew.wait_for(lambda: end_s() is not None or self.error is not None)
        if self.error is not None:
            raise self.error

    async def chunks(
        self,
        start_s: float,
        end_s: Callable[[], float | None],
        *,
        horizon_s: float,
        chunk_bytes: int = MAX_CHUNK_BYTES,
    ) -> AsyncGenerator[bytes, None]:
        """The PCM from `start_s` to `end_s()`, in chunks of `chunk_bytes` but the last.

        While the end is not known (its cut not decided yet) nothing past `horizon_s`, the
        earliest the cut can be, is read: a session never sends audio of the next part."""
        position = byte_at(start_s)
        fd = os.open(self.spool_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            while True:
                end = end_s()
                limit = byte_at(end if end is not None else horizon_s)
                if position >= limit:
                    if end is not None:
                        return
                    await self._until_known(end_s)
                    continue
                want = min(chunk_bytes, limit - position)
                await self._wait_for(position + want)
                size = min(want, self.decoded - position)
                if size <= 0:
                    if end is not None:
                        return  # the decoding ended before the end recorded: nothing more
                    await self._until_known(end_s)
                    continue
                chunk = os.pread(fd, size, position)
                position += len(chunk)
                yield chunk
        finally:
            os.close(fd)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.spool_path.unlink()


def spool_path_for(home: Path, job_id: int) -> Path:
    return home / "spool" / f"{job_id}.pcm"
