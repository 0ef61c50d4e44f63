"""Offline payments: a terminal uploads a batch of card-signed payments; each gets its outcome.

The gateway checks only what binds the upload to its terminal (every payment is to the terminal's
merchant) and sends one ``settle`` transaction signed by the operator's key (anyone may settle;
a payment pays only the merchant its card signed for, once). Everything else is the contract's
to judge, and its outcome events become the answer, one per payment in upload order: ``settled``,
``duplicate`` (this card and counter were processed already: the same batch again, the same
payment in another batch or from another terminal, a reused counter), ``rejected`` with a reason
(forged signature or one for another chain or contract, over the offline cap, lost card, grace
period over...) or ``shortfall`` (a cloned card signed beyond its reserve: the covered part was
paid, the card is blocked).

Uploading is idempotent twice over: the same Idempotency-Key and body replay the stored answer
(the operation backbone), and the same batch from the same terminal under a new key gets the
answer of its confirmed earlier upload, without a new transaction.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from sqlalchemy import select, update

from chain.clients.hardwallet import RETRYABLE_REASONS, RejectReason
from services.common.audit import record
from services.common.context import ServiceContext
from services.common.deps import ApiKeyDep, CtxDep, IdempotencyKey, OpsDep
from services.common.keys import Role
from services.common.models import GatewayCard, GatewayTerminal, OfflineUpload, Operation
from services.common.operations import Call, builder, perform
from services.common.problems import Problem
from services.gateway.routes.terminals import TerminalDep, TerminalKey
from services.gateway.schemas import PaymentResult, UploadIn, UploadOut

router = APIRouter(prefix="/v1/offline-payments", tags=["offline payments"])

OUTCOME_EVENTS = {
    "PaymentSettled": "settled",
    "PaymentDuplicate": "duplicate",
    "PaymentRejected": "rejected",
    "PaymentShortfall": "shortfall",
}
# RejectReason.OVER_OFFLINE_CAP -> "over-offline-cap"
REASONS = {int(r): r.name.lower().replace("_", "-") for r in RejectReason}
# The token refused a party: the event's detail is the token's error selector.
_TOKEN_REFUSALS = {REASONS[int(r)] for r in (*RETRYABLE_REASONS, RejectReason.PAYEE_NOT_MERCHANT)}
_RETRYABLE = {REASONS[int(r)] for r in RETRYABLE_REASONS}
_CONSUMED = ("settled", "shortfall", "duplicate")  # outcomes whose counter is used on chain


def batch_digest(payments: list[dict[str, Any]]) -> str:
    canonical = json.dumps(payments, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def results_of(op: Operation) -> list[dict[str, Any]]:
    """One result per uploaded payment, decoded from the settle receipt's outcome events."""
    assert op.result is not None
    out: list[dict[str, Any]] = []
    for e in op.result.get("events", []):
        outcome = OUTCOME_EVENTS.get(e["name"])
        if outcome is None:
            continue
        a = e["args"]
        paid = {"settled": a["amount"], "shortfall": a.get("covered", 0)}.get(outcome, 0)
        reason = REASONS.get(int(a["reason"])) if outcome == "rejected" else None
        detail = a.get("detail") if reason in _TOKEN_REFUSALS else None
        out.append(
            {
                "index": len(out),
                "card": a["card"],
                "counter": int(a["counter"]),
                "merchant": a["merchant"],
                "amount_fen": int(a["amount"]),
                "outcome": outcome,
                "paid_fen": int(paid),
                "reason": reason,
                "detail": detail,
                "final": reason not in _RETRYABLE,
            }
        )
    return out


def _finalize(ctx: ServiceContext, upload: OfflineUpload, op: Operation) -> OfflineUpload:
    """Store a confirmed upload's results once, and move the cards' last counters forward."""
    if op.status != "confirmed" or upload.results is not None:
        return upload
    results = results_of(op)
    if len(results) != upload.size:  # pragma: no cover - the contract emits one outcome per payment
        raise Problem(502, "outcomes-mismatch", "The settlement did not report every payment", op.id)
    highest: dict[str, int] = {}
    for r in results:
        if r["outcome"] in _CONSUMED:
            highest[r["card"]] = max(highest.get(r["card"], 0), r["counter"])
    with ctx.db.session() as s:
        for card, counter in highest.items():
            s.execute(
                update(GatewayCard)
                .where(GatewayCard.address == card, GatewayCard.last_counter < counter)
                .values(last_counter=counter)
            )
        row = s.get(OfflineUpload, upload.id)
        assert row is not None
        if row.results is None:
            row.results = {"results": results}
        s.commit()
        return row


