"""Plain-data views of jobs and costs that the CLI prints as tables or JSON."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from voxbatch.ops.status import original_now
from voxbatch.store import calls as store_calls
from voxbatch.store import jobs as store_jobs
from voxbatch.store import outputs, parts, summaries, transcripts
from voxbatch.store.models import TERMINAL_STATES, ApiCall, CostEstimate, Job, Summary


def job_rows(session: Session, jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Listing rows; the costs of all the jobs come from one query."""
    costs = store_calls.costs_by_job(session, [j.id for j in jobs if j.id is not None])
    return [job_row(job, costs.get(job.id or 0, Decimal(0))) for job in jobs]


def job_row(job: Job, cost_usd: Decimal) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state,
        "file": job.source_name,
        "path": job.source_path,
        "content_sha256": job.content_sha256,
        "duplicate_of": job.duplicate_of,
        "audio_seconds": job.audio_seconds,
        "language": job.language,
        "attempts": job.attempts,
        "cost_usd": cost_usd,
        "error": job.error_message,
        "waiting": job.wait_reason if job.state == "queued" else None,
        "not_before": job.not_before,
        "requeues": job.requeues,
        "original_now": original_now(job),
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }


def call_row(call: ApiCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "job_id": call.job_id,
        "kind": call.kind,
        "model": call.model,
        "outcome": call.outcome,
        "started_at": call.started_at,
        "finished_at": call.finished_at,
        "audio_seconds": call.audio_seconds,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "characters": call.characters,
        "cost_usd": call.cost_usd,
        "estimated": call.estimated,
        "price_basis": call.price_basis,
        "request_id": call.request_id,
        "error": call.error_detail,
    }


def summary_row(summary: Summary) -> dict[str, Any]:
    speech = None
    if summary.speech_audio is not None:
        speech = {
            "format": summary.speech_format,
            "voice": summary.speech_voice,
            "model": summary.speech_model,
            "bytes": len(summary.speech_audio),
            "bought_by_job": summary.speech_job_id,
        }
    return {
        "id": summary.id,
        "bought_by_job": summary.job_id,
        "model": summary.model,
        "prompt": summary.prompt,
        "language": summary.language,
        "parts": summary.parts,
        "text": summary.text,
        "speech": speech,
        "created_at": summary.created_at,
    }


def job_detail(session: Session, job: Job) -> dict[str, Any]:
    assert job.id is not None
    calls = store_calls.calls_for(session, job.id)
    data = job_row(job, sum((c.cost_usd or Decimal(0) for c in calls), Decimal(0)))
    transcript = transcripts.transcript_for(session, job)
    data["transcript"] = None
    if transcript is not None and transcript.id is not None:
        data["transcript"] = {
            "id": transcript.id,
            "bought_by_job": transcript.job_id,
            "model": transcript.model,
            "language": transcript.language,
            "text": transcript.text,
            "segments": [
                {"start": s.start, "end": s.end, "text": s.text, "speaker": s.speaker}
                for s in transcripts.segments_for(session, transcript.id)
            ],
        }
    data["parts"] = [
        {
            "part": part.idx + 1,
            "start": part.start_s,
            "end": part.end_s,
            "state": part.state,
            "sessions": part.sessions,
            "last_call": part.call_id,
        }
        for part in parts.parts_for(session, job.id)
    ]
    data["summaries"] = [
        summary_row(x) for x in summaries.summaries_for(session, job.content_sha256)
    ]
    data["outputs"] = outputs.outputs_for(session, job.id)
    estimate = store_calls.estimate_for(session, job.id)
    data["estimated_cost_usd"] = estimate.estimated_usd if estimate is not None else None
    data["api_calls"] = [call_row(c) for c in calls]
    data["history"] = [
        {"at": e.at, "kind": e.kind, "detail": e.detail}
        for e in store_jobs.events_for(session, job.id)
    ]
    return data


COST_GROUPINGS = ("day", "month", "model", "kind", "inbox")


