"""What every command shares: the invocation's settings and database, errors, options."""

from __future__ import annotations

import contextlib
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from voxbatch.errors import ConfigError, JobNotFoundError, VoxbatchError

if TYPE_CHECKING:
    from voxbatch.config import Settings
    from voxbatch.store.db import Database

EXIT_FAILED, EXIT_USAGE, EXIT_CANNOT_START = 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
# Errors that blame what the user typed, not the work: exit 2 like click's own usage errors.
USAGE_ERRORS = (ConfigError, JobNotFoundError)


@dataclass
class App:
    """Per-invocation state: settings and database are opened (and imported) on first use."""

    config_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None
    _db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from voxbatch.config import load_settings
            from voxbatch.logs import configure_logging

            self._settings = load_settings(config_file=self.config_file, overrides=self.overrides)
            secret = None
            with contextlib.suppress(VoxbatchError):
                secret = self._settings.api_key()
            configure_logging(self._settings.log_level, secret=secret)
        return self._settings

    @property
    def db(self) -> Database:
        if self._db is None:
            from voxbatch.store.db import open_database

            self._db = open_database(self.settings.db_path)
        return self._db


def fail(message: str, *, hint: str = "", code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)
    sys.exit(code)


class VoxbatchGroup(click.Group):
    """Turns voxbatch errors into one clear message and the right exit code; Ctrl-C into 130
    (click alone would print "Aborted!" and exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USAGE_ERRORS as exc:
            fail(exc.message, hint=exc.hint, code=EXIT_USAGE)
        except VoxbatchError as exc:
            fail(exc.message, hint=exc.hint)
        except KeyboardInterrupt:
            fail("interrupted", code=EXIT_INTERRUPTED)


def parse_since(value: str | None) -> datetime | None:
    """An ISO date/time (UTC) or a span back from now: 30m, 12h, 7d."""
    if not value:
        return None
    match = re.fullmatch(r"(\d+)\s*([mhdw])", value.strip())
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use an ISO date like 2026-11-01 or a span like 7d, 12h, 30m"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
