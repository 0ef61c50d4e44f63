"""The collective family's dashboard section: counts, the fund's balance and the latest
collectives with their budget lines."""

from __future__ import annotations

from typing import Any

from services.common.panels import PanelView

COLLECTIVES = 10


def _build(view: PanelView) -> dict[str, Any]:
    client = view.ctx.collective
    counts = client.counts()
    n = counts["collectives"]
    items = []
    for cid in range(n, max(0, n - COLLECTIVES), -1):
        c = client.collective(cid)
        lines = [
            {
                "name": bytes(ln.name).rstrip(b"\0").decode("utf-8", errors="replace"),
                "budget_fen": ln.budget,
                "spent_fen": ln.spent,
                "remaining_fen": ln.remaining,
            }
            for ln in client.lines(cid)
        ]
        items.append(
            {
                "id": cid,
                "year": c.year,
                "frozen": c.frozen,
                "balance_fen": c.balance,
                "income_fen": c.total_income,
                "paid_fen": c.total_paid,
                "lines": lines,
            }
        )
    return {**counts, "balance_fen": client.total_balance(), "latest": items}


def section(view: PanelView) -> dict[str, Any]:
    return view.memo(lambda: _build(view))
