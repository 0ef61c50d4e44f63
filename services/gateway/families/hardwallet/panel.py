"""The hard-wallet family's dashboard section (shown by the operator's dashboard): the settlement
contract's totals and offline cap, and its latest batches (its event counts come from the
registry's panel). Reads the chain client and the event index only, no gateway state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import desc, select

from services.common.models import ChainEvent
from services.common.panels import PanelView


def _build(view: PanelView) -> dict[str, Any]:
    ctx = view.ctx
    totals = ctx.hardwallet.totals()
    limits = ctx.hardwallet.limits()
    with ctx.db.session() as s:
        rows = s.scalars(
            select(ChainEvent)
            .where(ChainEvent.contract == "HardWalletSettlement", ChainEvent.name == "BatchProcessed")
            .order_by(desc(ChainEvent.block_number), desc(ChainEvent.log_index))
            .limit(5)
        ).all()
    return {
        **{f"{k}_fen": int(v) for k, v in totals.items()},
        "offline_cap_fen": limits.offline_cap,
        "latest_batches": [
            {
                "block_number": r.block_number,
                "tx_hash": r.tx_hash,
                **{k: r.args.get(k) for k in ("size", "settled", "duplicates", "rejected", "shortfalls")},
            }
            for r in rows
        ],
    }


def section(view: PanelView) -> dict[str, Any]:
    return view.memo(lambda: _build(view))
