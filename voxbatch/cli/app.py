"""What every command shares: the invocation's settings and database, errors, options."""

from __future__ import annotations

import contextlib
import os
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
        """The home's database, which must exist: a command that reads never creates one
        (a typo in --home would otherwise report an empty queue)."""
        return self.open_db(create=False)

    def open_db(self, *, create: bool) -> Database:
        """`create` only for the commands that make a home: `run` and `process`."""
        if self._db is None:
            from voxbatch.errors import NoDatabaseError
            from voxbatch.store.db import open_database

            settings = self.settings
            try:
                self._db = open_database(settings.db_path, create=create)
            except NoDatabaseError:
                if settings.database is None:
                    where, choose = f"in {settings.home}", "set VOXBATCH_HOME or --home"
                else:
                    where, choose = f"at {settings.db_path}", "see the database setting"
                raise NoDatabaseError(
                    f"no voxbatch database {where} ({choose}; "
                    "`voxbatch run` or `process` creates one)"
                ) from None
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
        except PermissionError as exc:
            # The known places say more (config, home, database); this is the backstop.
            from voxbatch.errors import access_error

            where = Path(os.fsdecode(exc.filename or "?"))
            error = access_error("use", where, exc, hint="check the owner and mode of that path")
            fail(error.message, hint=error.hint, code=EXIT_USAGE)


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
