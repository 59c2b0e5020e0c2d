"""Commands for looking after a server's data: backup and prune. Safe while the daemon runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from voxbatch.cli.app import EXIT_USAGE, App, fail, json_option
from voxbatch.cli.render import emit_json


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
    if not file.absolute().parent.is_dir():
        fail(f"no folder {file.absolute().parent} to write {file.name} into", code=EXIT_USAGE)
    try:
        done = backup_database(settings.db_path, file, force=force)
    except FileExistsError:
        fail(f"{file} exists; use --force to replace it", code=EXIT_USAGE)
    click.echo(f"backed up {settings.db_path} to {done}", err=True)


@click.command()
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=1),
    required=True,
    help="Prune done jobs that finished more than DAYS days ago.",
)
@click.option("--dry-run", is_flag=True, help="Print what would be removed; change nothing.")
@json_option
@click.pass_obj
def prune(app: App, days: int, dry_run: bool, as_json: bool) -> None:
    """Remove done jobs older than DAYS: originals in done/, outputs in the outbox, and their
    rows (the cost ledger is kept). Failed and unfinished jobs are never pruned."""
    from voxbatch.ops.retention import prune as prune_jobs

    cutoff = datetime.now(UTC) - timedelta(days=days)
    report = prune_jobs(app.db, app.settings, cutoff, dry_run=dry_run)
    if as_json:
        emit_json(
            {
                "dry_run": dry_run,
                "cutoff": cutoff,
                "jobs": report.jobs,
                "files": [str(f) for f in report.files],
                "path_events": report.path_events,
            }
        )
        return
    verb = "would remove" if dry_run else "removed"
    for path in report.files:
        click.echo(f"{verb}: {path}")
    click.echo(
        f"{verb} {report.jobs} job(s) finished before {cutoff:%Y-%m-%d %H:%M} UTC, "
        f"{len(report.files)} file(s) and {report.path_events} old note(s) about files; "
        "the cost ledger is kept",
        err=True,
    )
