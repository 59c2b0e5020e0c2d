"""Plain-data views of jobs and costs that the CLI prints as tables or JSON."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from voxbatch import store
from voxbatch.models import ApiCall, Job


def job_rows(session: Session, jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Listing rows; the costs of all the jobs come from one query."""
    costs = store.costs_by_job(session, [j.id for j in jobs if j.id is not None])
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
        "original_now": job.final_path or job.work_path,
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


def job_detail(session: Session, job: Job) -> dict[str, Any]:
    assert job.id is not None
    calls = store.calls_for(session, job.id)
    data = job_row(job, sum((c.cost_usd or Decimal(0) for c in calls), Decimal(0)))
    transcript = store.transcript_for(session, job)
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
                for s in store.segments_for(session, transcript.id)
            ],
        }
    data["api_calls"] = [call_row(c) for c in calls]
    data["history"] = [
        {"at": e.at, "kind": e.kind, "detail": e.detail} for e in store.events_for(session, job.id)
    ]
    return data


def costs_report(session: Session, *, since: datetime | None = None) -> dict[str, Any]:
    """Totals by model and kind, summed exactly from the api_call rows."""
    groups: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {
            "calls": 0,
            "failed_calls": 0,
            "estimated_calls": 0,
            "audio_seconds": 0.0,
            "input_tokens": 0,
            "output_tokens": 0,
            "characters": 0,
            "cost_usd": Decimal(0),
        }
    )
    total = Decimal(0)
    for call in store.all_calls(session, since):
        group = groups[(call.model, call.kind)]
        group["calls"] += 1
        group["failed_calls"] += call.outcome != "ok"
        group["estimated_calls"] += bool(call.estimated)
        group["audio_seconds"] += call.audio_seconds or 0
        group["input_tokens"] += call.input_tokens or 0
        group["output_tokens"] += call.output_tokens or 0
        group["characters"] += call.characters or 0
        group["cost_usd"] += call.cost_usd or Decimal(0)
        total += call.cost_usd or Decimal(0)
    rows = [{"model": m, "kind": k, **v} for (m, k), v in sorted(groups.items())]
    return {"since": since, "total_usd": total, "rows": rows}
