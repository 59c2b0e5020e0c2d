"""Commands for looking after a server's data: backup and prune. Safe while the daemon runs."""

from __future__ import annotations

from pathlib import Path

import click

from voxbatch.cli.app import EXIT_USAGE, App, fail


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.pass_obj
def backup(app: App, file: Path, force: bool) -> None:
    """Copy the database to FILE with SQLite's online backup (safe while the daemon runs)."""
    from voxbatch.store.backup import backup_database

    settings = app.settings
    if str(settings.db_path).startswith(("postgres:", "postgresql:", "postgresql+")):
        fail("voxbatch backup copies SQLite databases; for PostgreSQL use pg_dump", code=EXIT_USAGE)
    if not settings.db_path.is_file():
        fail(f"no database at {settings.db_path}", code=EXIT_USAGE)
    try:
        done = backup_database(settings.db_path, file, force=force)
    except FileExistsError:
        fail(f"{file} exists; use --force to replace it", code=EXIT_USAGE)
    click.echo(f"backed up {settings.db_path} to {done}", err=True)
