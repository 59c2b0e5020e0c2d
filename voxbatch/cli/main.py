"""The command line: parse, call the library, render. Data on stdout, progress on stderr.

Exit codes: 0 ok; 1 some work failed; 2 usage or configuration error; 3 the daemon cannot start.
"""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from sqlmodel import Session

from voxbatch.accounting.prices import format_usd
from voxbatch.cli.app import (
    EXIT_CANNOT_START,
    EXIT_FAILED,
    App,
    VoxbatchGroup,
    fail,
    json_option,
    parse_since,
)
from voxbatch.cli.render import emit, emit_json, segment_line, table
from voxbatch.config import OUTPUT_FORMATS, InboxProfile, Settings, masked
from voxbatch.errors import VoxbatchError
from voxbatch.ops import reports
from voxbatch.ops.reports import COST_GROUPINGS
from voxbatch.store import jobs as store_jobs
from voxbatch.store import search as store_search
from voxbatch.store.models import Job, JobState
from voxbatch.store.search import fts_query


@click.group(cls=VoxbatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML configuration file (else $VOXBATCH_CONFIG, $VOXBATCH_HOME/voxbatch.toml, "
    "/etc/voxbatch/voxbatch.toml).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="State folder (else $VOXBATCH_HOME, $STATE_DIRECTORY, ~/.local/share/voxbatch).",
)
@click.version_option(package_name="voxbatch")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, home: Path | None) -> None:
    """voxbatch: batch and watch-folder transcription with Mistral Voxtral."""
    overrides: dict[str, Any] = {}
    if home is not None:
        overrides["home"] = str(home)
    ctx.obj = App(config_file=config_file, overrides=overrides)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
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
    from voxbatch.stages.pipeline import Pipeline

    settings = app.settings
    if not dry_run:
        settings.api_key()  # no key: say so once, before any work (exit 2)
    changes: dict[str, Any] = {}
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
    pipeline = Pipeline(settings, app.db, reporter=StderrReporter(len(files)))
    outcomes = asyncio.run(pipeline.process_paths(list(files), profile=profile, out_dir=target))
    rows = [
        {
            "file": display_path(o.path),
            "job_id": o.job_id,
            "state": o.state,
            "duplicate_of": o.duplicate_of,
            "audio_seconds": o.audio_seconds,
            "language": o.language,
            "cost_usd": o.cost_usd,
            "outputs": [str(p) for p in o.outputs],
            "error": o.error,
        }
        for o in outcomes
    ]
    if as_json:
        emit_json(rows)
    else:
        click.echo(table(rows, ["job_id", "state", "file", "audio_seconds", "cost_usd", "error"]))
    if not all(o.ok for o in outcomes):
        sys.exit(EXIT_FAILED)


@main.command()
@click.option("--once", is_flag=True, help="Process what is in the inboxes now, then exit.")
@click.pass_obj
def run(app: App, once: bool) -> None:
    """The daemon: watch the inboxes and process what arrives, until SIGTERM.

    Exits 3 when it cannot start; with --once, exits 1 if any file failed.
    """
    from voxbatch.daemon.runner import Daemon

    try:
        daemon = Daemon.open(app.settings, app.db, once=once)
    except VoxbatchError as exc:
        fail(exc.message, hint=exc.hint, code=EXIT_CANNOT_START)
    sys.exit(asyncio.run(daemon.run()))


def _print_estimates(
    settings: Settings, profile: InboxProfile, files: tuple[Path, ...], as_json: bool
) -> None:
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


JOB_COLUMNS = ["id", "state", "file", "audio_seconds", "language", "cost_usd", "created_at"]