def _group_key(call: ApiCall, by: str | None, inboxes: dict[int, str | None]) -> tuple[str, ...]:
    if by == "day":
        return (call.started_at.astimezone(UTC).date().isoformat(),)
    if by == "month":
        return (call.started_at.astimezone(UTC).strftime("%Y-%m"),)
    if by == "model":
        return (call.model,)
    if by == "kind":
        return (call.kind,)
    if by == "inbox":
        inbox = inboxes.get(call.job_id) if call.job_id is not None else None
        return (inbox or "(none)",)
    return (call.model, call.kind)


def costs_report(
    session: Session, *, since: datetime | None = None, by: str | None = None
) -> dict[str, Any]:
    """Totals summed exactly from the api_call rows: by model and kind, or by `by`.

    Days and months are UTC. Each group splits its cost into measured (from usage the API
    reported) and estimated (attempts whose charge is uncertain). `estimates` compares the
    costs expected when jobs were let start with what those jobs cost.
    """
    if by is not None and by not in COST_GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}")
    keys = ("model", "kind") if by is None else (by,)
    groups: dict[tuple[str, ...], dict[str, Any]] = defaultdict(
        lambda: {
            "calls": 0,
            "failed_calls": 0,
            "estimated_calls": 0,
            "audio_seconds": 0.0,
            "input_tokens": 0,
            "output_tokens": 0,
            "characters": 0,
            "cost_usd": Decimal(0),
            "measured_usd": Decimal(0),
            "estimated_usd": Decimal(0),
        }
    )
    calls = store_calls.all_calls(session, since)
    inboxes: dict[int, str | None] = {}
    if by == "inbox":
        job_ids = {c.job_id for c in calls if c.job_id is not None}
        rows = session.exec(select(Job.id, Job.inbox).where(col(Job.id).in_(job_ids))).all()
        inboxes = {job_id: inbox for job_id, inbox in rows if job_id is not None}
    total = estimated_total = Decimal(0)
    for call in calls:
        group = groups[_group_key(call, by, inboxes)]
        cost = call.cost_usd or Decimal(0)
        group["calls"] += 1
        group["failed_calls"] += call.outcome != "ok"
        group["estimated_calls"] += bool(call.estimated)
        group["audio_seconds"] += call.audio_seconds or 0
        group["input_tokens"] += call.input_tokens or 0
        group["output_tokens"] += call.output_tokens or 0
        group["characters"] += call.characters or 0
        group["cost_usd"] += cost
        group["estimated_usd" if call.estimated else "measured_usd"] += cost
        total += cost
        estimated_total += cost if call.estimated else 0
    rows_out = [dict(zip(keys, key, strict=True)) | v for key, v in sorted(groups.items())]
    return {
        "by": by,
        "since": since,
        "total_usd": total,
        "measured_usd": total - estimated_total,
        "estimated_usd": estimated_total,
        "rows": rows_out,
        "estimates": estimate_comparison(session, since=since),
    }


def estimate_comparison(session: Session, *, since: datetime | None = None) -> dict[str, Any]:
    """Pre-job estimates against what the same jobs cost (finished jobs only).

    An estimate made without the audio's length (older versions assumed an hour) says
    nothing about estimating: it is left out.
    """
    query = (
        select(CostEstimate, Job)
        .join(Job, col(Job.id) == col(CostEstimate.job_id))
        .where(col(CostEstimate.audio_seconds).is_not(None))
    )
    if since:
        query = query.where(col(CostEstimate.created_at) >= since)
    pairs = [(e, j) for e, j in session.exec(query).all() if j.state in TERMINAL_STATES]
    actual = store_calls.costs_by_job(session, [e.job_id for e, _ in pairs])
    estimated = sum((e.estimated_usd for e, _ in pairs), Decimal(0))
    spent = sum(actual.values(), Decimal(0))
    return {
        "jobs": len(pairs),
        "estimated_usd": estimated,
        "actual_usd": spent,
        "difference_usd": spent - estimated,
        "jobs_over_estimate": sum(actual[e.job_id] > e.estimated_usd for e, _ in pairs),
    }
