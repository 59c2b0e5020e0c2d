"""`voxbatch process` and `voxbatch run`: transcribe named files now, or run the daemon.

Exit codes: 0 ok; 1 some work failed; 2 usage or configuration error; 3 the daemon cannot start;
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from voxbatch.cli.app import EXIT_CANNOT_START, EXIT_FAILED, App, fail, json_option
from voxbatch.cli.choices import OUTPUT_FORMATS
from voxbatch.cli.params import INPUT_FILE
from voxbatch.cli.render import emit_json, table
from voxbatch.errors import VoxbatchError

if TYPE_CHECKING:
    from voxbatch.config import InboxProfile, Settings


@click.command()
@click.argument("files", nargs=-1, required=True, type=INPUT_FILE)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the results (default: the outbox).",
)
@click.option("--language", help="Language hint, ISO 639-1 (e.g. en, fr).")
@click.option("--context-bias", multiple=True, help="A word or phrase to favour (repeatable).")
@click.option("--diarize/--no-diarize", default=None, help="Label speakers.")
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(OUTPUT_FORMATS),
    help="Output format (repeatable; default: the inbox profile's outputs).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Probe the files and print what each would cost; call nothing, create no jobs.",
)
@json_option
@click.pass_obj
def process(
    app: App,
    files: tuple[Path, ...],
    out_dir: Path | None,
    language: str | None,
    context_bias: tuple[str, ...],
    diarize: bool | None,
    formats: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Transcribe FILES now; the originals stay where they are. Exits 1 if any failed."""

    from voxbatch.cli.progress import StderrReporter
    from voxbatch.errors import display_path
    from voxbatch.process import ProcessRun, run_interruptibly
    from voxbatch.stages.pipeline import Pipeline

    settings = app.settings
    if not dry_run:
        settings.api_key()  # no key: say so once, before any work (exit 2)
    changes: dict[str, Any] = {"shared": False}  # results for whoever runs it: private
    if language:
        changes["language"] = language
    if context_bias:
        changes["context_bias"] = context_bias
    if diarize is not None:
        changes["diarize"] = diarize
    if formats:
        changes["outputs"] = formats
    try:
        profile = settings.inbox[0].model_validate({**settings.inbox[0].model_dump(), **changes})
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    target = out_dir if out_dir is not None else settings.folder("outbox")
    # Files named on the command line were chosen by the user: follow their symlinks.
    files = tuple(p.resolve() if p.is_symlink() else p for p in files)
    if dry_run:
        _print_estimates(settings, profile, files, as_json)
        return
    reporter = StderrReporter(len(files))
    run = ProcessRun(Pipeline.open(settings, app.open_db(create=True), reporter=reporter), reporter)
    outcomes = run_interruptibly(run.process_paths(list(files), profile=profile, out_dir=target))
    rows = [
        {
            "file": display_path(o.path),
            "job_id": o.job_id,
            "state": o.state,
            "duplicate_of": o.duplicate_of,
            "audio_seconds": o.audio_seconds,
            "language": o.language,
            "cost_usd": o.cost_usd,
            "outputs": [display_path(p.absolute()) for p in o.outputs],
            "error": o.error,
        }
        for o in outcomes
    ]
    if as_json:
        emit_json(rows)
    else:
        click.echo(table(rows, ["job_id", "state", "file", "audio_seconds", "cost_usd", "error"]))
        written = [(o.job_id, p) for o in outcomes for p in o.outputs]
        if written:
            click.echo("\noutputs:")
            for job_id, path in written:
                click.echo(f"  {job_id:<6}  {display_path(path.absolute())}")
    if not all(o.ok for o in outcomes):
        sys.exit(EXIT_FAILED)


@click.command()
@click.option("--once", is_flag=True, help="Process what is in the inboxes now, then exit.")
@click.pass_obj
def run(app: App, once: bool) -> None:
    """The daemon: watch the inboxes and process what arrives, until SIGTERM.

    SIGHUP reloads the configuration (inboxes, profiles, caps). Exits 3 when it cannot
    start; with --once, exits 1 if any file failed or a job waits for a retry round.
    """
    import asyncio

    from voxbatch.config import load_settings
    from voxbatch.daemon.runner import Daemon

    def reread() -> Settings:  # SIGHUP: the same file, environment and flags as at start
        return load_settings(config_file=app.config_file, overrides=app.overrides)

    try:
        daemon = Daemon.open(app.settings, app.open_db(create=True), once=once, loader=reread)
    except VoxbatchError as exc:
        fail(exc.message, hint=exc.hint, code=EXIT_CANNOT_START)
    sys.exit(asyncio.run(daemon.run()))


def _print_estimates(
    settings: Settings, profile: InboxProfile, files: tuple[Path, ...], as_json: bool
) -> None:
    import asyncio

    from voxbatch.accounting.prices import format_usd
    from voxbatch.errors import display_path
    from voxbatch.media.ffmpeg import find_ffmpeg
    from voxbatch.stages.estimate import estimate_files

    found = asyncio.run(
        estimate_files(settings, profile, files, ffmpeg=find_ffmpeg(settings.ffmpeg))
    )
    rows = [
        {
            "file": display_path(f.path),
            "audio_seconds": f.audio_seconds,
            "estimated_usd": f.estimated_usd,
            "error": f.error,
        }
        for f in found
    ]
    total = sum((f.estimated_usd or Decimal(0) for f in found), Decimal(0))
    report = {
        "files": rows,
        "total_usd": total,
        "summary": profile.summary,
        "prices_effective": settings.prices.effective,
    }
    if as_json:
        emit_json(report)
        return
    click.echo(table(rows, ["file", "audio_seconds", "estimated_usd", "error"]))
    what = "transcription, summary and speech" if profile.summary else "transcription"
    click.echo(
        f"\ntotal: {format_usd(total)} estimated for {what} "
        f"(prices effective {settings.prices.effective}); nothing was called"
    )