def _out(ctx: ServiceContext, upload: OfflineUpload, replayed: bool) -> UploadOut:
    with ctx.db.session() as s:
        op = s.get(Operation, upload.operation_id)
    assert op is not None
    upload = _finalize(ctx, upload, op)
    results = [PaymentResult(**r) for r in (upload.results or {}).get("results", [])]
    counts = {k: 0 for k in ("settled", "duplicate", "rejected", "shortfall")}
    for r in results:
        counts[r.outcome] += 1
    return UploadOut(
        id=upload.id,
        terminal=upload.terminal_id,
        status=op.status,
        operation_id=op.id,
        tx_hash=op.tx_hash,
        block_number=op.block_number,
        replayed=replayed,
        counts=counts,
        results=results,
    )


@router.post("", responses={202: {"model": UploadOut}})
def upload_batch(
    body: UploadIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: TerminalKey,
    terminal: TerminalDep,
    idem: IdempotencyKey,
    response: Response,
) -> UploadOut:
    """Upload a batch of 1 to 100 card-signed payments (terminal key). 200 with each payment's
    outcome; 202 while the settlement is not mined yet (read it again by its id)."""
    for i, p in enumerate(body.payments):
        if p.merchant != terminal.merchant:
            raise Problem(
                403,
                "payment-for-another-merchant",
                "A terminal uploads payments to its own merchant only",
                f"payment {i} is to {p.merchant}; this terminal's merchant is {terminal.merchant}",
                index=i,
            )
    payments = [p.model_dump() for p in body.payments]
    digest = batch_digest(payments)
    with ctx.db.session() as s:
        known = s.scalar(
            select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
        )
        earlier = s.scalar(
            select(OfflineUpload)
            .where(
                OfflineUpload.terminal_id == terminal.id,
                OfflineUpload.batch_digest == digest,
                OfflineUpload.results.is_not(None),
            )
            .order_by(OfflineUpload.id)
            .limit(1)
        )
    if known is None and earlier is not None:  # the same batch again, under a new key
        record(ctx.db, key, "offline.upload", terminal.id, earlier.operation_id, "replayed")
        response.status_code = 200
        return _out(ctx, earlier, replayed=True)

    def claim() -> dict[str, Any]:
        with ctx.db.session() as s:
            op_id = s.scalar(
                select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
            )
            assert op_id is not None
            s.add(
                OfflineUpload(
                    terminal_id=terminal.id, batch_digest=digest, size=len(payments), operation_id=op_id
                )
            )
            s.commit()
        return {}

    request = {"terminal": terminal.id, "digest": digest, "payments": payments}
    op, replayed = perform(ops, "gateway.settle", key, idem, request, target=terminal.id, prepare=claim)
    with ctx.db.session() as s:
        upload = s.scalar(select(OfflineUpload).where(OfflineUpload.operation_id == op.id))
    assert upload is not None
    out = _out(ctx, upload, replayed=replayed)
    response.status_code = 200 if out.status == "confirmed" else 202
    return out


@router.get("/{upload_id}")  # ids are a 32-bit INTEGER column on PostgreSQL
def get_upload(upload_id: Annotated[int, Path(ge=1, lt=2**31)], ctx: CtxDep, key: ApiKeyDep) -> UploadOut:
    """An upload and its results (the terminal that uploaded it, the operator, the auditor).
    Decided before the answer can tell anything: a terminal gets the same 403 for another
    terminal's upload and for an id that does not exist (upload ids are sequential)."""
    if key.role in (Role.OPERATOR, Role.AUDITOR):
        with ctx.db.session() as s:
            upload = s.get(OfflineUpload, upload_id)
        if upload is None:
            raise Problem(404, "upload-not-found", "Upload not found", str(upload_id))
        return _out(ctx, upload, replayed=False)
    if key.role != Role.TERMINAL:
        raise Problem(403, "forbidden-role", "Only the uploading terminal, the operator or the auditor")
    with ctx.db.session() as s:
        upload = s.scalar(
            select(OfflineUpload)
            .join(GatewayTerminal, GatewayTerminal.id == OfflineUpload.terminal_id)
            .where(OfflineUpload.id == upload_id, GatewayTerminal.api_key_id == key.id)
        )
    if upload is None:
        raise Problem(403, "not-your-upload", "A terminal reads only its own uploads", str(upload_id))
    return _out(ctx, upload, replayed=False)


@builder("gateway.settle")
def _settle(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    batch = [
        (p["card"], p["merchant"], p["amount"], p["counter"], p["time"], bytes.fromhex(p["signature"][2:]))
        for p in req["payments"]
    ]
    return Call(ctx.operator, ctx.hardwallet.contract.functions.settle(batch))
