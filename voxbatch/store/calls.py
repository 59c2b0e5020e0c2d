"""The paid-call ledger's rows and the estimates made before a job started."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlmodel import Session, col, select

from voxbatch.store.models import (
    ApiCall,
    CostEstimate,
    utcnow,
)


def start_call(session: Session, *, job_id: int | None, kind: str, model: str) -> ApiCall:
    """Committed before any money can be spent, so a crash never hides a paid attempt."""
    call = ApiCall(job_id=job_id, kind=kind, model=model, outcome="started")
    session.add(call)
    session.flush()
    return call


def finish_call(
    session: Session,
    call_id: int,
    *,
    outcome: str,
    cost_usd: Decimal,
    price_basis: str,
    estimated: bool,
    audio_seconds: float | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    characters: int | None = None,
    request_id: str | None = None,
    error_detail: str | None = None,
) -> ApiCall:
    call = session.get_one(ApiCall, call_id)
    call.outcome = outcome
    call.finished_at = utcnow()
    call.cost_usd = cost_usd
    call.price_basis = price_basis
    call.estimated = estimated
    call.audio_seconds = audio_seconds
    call.input_tokens = input_tokens
    call.output_tokens = output_tokens
    call.characters = characters
    call.request_id = request_id or call.request_id
    call.error_detail = error_detail
    session.add(call)
    return call


def calls_for(session: Session, job_id: int) -> list[ApiCall]:
    return list(
        session.exec(
            select(ApiCall).where(ApiCall.job_id == job_id).order_by(col(ApiCall.id))
        ).all()
    )


def job_cost(session: Session, job_id: int) -> Decimal:
    return costs_by_job(session, [job_id])[job_id]


def costs_by_job(session: Session, job_ids: Sequence[int]) -> dict[int, Decimal]:
    """What each job's calls cost, in one query (money is exact text: summed here, not in SQL)."""
    totals = {job_id: Decimal(0) for job_id in job_ids}
    rows = session.exec(
        select(col(ApiCall.job_id), col(ApiCall.cost_usd)).where(col(ApiCall.job_id).in_(job_ids))
    ).all()
    for job_id, cost in rows:
        if job_id is not None and cost is not None:
            totals[job_id] += cost
    return totals


def all_calls(session: Session, since: datetime | None = None) -> list[ApiCall]:
    query = select(ApiCall).order_by(col(ApiCall.id))
    if since:
        query = query.where(col(ApiCall.started_at) >= since)
    return list(session.exec(query).all())


def record_estimate(
    session: Session,
    job_id: int,
    estimated_usd: Decimal,
    *,
    audio_seconds: float | None,
    basis: str = "",
) -> None:
    """What the job was expected to cost when it was let start (kept: the first one)."""
    if session.get(CostEstimate, job_id) is None:
        session.add(
            CostEstimate(
                job_id=job_id,
                estimated_usd=estimated_usd,
                audio_seconds=audio_seconds,
                basis=basis,
            )
        )


def estimate_for(session: Session, job_id: int) -> CostEstimate | None:
    return session.get(CostEstimate, job_id)


def provisional_cost(
    session: Session, call_id: int, cost_usd: Decimal, *, audio_seconds: float
) -> None:
    """What an open call has spent so far (estimated), so that the caps count it while it runs;
    its outcome stays `started` and closing it overwrites this."""
    call = session.get_one(ApiCall, call_id)
    call.cost_usd = cost_usd
    call.estimated = True
    call.audio_seconds = audio_seconds
    session.add(call)


def drop_estimate(session: Session, job_id: int) -> None:
    """Forget the job's estimate: it proved wrong, and the job is estimated again when it is
    let start again."""
    estimate = session.get(CostEstimate, job_id)
    if estimate is not None:
        session.delete(estimate)


def costs_since(session: Session, since_by_job: dict[int, datetime]) -> dict[int, Decimal]:
    """What each job's calls started at or after its own time cost (for estimates made anew)."""
    totals = {job_id: Decimal(0) for job_id in since_by_job}
    rows = session.exec(
        select(col(ApiCall.job_id), col(ApiCall.cost_usd), col(ApiCall.started_at)).where(
            col(ApiCall.job_id).in_(list(since_by_job))
        )
    ).all()
    for job_id, cost, started in rows:
        if job_id is not None and cost is not None and started >= since_by_job[job_id]:
            totals[job_id] += cost
    return totals
