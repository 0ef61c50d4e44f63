"""The refunds family's logic: a merchant refunds all or part of a payment of one of its payment
codes (any form: custodial, signed transaction, voucher, card), recorded against that payment.

Where the rule lives: the payment is on chain, so the rule is too. ``MerchantRefunds`` records each
payment once (the operator, from what the payment's operation confirmed: payer, bill, voucher
share) and the merchant's own key signs each refund; the contract refuses a refund that would take
the payment's refunds above what was paid (``RefundExceedsPayment(paymentId, paid, refunded,
asked)``), so two concurrent refunds cannot both pass however the service interleaves them. The
service checks the same sum first to answer early with the same problem.

Who gets the money back: the voucher share (in proportion, counted on the running total) goes to
the programme's issuer, which funded it; the rest to the payer (a card payment's payer is the
card's holder wallet: the refund lands in the wallet, not on the card's offline reserve). A payer
frozen now is refused (409 ``refund-payer-frozen``): the money stays with the merchant and the
refund can be asked again once the regulator unfreezes the payer -- a refund is the payer's money
coming home, but a freeze stops every movement to the wallet, by the token's rule, and the service
does not park money elsewhere. A payer whose wallet was retired (recovered) before the payment was
recorded is recorded with its successor, so the refund reaches the person.

Idempotency: the POST carries an ``Idempotency-Key``; the same key and body answer with the same
refund (one operation, one row), another body is a 409. On chain each refund carries its own
reference (``refund_ref``), used once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from chain.clients.refunds import payment_id, refund_ref
from services.common.context import ServiceContext
from services.common.models import ApiKey, CodePayment, Operation, PaymentCode
from services.common.operations import Operations, perform
from services.common.problems import Problem
from services.operator.families.paycodes import service as paycodes
from services.operator.families.refunds.models import MerchantRefund
from services.operator.families.refunds.schemas import RefundOut

ZERO = "0x0000000000000000000000000000000000000000"
BEIJING = timedelta(hours=8)


def beijing_day(moment: datetime) -> str:
    """The Beijing calendar day (UTC+8, as the token counts days) of ``moment``."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware.astimezone(UTC) + BEIJING).date().isoformat()


def code_payment_id(ctx: ServiceContext, p: CodePayment) -> bytes:
    """A code payment's id on chain: its row and its transaction, bound to the chain."""
    return payment_id("code", ctx.tx.chain_id, f"{p.id}:{p.tx_hash}")


def find_payment(ctx: ServiceContext, code: PaymentCode, payment: int) -> CodePayment:
    paycodes.sync(ctx, code.id)
    with ctx.db.session() as s:
        p = s.get(CodePayment, payment)
    if p is None or p.code_id != code.id:
        raise Problem(404, "payment-not-found", "No such payment of this code", f"payment {payment}")
    return p


def _voucher_share(ctx: ServiceContext, p: CodePayment) -> tuple[int, str]:
    """What a voucher programme paid of a code payment, and where its refund goes (the issuer)."""
    if p.form != "voucher":
        return 0, ZERO
    with ctx.db.session() as s:
        op = s.get(Operation, p.operation_id)
    events = ((op.result if op is not None else None) or {}).get("events", [])
    for e in events:
        if e.get("name") == "Spent" and e["args"].get("holder") == p.payer:
            voucher = int(e["args"]["voucher"])
            if voucher == 0:
                return 0, ZERO
            return voucher, ctx.vouchers.programme(int(e["args"]["id"])).issuer
    raise Problem(409, "payment-not-refundable", "The voucher payment's spend was not found", str(p.id))


def _payer(ctx: ServiceContext, p: CodePayment) -> str:
    """Who gets the cash part back: the payer's wallet (a card's holder), or its successor."""
    payer = p.payer
    if p.form == "card":
        payer = ctx.hardwallet.card(p.payer).holder
    if ctx.cash.is_retired(payer):
        successor = ctx.cash.successor_of(payer)
        if successor != ZERO:
            return successor
    return payer


def _refunded(ctx: ServiceContext, kind: str, ref: str) -> int:
    """What the live (pending or confirmed) refunds of a payment add up to."""
    with ctx.db.session() as s:
        return int(
            s.scalar(
                select(func.coalesce(func.sum(MerchantRefund.amount_fen), 0)).where(
                    MerchantRefund.payment_kind == kind,
                    MerchantRefund.payment_ref == ref,
                    MerchantRefund.status != "failed",
                )
            )
            or 0
        )


def _ensure_recorded(
    ctx: ServiceContext, ops: Operations, key: ApiKey, pid: bytes, request: dict[str, Any]
) -> None:
    """Record the payment on chain once (the operator signs). Two first refunds racing both try;
    the loser's transaction reverts ``RefundPaymentAlreadyRecorded``, which is what it wanted."""
    if ctx.refunds.is_recorded(pid):
        return
    try:
        perform(ops, "refunds.record", key, f"refunds.record:{pid.hex()}", request, target=request["payment"])
    except Problem as problem:
        if problem.slug != "refund-payment-recorded" or not ctx.refunds.is_recorded(pid):
            raise


