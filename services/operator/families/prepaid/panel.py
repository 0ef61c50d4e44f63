"""The prepaid family's dashboard section: the escrow's totals and balance (its counts of packages
and merchants come from the registry's panel)."""

from __future__ import annotations

from typing import Any

from services.common.panels import PanelView


def section(view: PanelView) -> dict[str, Any]:
    ctx = view.ctx

    def build() -> dict[str, Any]:
        t = ctx.prepaid.totals()
        return {
            "deposited_fen": t["deposited"],
            "released_fen": t["released"],
            "refunded_fen": t["refunded"],
            "held_fen": t["held"],
            "escrow_balance_fen": ctx.cash.balance_of(ctx.prepaid.escrow.address),
        }

    return view.memo(build)
