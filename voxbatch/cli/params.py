"""Argument types every command shares, so a bad argument is refused the same way (exit 2)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import click

_HEX = frozenset("0123456789abcdef")
_SHA256_HEX_DIGITS = 64


class JobRefType(click.ParamType):
    """JOB: a numeric id or a unique prefix (4+ hex digits) of the content hash.

    Only the form is checked here; whether such a job exists is the store's answer
    (`JobNotFoundError`, also exit 2).
    """

    name = "job"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        ref = str(value).strip()
        hex_prefix = 4 <= len(ref) <= _SHA256_HEX_DIGITS and set(ref.lower()) <= _HEX
        if not (ref.isascii() and ref.isdigit()) and not hex_prefix:
            self.fail(
                f"{ref!r} is neither a job id nor a content hash prefix (4+ hex digits); "
                "`voxbatch jobs` lists them",
                param,
                ctx,
            )
        return ref


JOB = JobRefType()


class InputFileType(click.ParamType):
    """A file to read audio from: it must exist and be a regular file (symlinks followed)."""

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        path = Path(value)
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            self.fail(f"{click.format_filename(path)} does not exist", param, ctx)
        except OSError as exc:
            self.fail(f"cannot read {click.format_filename(path)}: {exc.strerror}", param, ctx)
        if stat.S_ISDIR(mode):
            self.fail(
                f"{click.format_filename(path)} is a directory, not an audio file", param, ctx
            )
        if not stat.S_ISREG(mode):
            self.fail(
                f"{click.format_filename(path)} is not a regular file (a FIFO or device)",
                param,
                ctx,
            )
        return path


INPUT_FILE = InputFileType()
