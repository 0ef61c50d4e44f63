"""The cash family's dashboard section (``token``): supply, pause, wallets by kind and custody."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from services.common.models import Wallet
from services.common.panels import PanelView


def section(view: PanelView) -> dict[str, Any]:
    """The token's supply and pause from the chain (kept until the token emits), the wallets from
    the database (read each poll: registering a wallet writes a row before its event is indexed)."""
    ctx = view.ctx
    with ctx.db.session() as s:
        kinds = dict(s.execute(select(Wallet.kind, func.count()).group_by(Wallet.kind)).all())
        custodial = s.scalar(select(func.count()).select_from(Wallet).where(Wallet.custody == "custodial"))
    supply, paused = view.memo(lambda: (ctx.cash.total_supply(), ctx.cash.paused()))
    return {
        "supply_fen": supply,
        "paused": paused,
        "wallets": sum(int(v) for v in kinds.values()),
        "wallets_by_kind": {str(k): int(v) for k, v in sorted(kinds.items())},
        "custodial_wallets": int(custodial or 0),
    }
