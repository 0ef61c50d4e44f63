"""The paycodes family's dashboard section: codes by kind and confirmed payments (database only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from services.common.models import CodePayment, PaymentCode
from services.common.panels import PanelView


def section(view: PanelView) -> dict[str, Any]:
    with view.ctx.db.session() as s:
        kinds = dict(s.execute(select(PaymentCode.kind, func.count()).group_by(PaymentCode.kind)).all())
        paid = s.execute(
            select(func.count(), func.coalesce(func.sum(CodePayment.amount_fen), 0)).where(
                CodePayment.status == "confirmed"
            )
        ).one()
    return {
        "codes": sum(int(v) for v in kinds.values()),
        "static": int(kinds.get("static", 0)),
        "dynamic": int(kinds.get("dynamic", 0)),
        "payments": int(paid[0]),
        "paid_fen": int(paid[1]),
    }
