"""Offline payments: settling a terminal's batch once, and one result per payment from its receipt."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from chain.clients.hardwallet import RETRYABLE_REASONS, RejectReason, SignedPayment, recover_card
from chain.exceptions import ContractError
from services.common.audit import record
from services.common.context import ServiceContext
from services.common.models import ApiKey, GatewayCard, GatewayTerminal, Operation
from services.common.operations import Operations, perform
from services.common.problems import Problem
from services.gateway.families.hardwallet.models import OfflineUpload
from services.gateway.families.hardwallet.schemas import PaymentResult, UploadOut

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


def prechecked(ctx: ServiceContext, payments: list[dict[str, Any]]) -> dict[str, str]:
    """The payments the contract would reject for certain, by index (a string: a JSON key) ->
    reason, found before anything is sent so that they cost no gas and, when they are the whole
    batch, no transaction (red team, LOW). In the contract's order (``_settleOne``): an unknown
    card (the gateway's cards, then the chain for the others), a signature the card did not make
    for this chain and contract (recovered here as the contract recovers it), a zero amount whose
    counter is unused (a used one is a duplicate on chain; asked of the chain, a rare case). What
    cannot be judged here for certain (a malformed signature the local recovery refuses for
    another reason, a high-s one) is left to the contract, which checks everything again."""
    cards = {p["card"] for p in payments}
    with ctx.db.session() as s:
        known = set(s.scalars(select(GatewayCard.address).where(GatewayCard.address.in_(cards))))
    for card in sorted(cards - known):
        try:
            ctx.hardwallet.card(card)
        except ContractError:  # HardWalletUnknownCard
            continue
        known.add(card)
    domain = ctx.hardwallet.domain
    refused: dict[str, str] = {}
    for i, p in enumerate(payments):
        if p["card"] not in known:
            refused[str(i)] = REASONS[RejectReason.UNKNOWN_CARD]
            continue
        signed = SignedPayment.from_json(p)
        try:
            signer = recover_card(signed, domain)
        except ValueError:  # no signer the contract's ECDSA.tryRecover would accept either
            signer = None
        if signer != signed.payment.card:
            refused[str(i)] = REASONS[RejectReason.INVALID_SIGNATURE]
        elif p["amount"] == 0 and not ctx.hardwallet.is_counter_used(p["card"], p["counter"]):
            refused[str(i)] = REASONS[RejectReason.ZERO_AMOUNT]
    return refused


def _refused_result(index: int, p: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "index": index,
        "card": p["card"],
        "counter": int(p["counter"]),
        "merchant": p["merchant"],
        "amount_fen": int(p["amount"]),
        "outcome": "rejected",
        "paid_fen": 0,
        "reason": reason,
        "detail": None,
        "final": True,
    }


def results_of(op: Operation) -> list[dict[str, Any]]:
    """One result per uploaded payment, in upload order: the settle receipt's outcome events for
    the payments sent, the gateway's own rejection for those it refused before sending."""
    chain = _chain_results(op)
    refused: dict[str, str] = (op.request or {}).get("refused") or {}
    if not refused:
        return chain
    sent = iter(chain)
    out = []
    for i, p in enumerate(op.request["payments"]):
        if str(i) in refused:
            out.append(_refused_result(i, p, refused[str(i)]))
        elif (r := next(sent, None)) is not None:
            out.append({**r, "index": i})
    return out


def _chain_results(op: Operation) -> list[dict[str, Any]]:
    """One result per payment sent, decoded from the settle receipt's outcome events."""
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
    with ctx.db.session() as s:
        return _store_results(s, upload.id, op)


def _store_results(s: Session, upload_id: int, op: Operation) -> OfflineUpload:
    """The upload's row with its results, stored in this session's commit (with the cards' last
    counters, all in one statement) unless another request stored them first."""
    results = results_of(op)
    highest: dict[str, int] = {}
    for r in results:
        if r["outcome"] in _CONSUMED:
            highest[r["card"]] = max(highest.get(r["card"], 0), r["counter"])
    row = s.get(OfflineUpload, upload_id)
    assert row is not None
    if row.results is not None:
        return row
    if len(results) != row.size:  # pragma: no cover - the contract emits one outcome per payment
        raise Problem(502, "outcomes-mismatch", "The settlement did not report every payment", op.id)
    if highest:
        s.connection().execute(_RAISE_COUNTER, [{"card": c, "counter": n} for c, n in highest.items()])
    row.results = {"results": results}
    s.commit()
    return row


# One executemany for every card of a batch; a counter only ever moves forward.
_RAISE_COUNTER = (
    update(GatewayCard)
    .where(GatewayCard.address == bindparam("card"), GatewayCard.last_counter < bindparam("counter"))
    .values(last_counter=bindparam("counter"))
)


def upload_out(
    ctx: ServiceContext, upload: OfflineUpload, replayed: bool, op: Operation | None = None
) -> UploadOut:
    """The upload with each payment's outcome (finalised first if its settlement just confirmed).
    ``op``: its operation as the caller has it already (read again otherwise)."""
    if op is None or op.id != upload.operation_id:
        with ctx.db.session() as s:
            op = s.get(Operation, upload.operation_id)
    assert op is not None
    upload = _finalize(ctx, upload, op)
    return _out(upload, op, replayed)


def _out(upload: OfflineUpload, op: Operation, replayed: bool) -> UploadOut:
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


def upload(
    ctx: ServiceContext,
    ops: Operations,
    key: ApiKey,
    at: GatewayTerminal,
    idem: str,
    payments: list[dict[str, Any]],
    kind: str = "gateway.settle",
) -> UploadOut:
    """Settle a terminal's batch (its payments already checked to be to its merchant).

    ``kind``: the operation kind; the operator's spot-check robot settles its probe payments
    through this same path under a kind of its own (``spotcheck.settle``, the same call), so that
    the operator's process, not the gateway's, finishes them.

    The same Idempotency-Key and body replay the stored answer (the backbone); the same batch from
    the same terminal under a new key gets its latest confirmed upload's answer, nothing sent --
    unless a payment of it was refused for a reason that may pass later (a frozen holder or
    merchant: ``final`` false): then the batch is settled again, as the README promises ("settled
    by a later upload"); its payments settled before come back ``duplicate``, nothing paid twice.
    """
    digest = batch_digest(payments)
    with ctx.db.session() as s:
        known = s.scalar(
            select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
        )
        earlier = s.scalar(
            select(OfflineUpload)
            .where(
                OfflineUpload.terminal_id == at.id,
                OfflineUpload.batch_digest == digest,
                OfflineUpload.results.is_not(None),
            )
            .order_by(OfflineUpload.id.desc())
            .limit(1)
        )
    if known is None and earlier is not None and _all_final(earlier):  # the same batch, a new key
        record(ctx.db, key, "offline.upload", at.id, earlier.operation_id, "replayed")
        return upload_out(ctx, earlier, replayed=True)

    def claim() -> dict[str, Any]:
        # What the contract would reject for certain is not sent (``prechecked``): stored with
        # the request, so that the builder leaves it out (and sends nothing when that is all of
        # it) and the results put its rejection in its place.
        refused = prechecked(ctx, payments)
        # Deferred: perform's next commit (the request completed, before anything is signed)
        # is durable and flushes this one with it.
        with ctx.db.deferred_session() as s:
            op_id = s.scalar(
                select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
            )
            assert op_id is not None
            s.add(
                OfflineUpload(terminal_id=at.id, batch_digest=digest, size=len(payments), operation_id=op_id)
            )
            s.commit()
        return {"refused": refused} if refused else {}

    request = {"terminal": at.id, "digest": digest, "payments": payments}
    op, replayed = perform(ops, kind, key, idem, request, target=at.id, prepare=claim)
    # The operation as perform answered it; its upload's row read and, once confirmed, its
    # results stored in one session (one commit).
    with ctx.db.session() as s:
        row = s.scalar(select(OfflineUpload).where(OfflineUpload.operation_id == op.id))
        assert row is not None
        if op.status == "confirmed" and row.results is None:
            row = _store_results(s, row.id, op)
    return _out(row, op, replayed)


def _all_final(upload: OfflineUpload) -> bool:
    """Whether every payment of a settled upload had its final outcome (none may pass later)."""
    return all(r.get("final", True) for r in (upload.results or {}).get("results", []))


def upload_of(ctx: ServiceContext, upload_id: int) -> OfflineUpload:
    with ctx.db.session() as s:
        row = s.get(OfflineUpload, upload_id)
    if row is None:
        raise Problem(404, "upload-not-found", "Upload not found", str(upload_id))
    return row


def terminal_upload(ctx: ServiceContext, key: ApiKey, upload_id: int) -> OfflineUpload:
    """The upload if ``key``'s terminal made it; another terminal's and a missing one are the same
    403 (upload ids are sequential)."""
    with ctx.db.session() as s:
        row = s.scalar(
            select(OfflineUpload)
            .join(GatewayTerminal, GatewayTerminal.id == OfflineUpload.terminal_id)
            .where(OfflineUpload.id == upload_id, GatewayTerminal.api_key_id == key.id)
        )
    if row is None:
        raise Problem(403, "not-your-upload", "A terminal reads only its own uploads", str(upload_id))
    return row
