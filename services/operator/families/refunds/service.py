"""The refunds family's logic for payments of payment codes: a merchant refunds all or part of a
payment of one of its codes (any form: custodial, signed transaction, voucher, card), recorded
against that payment. The pipeline, the rule and the choices (voucher share, frozen and retired
payers) are shared with the gateway's card payments: ``services/common/refunds.py``."""

from __future__ import annotations

from services.common import refunds as core
from services.common.context import ServiceContext
from services.common.models import ApiKey, CodePayment, Operation, PaymentCode
from services.common.operations import Operations
from services.common.problems import Problem
from services.common.refunds import BEIJING, MerchantRefund, beijing_day, refund_out, sync
from services.operator.families.paycodes import service as paycodes

__all__ = ["BEIJING", "beijing_day", "find_payment", "refund_code_payment", "refund_out", "sync"]


def find_payment(ctx: ServiceContext, code: PaymentCode, payment: int) -> CodePayment:
    paycodes.sync(ctx, code.id)
    with ctx.db.session() as s:
        p = s.get(CodePayment, payment)
    if p is None or p.code_id != code.id:
        raise Problem(404, "payment-not-found", "No such payment of this code", f"payment {payment}")
    return p


def voucher_share(ctx: ServiceContext, p: CodePayment) -> tuple[int, str]:
    """What a voucher programme paid of a code payment (its ``Spent`` event), and where its refund
    goes: the programme's issuer, which funded it."""
    if p.form != "voucher":
        return 0, core.ZERO
    with ctx.db.session() as s:
        op = s.get(Operation, p.operation_id)
    for e in ((op.result if op is not None else None) or {}).get("events", []):
        if e.get("name") == "Spent" and e["args"].get("holder") == p.payer:
            voucher = int(e["args"]["voucher"])
            if voucher == 0:
                return 0, core.ZERO
            return voucher, ctx.vouchers.programme(int(e["args"]["id"])).issuer
    return 0, core.ZERO


def paid_of(ctx: ServiceContext, code: PaymentCode, p: CodePayment) -> core.Paid:
    """A code payment as the chain confirmed it (a card payment's payer: the card's holder)."""
    from chain.clients.refunds import payment_id

    payer = ctx.hardwallet.card(p.payer).holder if p.form == "card" else p.payer
    voucher, voucher_payee = voucher_share(ctx, p) if p.status == "confirmed" else (0, core.ZERO)
    paid = core.Paid(
        kind="code",
        ref=str(p.id),
        payment_id=payment_id("code", ctx.tx.chain_id, f"{p.id}:{p.tx_hash}"),
        merchant=code.merchant,
        payer=core.payee_of(ctx, payer),
        paid_fen=p.amount_fen if p.status != "shortfall" else (paycodes.settled_fen(ctx, p) or 0),
        voucher_fen=voucher,
        voucher_payee=voucher_payee,
        code_id=code.id,
    )
    if p.form == "card" and p.status in ("confirmed", "shortfall"):  # purses' part: to their funder
        with ctx.db.session() as s:
            op = s.get(Operation, p.operation_id)
        events = ((op.result if op is not None else None) or {}).get("events", [])
        paid = core.with_purses(paid, core.purse_share(ctx, events, p.payer))
    return paid


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
    """Refund ``amount`` fen of payment ``payment`` of ``code`` (the route decided the caller may)."""
    p = find_payment(ctx, code, payment)
    # a card shortfall is final too: what it covered reached the merchant and may go back
    confirmed = p.status in ("confirmed", "shortfall") and p.tx_hash is not None
    return core.refund(ctx, ops, key, idem, paid_of(ctx, code, p), amount, reason, confirmed)