@main.command()
@click.option(
    "--status",
    "state",
    type=click.Choice([s.value for s in JobState]),
    help="Only jobs in this state.",
)
@click.option("--since", help="Only jobs created since (ISO date or 7d, 12h, 30m).")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="At most this many, newest first (0 = all).",
)
@json_option
@click.pass_obj
def jobs(app: App, state: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first."""
    with app.db.read() as session:
        found = store_jobs.list_jobs(session, state=state, since=parse_since(since), limit=limit)
        rows = reports.job_rows(session, found)
    emit(rows, JOB_COLUMNS, as_json=as_json)


@main.command()
@click.argument("job")
@json_option
@click.pass_obj
def show(app: App, job: str, as_json: bool) -> None:
    """Everything about one JOB (id or content-hash prefix)."""
    with app.db.read() as session:
        data = reports.job_detail(session, store_jobs.resolve_job(session, job))
    if as_json:
        emit_json(data)
        return
    for key in (
        "id",
        "state",
        "file",
        "path",
        "content_sha256",
        "duplicate_of",
        "audio_seconds",
        "language",
        "attempts",
        "requeues",
        "error",
        "waiting",
        "original_now",
        "created_at",
        "finished_at",
    ):
        if data[key] is not None and not (key == "requeues" and data[key] == 0):
            click.echo(f"{key + ':':<16}{data[key]}")
    click.echo(f"{'cost:':<16}{format_usd(data['cost_usd'])}")
    if data["estimated_cost_usd"] is not None:
        click.echo(f"{'estimated:':<16}{format_usd(data['estimated_cost_usd'])}")
    transcript = data["transcript"]
    if transcript:
        click.echo(f"\nTranscript ({transcript['model']}, {len(transcript['segments'])} segments):")
        click.echo(transcript["text"].strip())
        click.echo("\nSegments:")
        for seg in transcript["segments"]:
            click.echo("  " + segment_line(seg["start"], seg["end"], seg["text"], seg["speaker"]))
    for summary in data["summaries"]:
        speech = summary["speech"]
        spoken = (
            f", spoken: {speech['format']} {speech['bytes']} bytes, voice {speech['voice']}"
            if speech
            else ", not spoken yet"
        )
        click.echo(f"\nSummary ({summary['model']}, {summary['parts']} part(s){spoken}):")
        click.echo(summary["text"].strip())
    click.echo("\nAPI calls:")
    click.echo(
        table(
            data["api_calls"],
            ["id", "kind", "model", "outcome", "audio_seconds", "cost_usd", "estimated"],
        )
    )
    click.echo("\nHistory:")
    for ev in data["history"]:
        click.echo(f"  {ev['at']:%Y-%m-%d %H:%M:%S}  {ev['kind']:<16} {ev['detail']}")


EXPORT_FORMATS = (*OUTPUT_FORMATS, "summary", "speech")


@main.command()
@click.argument("job")
@click.option(
    "--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="txt", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@click.pass_obj
def export(app: App, job: str, fmt: str, output: Path | None) -> None:
    """Print or save JOB's transcript as txt, srt, vtt or json, its written summary
    (summary: Markdown) or its spoken summary (speech: audio, to a file or a pipe)."""
    from voxbatch.stages.publish import atomic_write, atomic_write_bytes, document_for, render

    content: str | bytes
    with app.db.read() as session:
        found = store_jobs.resolve_job(session, job)
        if fmt in ("summary", "speech"):
            content = _summary_content(session, found, fmt)
        else:
            content = render(document_for(session, found), fmt)
    if output is None:
        if isinstance(content, bytes):
            if sys.stdout.isatty():
                fail("the spoken summary is audio: give -o FILE or redirect stdout", code=2)
            sys.stdout.flush()
            sys.stdout.buffer.write(content)
            sys.stdout.buffer.flush()
        else:
            click.echo(content, nl=False)
        return
    try:
        if isinstance(content, bytes):
            atomic_write_bytes(output, content)
        else:
            atomic_write(output, content)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    click.echo(f"wrote {output}", err=True)


def _summary_content(session: Session, job: Job, fmt: str) -> str | bytes:
    """The newest summary of the job's audio, as Markdown or as its speech audio."""
    from voxbatch.stages.summary import summary_markdown
    from voxbatch.store.summaries import summaries_for

    summaries = summaries_for(session, job.content_sha256)
    if not summaries:
        raise VoxbatchError(
            f"job {job.id} has no summary",
            hint="summaries are made for inboxes with summary = true",
        )
    latest = summaries[-1]
    if fmt == "summary":
        return summary_markdown(job.source_name, latest.text)
    spoken = [s.speech_audio for s in summaries if s.speech_audio is not None]
    if not spoken:
        raise VoxbatchError(
            f"job {job.id} has no spoken summary yet", hint="`voxbatch retry` resumes it"
        )
    return spoken[-1]


@main.command()
@click.argument("query", nargs=-1, required=True)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@click.pass_obj
def search(app: App, query: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Full-text search over transcripts and summaries, best matches first, with snippets."""
    from voxbatch.store.search import search_summaries

    if not " ".join(query).split():
        raise click.BadParameter("give at least one word to search for")
    match = fts_query(" ".join(query))
    with app.db.read() as session:
        found = [
            (h.rank, h.job_id, h.source_name, "transcript", h.snippet)
            for h in store_search.search_transcripts(session, match, limit=limit)
        ]
        found += [
            (h.rank, h.job_id, h.source_name, "summary", h.snippet)
            for h in search_summaries(session, match, limit=limit)
        ]
    hits = sorted(found, key=lambda hit: hit[0])[:limit]  # bm25: lower is better
    rows = [
        {"job_id": job_id, "file": name, "in": where, "snippet": snippet}
        for _, job_id, name, where, snippet in hits
    ]
    emit(rows, ["job_id", "file", "in", "snippet"], as_json=as_json)
    if not hits:
        click.echo("no matches", err=True)


@main.command()
@click.option(
    "--by",
    type=click.Choice(COST_GROUPINGS),
    help="Group by UTC day, UTC month, model, kind (stt/chat/tts) or inbox "
    "(default: model and kind).",
)
@click.option("--since", help="Only calls since (ISO date or 7d, 12h, 30m).")
@json_option
@click.pass_obj
def costs(app: App, by: str | None, since: str | None, as_json: bool) -> None:
    """What the API calls cost, from the recorded calls; estimates against actual costs."""
    with app.db.read() as session:
        report = reports.costs_report(session, since=parse_since(since), by=by)
    if as_json:
        emit_json(report)
        return
    keys = ["model", "kind"] if by is None else [by]
    columns = [
        "calls",
        "failed_calls",
        "audio_seconds",
        "input_tokens",
        "output_tokens",
        "characters",
        "cost_usd",
        "estimated_usd",
    ]
    click.echo(table(report["rows"], [*keys, *columns]))
    click.echo(
        f"\ntotal: {format_usd(report['total_usd'])} "
        f"({format_usd(report['estimated_usd'])} of it estimated: attempts whose charge "
        "is uncertain)"
    )
    est = report["estimates"]
    if est["jobs"]:
        click.echo(
            f"pre-job estimates: {est['jobs']} finished jobs estimated at "
            f"{format_usd(est['estimated_usd'])} cost {format_usd(est['actual_usd'])} "
            f"({est['jobs_over_estimate']} above their estimate)"
        )


@main.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@json_option
@click.pass_obj
def config_show(app: App, as_json: bool) -> None:
    """The effective configuration (defaults < file < environment < flags), key masked."""
    data = masked(app.settings)
    if as_json:
        emit_json(data)
        return
    for line in _flatten(data):
        click.echo(line)


def _flatten(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, dict):
        lines = []
        for key, value in data.items():
            lines += _flatten(value, f"{prefix}.{key}" if prefix else key)
        return lines
    if isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
        lines = []
        for i, item in enumerate(data):
            lines += _flatten(item, f"{prefix}[{i}]")
        return lines
    return [f"{prefix} = {data!r}"]


@main.command()
@click.option(
    "--samples",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of clips to process (default: the bundled sample_audio/).",
)
@click.option("--keep", is_flag=True, help="Keep the temporary home and print where it is.")
def demo(samples: Path | None, keep: bool) -> None:
    """Try the whole pipeline offline: built-in emulator, sample clips, temporary home."""
    from voxbatch.cli.demo import run_demo

    sys.exit(run_demo(samples, keep=keep))


def _register_emulator() -> None:
    from voxbatch.emulator.cli import emulator

    main.add_command(emulator)


_register_emulator()

from voxbatch.cli import ops_commands  # noqa: E402

for _command in (
    ops_commands.status,
    ops_commands.why,
    ops_commands.tail,
    ops_commands.retry,
    ops_commands.doctor,
):
    main.add_command(_command)
