"""The disburse family's dashboard section: the contract's totals and the latest batches, each
with its on-chain figures (None while its creation is pending)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import desc, func, select

from services.common.context import ServiceContext
from services.common.panels import PanelView
from services.operator.families.disburse.models import Disbursement

BATCHES = 10


def _figures(ctx: ServiceContext, batch_ids: tuple[str, ...]) -> dict[str, Any]:
    """The contract's totals and the figures of ``batch_ids`` (None: not on chain yet)."""
    batches: dict[str, dict[str, int] | None] = {}
    for batch_id in batch_ids:
        try:
            c = ctx.disburse.batch(bytes.fromhex(batch_id[2:]))
            batches[batch_id] = {
                "funded_fen": c.funded,
                "paid_fen": c.paid,
                "exceptions_fen": c.exceptions,
                "reclaimed_fen": c.reclaimed,
                "outstanding_fen": c.outstanding,
            }
        except Exception:  # its creation is still pending
            batches[batch_id] = None
    return {"totals": ctx.disburse.totals(), "batches": batches}


def section(view: PanelView) -> dict[str, Any]:
    ctx = view.ctx
    with ctx.db.session() as s:
        count = s.scalar(select(func.count()).select_from(Disbursement)) or 0
        batches = s.scalars(
            select(Disbursement).order_by(desc(Disbursement.created_at), Disbursement.ref).limit(BATCHES)
        ).all()
    on_chain = tuple(b.batch_id for b in batches if b.status not in ("draft", "cancelled"))
    figures = view.memo(lambda: _figures(ctx, on_chain), on_chain)
    totals = figures["totals"]
    funded, paid, reclaimed = totals["funded"], totals["paid"], totals["reclaimed"]
    items = [
        {
            "reference": b.ref,
            "purpose": b.purpose,
            "mode": b.mode,
            "status": b.status,
            "total_fen": b.total_fen,
            "rows_total": b.rows_total,
            "rows_done": b.rows_done,
            "chain": figures["batches"].get(b.batch_id),
        }
        for b in batches
    ]
    return {
        "batches": int(count),
        "funded_fen": int(funded),
        "paid_fen": int(paid),
        "reclaimed_fen": int(reclaimed),
        "outstanding_fen": int(funded - paid - reclaimed),
        "latest": items,
    }
