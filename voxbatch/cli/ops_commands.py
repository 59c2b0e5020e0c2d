"""Commands for operating the daemon: status, why, tail, retry, doctor."""

from __future__ import annotations

import sys
import time
from datetime import datetime

import click

from voxbatch.cli.app import EXIT_FAILED, App, json_option
from voxbatch.cli.params import JOB
from voxbatch.cli.render import OutputMode, emit, emit_json, rows_output, table, utc_text
from voxbatch.errors import VoxbatchError


@click.command()
@json_option
@click.pass_obj
def status(app: App, as_json: bool) -> None:
    """Queue depth, jobs in progress and waiting, failures, spend, and the provider's state."""
    from voxbatch.accounting.prices import format_usd
    from voxbatch.ops import status as ops_status

    with app.db.read() as session:
        data = ops_status.status_report(session, app.settings)
    if as_json:
        emit_json(data)
        return
    click.echo(f"queued:        {data['queued']} ({data['runnable']} runnable now)")
    click.echo(f"in progress:   {len(data['in_progress'])}")
    click.echo(f"done:          {data['done']}")
    click.echo(f"failed:        {data['failed']}")
    click.echo(f"needs review:  {data['needs_review']}")
    if data["oldest_waiting"] is not None:
        click.echo(f"oldest queued: {ops_status.age(data['oldest_waiting'])} ago")
    caps = data["budget"]
    for period, key in (("today", "daily_cap_usd"), ("month", "monthly_cap_usd")):
        cap = f" of {format_usd(caps[key])} cap" if caps[key] else ""
        click.echo(f"spent {period + ':':<8}{format_usd(data[f'spend_{period}_usd'])}{cap}")
    if caps["waiting_for_budget"]:
        click.echo(f"over budget:   {caps['waiting_for_budget']} job(s) wait for the spend cap")
    click.echo(f"provider:      {data['provider']}")
    click.echo(f"store:         {data['store']}")
    if data["in_progress"]:
        click.echo("\nIn progress:")
        click.echo(table(data["in_progress"], ["id", "state", "stage", "file"]))
    if data["waiting"]:
        click.echo("\nWaiting:")
        click.echo(table(data["waiting"], ["id", "file", "until", "reason"]))


@click.command()
@click.argument("path")
@json_option
@click.pass_obj
def why(app: App, path: str, as_json: bool) -> None:
    """Everything voxbatch decided about the file at PATH (or with that name)."""
    from voxbatch.ops import status as ops_status

    with app.db.read() as session:
        story = ops_status.why(session, path)
        jobs = [
            {
                "id": j.id,
                "state": j.state,
                "file": j.source_name,
                "now_at": ops_status.original_now(j),
                "duplicate_of": j.duplicate_of,
                "error": j.error_message,
                "waiting": j.wait_reason if j.state == "queued" else None,
            }
            for j in story.jobs
        ]
        events = [
            {"at": e.at, "job_id": e.job_id, "path": e.path, "kind": e.kind, "detail": e.detail}
            for e in story.events
        ]
    if as_json:
        emit_json({"path": path, "jobs": jobs, "events": events})
        return
    if not jobs and not events:
        click.echo(f"voxbatch has no record of {path}", err=True)
        sys.exit(EXIT_FAILED)
    for job in jobs:
        line = f"job {job['id']}: {job['state']} — {job['file']} is at {job['now_at']}"
        click.echo(line)
        for key in ("duplicate_of", "waiting", "error"):
            if job[key]:
                click.echo(f"  {key.replace('_', ' ')}: {job[key]}")
    click.echo("")
    for ev in events:
        who = f"job {ev['job_id']}" if ev["job_id"] else (ev["path"] or "")
        at = ev["at"]
        assert isinstance(at, datetime)
        click.echo(f"{utc_text(at)} UTC  {who:<8} {ev['kind']:<14} {ev['detail']}")


@click.command()
@click.argument("job", type=JOB)
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job ends.")
@click.option("--interval", type=float, default=0.5, hidden=True)
@click.pass_obj
def tail(app: App, job: str, follow: bool, interval: float) -> None:
    """The partial transcript of JOB while it is streaming (the final one once done)."""
    from voxbatch.store import jobs as store_jobs
    from voxbatch.store import parts, transcripts
    from voxbatch.store.models import TERMINAL_STATES

    shown = 0
    announced = ""
    while True:
        with app.db.read() as session:
            found = store_jobs.resolve_job(session, job)
            transcript = transcripts.transcript_for(session, found)
            assert found.id is not None
            heard = None if transcript is not None else parts.heard_so_far(session, found.id)
            if transcript is not None:
                text = transcript.text
            else:
                text = heard.text if heard is not None else (found.partial_text or "")
            state, reason = found.state, found.wait_reason
            if heard is not None and state == "streaming":
                state = f"streaming: {heard.done} of {heard.parts} parts done"
            ended = transcript is not None or found.state in TERMINAL_STATES
        if len(text) > shown:
            click.echo(text[shown:], nl=False)
            shown = len(text)
        elif len(text) < shown:  # a new attempt started over
            click.echo(f"\n[attempt restarted]\n{text}", nl=False)
            shown = len(text)
        note = f"[{state}{': ' + reason if reason and state == 'queued' else ''}]"
        if note != announced and not ended:
            click.echo(note, err=True)
            announced = note
        if ended or not follow:
            break
        time.sleep(interval)
    click.echo("")
    if found.state == "failed":
        click.echo(f"[failed: {found.error_message}]", err=True)


@click.command()
@click.argument("jobs", nargs=-1, type=JOB)
@click.option("--failed", "all_failed", is_flag=True, help="Every failed job.")
@click.pass_obj
def retry(app: App, jobs: tuple[str, ...], all_failed: bool) -> None:
    """Queue failed or needs-review JOBs again (their originals go back to work/)."""
    from voxbatch.stages import retry as stages_retry
    from voxbatch.store import jobs as store_jobs

    if not jobs and not all_failed:
        raise click.UsageError("name at least one JOB, or use --failed")
    with app.db.read() as session:
        ids = [store_jobs.resolve_job(session, j).id for j in jobs]
        if all_failed:
            ids += stages_retry.failed_ids(session)
    problems = queued = 0
    for job_id in dict.fromkeys(i for i in ids if i is not None):
        try:
            click.echo(stages_retry.retry(app.db, app.settings, job_id))
            queued += 1
        except VoxbatchError as exc:
            problems += 1
            click.echo(f"error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
    if queued:
        click.echo("a running `voxbatch run` picks them up; or run `voxbatch run --once`", err=True)
    elif all_failed and not problems:
        click.echo("no failed jobs to retry", err=True)
    if problems:
        sys.exit(EXIT_FAILED)


@click.command()
@rows_output
@click.pass_obj
def doctor(app: App, mode: OutputMode) -> None:
    """Check ffmpeg, the key, a real API handshake, the database and the folders.

    Exits 1 when a check fails; warnings (such as daemon folders a `process`-only
    user does not need) are shown but do not fail."""
    from voxbatch.cli.doctor import run_checks

    checks = run_checks(app.settings)
    rows = [
        {"check": c.name, "ok": c.ok, "level": c.level, "detail": c.detail, "hint": c.hint or None}
        for c in checks
    ]
    if mode is not OutputMode.TABLE:
        emit(rows, [], mode=mode)
    else:
        for c in checks:
            click.echo(f"{c.level.label}  {c.name:<14} {c.detail}")
            if c.hint:
                click.echo(f"{'':20}hint: {c.hint}")
    if not all(c.ok for c in checks):
        sys.exit(EXIT_FAILED)
