from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from services.common import webhooks
from services.common.deps import AuditorKey, CtxDep, IndexerDep
from services.common.models import ChainEvent
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
    format: Annotated[Literal["json", "html"], Query()] = "json",
) -> Any:
    """Replay every on-chain event since deployment against the operator's records: operations,
    the event index, each family's invariant, supply against balances. ``verdict`` is ``clean``
    or ``discrepancies`` (each listed). ``?format=html`` for a self-contained report."""
    await run_in_threadpool(indexer.catch_up)
    report = await run_in_threadpool(reconcile, ctx)
    await run_in_threadpool(webhooks.note_verdict, ctx.db, report.as_dict())
    if format == "html":
        return HTMLResponse(render_html(report))
    return report.as_dict()
