"""The disburse family's webhook events, written with the batch's own changes (the shared outbox
is services/common/webhooks.py; the event types are listed there)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.webhooks import emit
from services.operator.families.disburse.models import Disbursement, DisbursementRow


def _batch(row: Disbursement) -> dict[str, Any]:
    return {"ref": row.ref, "batch_id": row.batch_id, "payer": row.payer, "purpose": row.purpose}


def disbursement_finished(session: Session, row: Disbursement) -> None:
    """``row`` was just marked executed in ``session``."""
    statuses = session.scalars(select(DisbursementRow.status).where(DisbursementRow.ref == row.ref)).all()
    payload = {
        **_batch(row),
        "total_fen": row.total_fen,
        "rows_total": row.rows_total,
        "paid": sum(1 for s in statuses if s == "paid"),
        "exceptions": sum(1 for s in statuses if s == "exception"),
    }
    emit(session, "disbursement.finished", payload, [row.payer])


def disbursement_exceptions(session: Session, ref: str, indexes: Iterable[int]) -> None:
    """Rows ``indexes`` of batch ``ref`` are about to become payout exceptions in ``session``: the
    event names those that were not exceptions already (a chunk read again emits nothing new)."""
    wanted = sorted(set(indexes))
    if not wanted:
        return
    batch = session.get(Disbursement, ref)
    rows = session.scalars(
        select(DisbursementRow).where(
            DisbursementRow.ref == ref, DisbursementRow.idx.in_(wanted), DisbursementRow.status != "exception"
        )
    ).all()
    if batch is None or not rows:
        return
    payload = {
        **_batch(batch),
        "rows": [{"index": r.idx, "recipient": r.recipient, "amount_fen": r.amount_fen} for r in rows],
    }
    emit(session, "disbursement.exception", payload, [batch.payer])
