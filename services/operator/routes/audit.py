from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from services.common import i18n, webhooks
from services.common.deps import AuditorKey, CtxDep, IndexerDep
from services.common.models import ChainEvent
from services.common.problems import Problem
from services.operator import reconcile_state
from services.operator.reconciliation import reconcile, render_html
from services.operator.schemas import EventOut, EventPage

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("/events")
def list_events(
    ctx: CtxDep,
    indexer: IndexerDep,
    _: AuditorKey,
    contract: Annotated[str | None, Query(max_length=64)] = None,
    name: Annotated[str | None, Query(max_length=64)] = None,
    tx_hash: Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{64}$")] = None,
    from_block: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    to_block: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventPage:
    """The indexed on-chain events, oldest first, filterable and paginated."""
    indexer.catch_up()  # answer with what the chain holds now, not as of the last poll
    query = select(ChainEvent)
    if contract:
        query = query.where(ChainEvent.contract == contract)
    if name:
        query = query.where(ChainEvent.name == name)
    if tx_hash:
        query = query.where(ChainEvent.tx_hash == tx_hash.lower())
    if from_block is not None:
        query = query.where(ChainEvent.block_number >= from_block)
    if to_block is not None:
        query = query.where(ChainEvent.block_number <= to_block)
    with ctx.db.session() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(
            query.order_by(ChainEvent.block_number, ChainEvent.log_index).offset(offset).limit(limit)
        ).all()
    items = [
        EventOut(
            block_number=r.block_number,
            log_index=r.log_index,
            tx_hash=r.tx_hash,
            contract=r.contract,
            name=r.name,
            args=r.args,
        )
        for r in rows
    ]
    return EventPage(items=items, total=total, offset=offset, limit=limit)


@router.get("/reconciliation", response_model=None, responses={200: {"content": {"text/html": {}}}})
async def reconciliation(
    ctx: CtxDep,
    indexer: IndexerDep,
    _: AuditorKey,
    request: Request,
    format: Annotated[Literal["json", "html"], Query()] = "json",
    full: Annotated[bool, Query()] = False,
    lang: Annotated[
        Literal["zh", "en"] | None, Query(description="the HTML's language (else Accept-Language)")
    ] = None,
) -> Any:
    """Check the chain's events since deployment against the operator's records: operations,
    the event index, each family's invariant, supply against balances, the money rules.
    ``verdict`` is ``clean`` or ``discrepancies`` (each listed). Incremental: the blocks up to the
    stored checkpoint are not read from the node again once the checkpoint proves it still holds
    (``mode``, ``resumed_from`` and ``notes`` say what was done); ``?full=true`` replays every
    block from the node, as an auditor would, with the same verdict. ``?format=html`` for a
    self-contained report, in zh-CN or English (``?lang=zh|en``, else ``Accept-Language``)."""
    await run_in_threadpool(indexer.catch_up)
    report = await run_in_threadpool(reconcile, ctx, full=full)
    await run_in_threadpool(webhooks.note_verdict, ctx.db, report.as_dict())
    if format == "html":
        chosen = i18n.page_language(lang, None, request.headers.get("accept-language"))
        return HTMLResponse(render_html(report, chosen), headers={"Content-Language": chosen})
    return report.as_dict()


@router.get("/reconciliation/latest")
def latest_reconciliation(ctx: CtxDep, _: AuditorKey) -> dict[str, Any]:
    """The verdict of the last reconciliation (a request, the command or the background refresh),
    from the database, without reading the chain: the report as it was, with ``checked_at`` and
    ``age_s`` (seconds since). 404 before the first one."""
    cp = reconcile_state.load(ctx.db)
    if cp is None:
        raise Problem(
            404,
            "no-reconciliation-yet",
            "No reconciliation has run yet",
            "ask GET /v1/audit/reconciliation, or set XCPAY_RECONCILIATION_REFRESH_S",
        )
    age = (datetime.now(UTC) - cp.checked_at).total_seconds()
    return {**cp.report, "checked_at": cp.checked_at.isoformat(), "age_s": round(max(age, 0.0), 3)}
