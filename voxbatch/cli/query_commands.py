"""Commands that read what voxbatch recorded: jobs, show, export, search, costs."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from voxbatch.cli.app import EXIT_USAGE, App, fail, json_option, parse_since
from voxbatch.cli.choices import COST_GROUPINGS, EXPORT_FORMATS, JOB_STATES
from voxbatch.cli.params import JOB
from voxbatch.cli.render import (
    OutputMode,
    emit,
    emit_json,
    rows_output,
    segment_line,
    table,
    utc_text,
)
from voxbatch.errors import VoxbatchError

if TYPE_CHECKING:
    from sqlmodel import Session

    from voxbatch.store.models import Job

JOB_COLUMNS = ["id", "state", "file", "audio_seconds", "language", "cost_usd", "created_at"]


@click.command()
@click.option(
    "--status",
    "state",
    type=click.Choice(JOB_STATES),
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
@rows_output
@click.pass_obj
def jobs(app: App, state: str | None, since: str | None, limit: int, mode: OutputMode) -> None:
    """List jobs, newest first."""
    from voxbatch.ops import reports
    from voxbatch.store import jobs as store_jobs

    with app.db.read() as session:
        found = store_jobs.list_jobs(session, state=state, since=parse_since(since), limit=limit)
        rows = reports.job_rows(session, found)
    emit(rows, JOB_COLUMNS, mode=mode)


@click.command()
@click.argument("job", type=JOB)
@json_option
@click.pass_obj
def show(app: App, job: str, as_json: bool) -> None:
    """Everything about one JOB (id or content-hash prefix)."""
    from voxbatch.accounting.prices import format_usd
    from voxbatch.ops import reports
    from voxbatch.store import jobs as store_jobs

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
            click.echo(f"{key + ':':<16}{_field(data[key])}")
    click.echo(f"{'cost:':<16}{format_usd(data['cost_usd'])}")
    if data["estimated_cost_usd"] is not None:
        click.echo(f"{'estimated:':<16}{format_usd(data['estimated_cost_usd'])}")
    for n, path in enumerate(data["outputs"]):
        missing = "" if Path(path).exists() else "  (no longer there)"
        click.echo(f"{'outputs:' if n == 0 else '':<16}{path}{missing}")
    if data["parts"]:
        click.echo(f"\nParts ({len(data['parts'])}, cut at silences, streamed in parallel):")
        click.echo(table(data["parts"], ["part", "start", "end", "state", "sessions", "last_call"]))
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
        click.echo(f"  {utc_text(ev['at'])} UTC  {ev['kind']:<16} {ev['detail']}")


def _field(value: object) -> str:
    return f"{utc_text(value)} UTC" if isinstance(value, datetime) else str(value)


# What `export -o FILE` writes when --format is not given, by FILE's extension.
_FORMAT_BY_EXTENSION = {
    **{fmt: fmt for fmt in EXPORT_FORMATS if fmt not in ("summary", "speech")},
    "md": "summary",
    **{ext: "speech" for ext in ("mp3", "wav", "flac", "opus", "pcm")},
}


def _export_format(fmt: str | None, output: Path | None) -> str:
    """--format wins; else -o FILE's extension says; else txt."""
    if fmt is not None:
        return fmt
    if output is None:
        return "txt"
    found = _FORMAT_BY_EXTENSION.get(output.suffix.lower().lstrip("."))
    if found is None:
        known = ", ".join(f".{ext}" for ext in _FORMAT_BY_EXTENSION)
        fail(
            f"cannot tell the format from {output.name!r}: give --format, or a file ending in "
            f"{known}",
            code=EXIT_USAGE,
        )
    return found


@click.command()
@click.argument("job", type=JOB)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    help="Format (default: from -o FILE's extension, else txt).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@click.pass_obj
def export(app: App, job: str, fmt: str | None, output: Path | None) -> None:
    """Print or save JOB's transcript as txt, srt, vtt, tsv or json, its written summary
    (summary: Markdown) or its spoken summary (speech: audio, to a file or a pipe)."""
    from voxbatch.documents.formats import render
    from voxbatch.ingest.folders import find_inbox, inboxes
    from voxbatch.stages.publish import atomic_write, atomic_write_bytes, cue_shape, document_for
    from voxbatch.store import jobs as store_jobs
    from voxbatch.store.models import JobState
    from voxbatch.store.transcripts import transcript_for

    fmt = _export_format(fmt, output)
    content: str | bytes
    with app.db.read() as session:
        found = store_jobs.resolve_job(session, job)
        if found.state == JobState.failed and transcript_for(session, found) is None:
            raise VoxbatchError(
                f"job {found.id} failed, so it has no transcript: {found.error_message}",
                hint=f"`voxbatch show {found.id}` has its story; `voxbatch retry {found.id}` "
                "tries it again once the cause is fixed",
            )
        if fmt in ("summary", "speech"):
            content = _summary_content(session, found, fmt)
        else:
            # Subtitles take the shape of the inbox the job came from.
            profile = find_inbox(inboxes(app.settings), found.inbox).profile
            content = render(document_for(session, found), fmt, cue_shape(profile))
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
    click.echo(f"wrote {output} ({fmt})", err=True)


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


@click.command()
@click.argument("query", nargs=-1, required=True)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@rows_output
@click.pass_obj
def search(app: App, query: tuple[str, ...], limit: int, mode: OutputMode) -> None:
    """Full-text search over transcripts and summaries, best matches first, with snippets."""
    from voxbatch.store.search import fts_query, search_summaries, search_transcripts

    if not " ".join(query).split():
        raise click.BadParameter("give at least one word to search for")
    match = fts_query(" ".join(query))
    with app.db.read() as session:
        found = [
            (h.rank, h.job_id, h.source_name, "transcript", h.snippet)
            for h in search_transcripts(session, match, limit=limit)
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
    if not rows and mode is OutputMode.TABLE:
        click.echo("no matches", err=True)  # once: no empty table beside it
        return
    emit(rows, ["job_id", "file", "in", "snippet"], mode=mode)


@click.command()
@click.option(
    "--by",
    type=click.Choice(COST_GROUPINGS),
    help="Group by UTC day, UTC month, model, kind (stt/chat/tts) or inbox "
    "(default: model and kind).",
)
@click.option("--since", help="Only calls since (ISO date or 7d, 12h, 30m).")
@rows_output
@click.pass_obj
def costs(app: App, by: str | None, since: str | None, mode: OutputMode) -> None:
    """What the API calls cost, from the recorded calls; estimates against actual costs.

    --json prints the whole report; --csv and --nl print its rows."""
    from voxbatch.accounting.prices import format_usd
    from voxbatch.ops import reports

    with app.db.read() as session:
        report = reports.costs_report(session, since=parse_since(since), by=by)
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
    if mode is OutputMode.JSON:
        emit_json(report)
        return
    if mode is not OutputMode.TABLE:
        emit(report["rows"], [*keys, *columns], mode=mode)
        return
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
