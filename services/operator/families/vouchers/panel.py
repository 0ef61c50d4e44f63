"""The vouchers family's dashboard section: the latest programmes, what the contract holds, and
spending by merchant category (``spent_by_category_fen``, which the dashboard's chart reads)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from services.common.panels import PanelView

PROGRAMMES = 20


def _build(view: PanelView) -> dict[str, Any]:
    client = view.ctx.vouchers
    count = int(client.tx.call(client.contract.functions.programmeCount()))
    by_category: Counter[int] = Counter()
    items = []
    for pid in range(count, max(0, count - PROGRAMMES), -1):
        p = client.programme(pid)
        t = client.totals(pid)
        by_category.update(t.by_category)
        items.append(
            {
                "id": pid,
                "name": bytes(p.name).rstrip(b"\0").decode("utf-8", errors="replace"),
                "mode": p.mode.name.lower(),
                "expires_at": p.expires_at,
                "holders": p.holders,
                "budget_fen": t.budget,
                "granted_fen": t.granted,
                "spent_fen": t.spent,
                "returned_fen": t.returned,
                "outstanding_fen": t.outstanding,
                "ungranted_fen": t.ungranted,
            }
        )
    return {
        "programmes": count,
        "held_fen": client.total_held(),
        "spent_by_category_fen": {str(k): v for k, v in sorted(by_category.items())},
        "latest": items,
    }


def section(view: PanelView) -> dict[str, Any]:
    return view.memo(lambda: _build(view))