def refund_code_payment(
    ctx: ServiceContext,
    ops: Operations,
    key: ApiKey,
    idem: str,
    code: PaymentCode,
    payment: int,
    amount: int,
    reason: str | None,
) -> MerchantRefund:
    """Refund ``amount`` fen of payment ``payment`` of ``code`` (the caller may act for its
    merchant: see the route). Returns the refund row, brought up to date with its operation."""
    earlier = _by_key(ctx, key, idem)
    p = find_payment(ctx, code, payment)
    request: dict[str, Any] = {
        "payment_kind": "code",
        "payment": str(p.id),
        "code": code.id,
        "merchant": code.merchant,
        "amount_fen": amount,
        "reason": reason,
    }
    if earlier is None:
        if p.status != "confirmed" or p.tx_hash is None:
            raise Problem(
                409,
                "payment-not-refundable",
                "Only a confirmed payment can be refunded",
                f"payment {p.id} is {p.status}",
            )
        paid = _refunded(ctx, "code", str(p.id))
        if paid + amount > p.amount_fen:
            raise Problem(
                409,
                "refund-exceeds-payment",
                "The refunds would exceed what was paid for this bill",
                f"paid {p.amount_fen} fen, refunded {paid}, asked {amount}",
                paid_fen=p.amount_fen,
                refunded_fen=paid,
                asked_fen=amount,
            )
        if ctx.cash.wallet(code.merchant).frozen:
            raise Problem(409, "merchant-frozen", "The merchant's wallet is frozen", code.merchant)
        ctx.custodial(code.merchant)  # the merchant's key signs the refund: 422 not-custodial otherwise
    pid = code_payment_id(ctx, p)
    payer = _payer(ctx, p)
    if earlier is None:
        if ctx.refunds.is_recorded(pid):
            payer = ctx.refunds.payment(pid).payer
        if ctx.cash.wallet(payer).frozen:
            raise Problem(
                409,
                "refund-payer-frozen",
                "The payer's wallet is frozen: the refund waits",
                f"{payer} is frozen; the money stays with the merchant, ask again once it is unfrozen",
                payer=payer,
            )
        voucher, voucher_payee = _voucher_share(ctx, p)
        _ensure_recorded(
            ctx,
            ops,
            key,
            pid,
            {
                "payment": str(p.id),
                "payment_id": "0x" + pid.hex(),
                "merchant": code.merchant,
                "payer": payer,
                "paid_fen": p.amount_fen,
                "voucher_fen": voucher,
                "voucher_payee": voucher_payee,
            },
        )
        payer = ctx.refunds.payment(pid).payer
    request.update(payment_id="0x" + pid.hex(), payer=payer)

    def claim() -> dict[str, Any]:
        with ctx.db.session() as s:
            op_id = s.scalar(
                select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
            )
            row = MerchantRefund(
                payment_kind="code",
                payment_ref=str(p.id),
                code_id=code.id,
                merchant=code.merchant,
                payer=payer,
                amount_fen=amount,
                reason=reason,
                status="pending",
                operation_id=op_id,
                created_by=key.id,
            )
            s.add(row)
            s.commit()
            return {"refund": row.id, "ref": "0x" + refund_ref(ctx.tx.chain_id, row.id).hex()}

    try:
        op, _ = perform(
            ops, "refunds.refund", key, idem, request, target=f"code-payment:{p.id}", prepare=claim
        )
    except Problem:
        sync(ctx)
        raise
    return sync_one(ctx, op.id)


def _by_key(ctx: ServiceContext, key: ApiKey, idem: str) -> str | None:
    with ctx.db.session() as s:
        return s.scalar(
            select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
        )


def _apply(row: MerchantRefund, op: Operation) -> None:
    row.status, row.tx_hash = op.status, op.tx_hash
    if op.status == "confirmed":
        for e in (op.result or {}).get("events", []):
            if e.get("name") == "Refunded":
                row.cash_fen, row.voucher_fen = int(e["args"]["cash"]), int(e["args"]["voucher"])


def sync(ctx: ServiceContext) -> None:
    """Bring pending refunds up to date with their operations (the reconciler may have finished them)."""
    with ctx.db.session() as s:
        for row in s.scalars(select(MerchantRefund).where(MerchantRefund.status == "pending")).all():
            op = s.get(Operation, row.operation_id) if row.operation_id else None
            if op is not None and op.status != "pending":
                _apply(row, op)
        s.commit()


def sync_one(ctx: ServiceContext, op_id: str) -> MerchantRefund:
    with ctx.db.session() as s:
        row = s.scalar(select(MerchantRefund).where(MerchantRefund.operation_id == op_id))
        op = s.get(Operation, op_id)
        if row is None or op is None:
            raise Problem(404, "refund-not-found", "Refund not found", op_id)
        if row.status == "pending" and op.status != "pending":
            _apply(row, op)
            s.commit()
        s.refresh(row)
        s.expunge(row)
        return row


def find_refund(ctx: ServiceContext, refund_id: int) -> MerchantRefund:
    sync(ctx)
    with ctx.db.session() as s:
        row = s.get(MerchantRefund, refund_id)
    if row is None:
        raise Problem(404, "refund-not-found", "Refund not found", str(refund_id))
    return row


def refund_out(row: MerchantRefund) -> RefundOut:
    return RefundOut(
        id=row.id,
        payment_kind=row.payment_kind,
        payment=row.payment_ref,
        code_id=row.code_id,
        merchant=row.merchant,
        payer=row.payer,
        amount_fen=row.amount_fen,
        cash_fen=row.cash_fen,
        voucher_fen=row.voucher_fen,
        reason=row.reason,
        status=row.status,
        operation_id=row.operation_id,
        tx_hash=row.tx_hash,
        day=beijing_day(row.created_at),
    )
