"""Merchants' refunds of ordinary payments, shared by both services: the operator refunds payments
of payment codes (services/operator/families/refunds/), the gateway card payments its terminals
uploaded (services/gateway/families/hardwallet/). One table, one pipeline, one contract.

Where the rule lives: the payment is on chain, so the rule is too. ``MerchantRefunds`` records each
payment once (the service's own key, the contract's recorder, from what the payment's operation
confirmed: payer, amount, voucher share) and the merchant's key signs each refund; the contract
refuses a refund that would take the payment's refunds above what was paid
(``RefundExceedsPayment(paymentId, paid, refunded, asked)``), so two concurrent refunds cannot both
pass however the services interleave them. The service checks the same sum first to answer early
with the same problem (``refund-exceeds-payment``).

Who gets the money back: the voucher share (in proportion, counted on the running total) goes to
the programme's issuer, which funded it; the rest to the payer (a card payment's payer is the
card's holder wallet: the refund lands in the wallet, not on the card's offline reserve). A payer
frozen now is refused (409 ``refund-payer-frozen``): the money stays with the merchant and the
refund can be asked again once the regulator unfreezes the payer -- a freeze stops every movement
to the wallet, by the token's rule, and the service does not park money elsewhere. A payer whose
wallet was retired (recovered) before the payment was recorded is recorded with its successor, so
the refund reaches the person.

Idempotency: the POST carries an ``Idempotency-Key``; the same key and body answer with the same
refund (one operation, one row), another body is a 409. On chain each refund carries its own
reference (``refund_ref``, from the row's id), used once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, ForeignKey, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from chain.clients.refunds import refund_ref
from services.common.context import ServiceContext
from services.common.models import ApiKey, Base, Operation, utcnow
from services.common.operations import Allowance, Builder, Call, Operations, perform
from services.common.problems import Problem
from services.common.schemas import Strict, example

ZERO = "0x0000000000000000000000000000000000000000"
BEIJING = timedelta(hours=8)


def beijing_day(moment: datetime) -> str:
    """The Beijing calendar day (UTC+8, as the token counts days) of ``moment``."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware.astimezone(UTC) + BEIJING).date().isoformat()


# -- the table (migration 0018) -------------------------------------------------------------------


class MerchantRefund(Base):
    """A refund of (part of) one payment, recorded against it. ``payment_kind``: ``code`` (a
    payment of a payment code, any form; ``payment_ref`` its ``code_payments.id``, ``code_id`` its
    code) or ``card`` (a card payment a terminal uploaded; ``payment_ref`` is ``card:counter``,
    ``terminal_id`` the terminal). The chain (``MerchantRefunds``) enforces that a payment's refunds
    never exceed what was paid; this row mirrors what its operation did: ``status`` pending |
    confirmed | failed, and once confirmed the split the contract made (``cash_fen`` to the payer,
    ``voucher_fen`` to the programme)."""

    __tablename__ = "merchant_refunds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_kind: Mapped[str] = mapped_column(String(16))
    payment_ref: Mapped[str] = mapped_column(String(64), index=True)
    code_id: Mapped[str | None] = mapped_column(String(24), index=True, nullable=True)
    terminal_id: Mapped[str | None] = mapped_column(String(24), index=True, nullable=True)
    merchant: Mapped[str] = mapped_column(String(42), index=True)
    payer: Mapped[str] = mapped_column(String(42))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    cash_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    voucher_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    operation_id: Mapped[str | None] = mapped_column(String(36), unique=True, nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- request and answer ----------------------------------------------------------------------------


class RefundIn(Strict):
    model_config = example({"amount_fen": 1_200, "reason": "one dish was not served"})

    amount_fen: int = Field(
        strict=True, gt=0, lt=2**63, description="how much of the payment to refund, in fen"
    )
    reason: str | None = Field(default=None, min_length=1, max_length=200)


class RefundOut(BaseModel):
    id: int
    payment_kind: str = Field(
        description="code: a payment of a payment code; card: a terminal's card payment"
    )
    payment: str = Field(description="the payment: a code payment's id, or card:counter")
    code_id: str | None
    terminal_id: str | None
    merchant: str
    payer: str = Field(description="who gets the cash part back (a card payment: the card's holder)")
    amount_fen: int
    cash_fen: int | None = Field(description="once confirmed: the part paid back to the payer")
    voucher_fen: int | None = Field(description="once confirmed: the part returned to the voucher programme")
    reason: str | None
    status: str = Field(description="pending | confirmed | failed")
    operation_id: str | None
    tx_hash: str | None
    day: str = Field(description="the Beijing day the refund was asked (statements count it there)")


REFUND_CONFLICTS = (
    "refund-exceeds-payment (the payment's refunds would exceed what was paid: `paid_fen`, "
    "`refunded_fen`, `asked_fen`; the chain enforces it too), payment-not-refundable (not confirmed), "
    "refund-payer-frozen (the refund waits until the payer is unfrozen), merchant-frozen, "
    "idempotency-key-reused"
)


# -- refunding ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paid:
    """A payment as the chain confirmed it, to refund: its kind and reference (the row's), its id
    on chain, the parties, the amount, what a voucher programme paid of it and who funded that."""

    kind: str
    ref: str
    payment_id: bytes
    merchant: str
    payer: str
    paid_fen: int
    voucher_fen: int = 0
    voucher_payee: str = ZERO
    code_id: str | None = None
    terminal_id: str | None = None


def purse_share(
    ctx: ServiceContext, events: list[dict[str, Any]], card: str, counter: int | None = None
) -> dict[str, int]:
    """What earmarked purses paid of a card's payment (the settlement's ``PurseSpent`` events of
    ``card``, of payment ``counter`` when given), by funder: that money was a funder's subsidy,
    never the holder's cash, so a refund returns it to its funder (see :func:`with_purses`)."""
    parts: dict[str, int] = {}
    for e in events:
        a = e.get("args", {})
        if e.get("name") != "PurseSpent" or str(a.get("card", "")).lower() != card.lower():
            continue
        if counter is not None and int(a["counter"]) != counter:
            continue
        funder = ctx.hardwallet.purse_programme(int(a["programme"])).funder
        parts[funder] = parts.get(funder, 0) + int(a["amount"])
    return parts


def with_purses(paid: Paid, parts: dict[str, int]) -> Paid:
    """``paid`` with its purse-paid part kept from the holder: one funder's part is recorded as
    the voucher part, returned to that funder in proportion (as a voucher's to its issuer); when
    purses of several funders paid, only the cash part is refundable (the purse parts stay with
    the merchant: the contract returns one voucher part to one payee)."""
    earmarked = sum(parts.values())
    if earmarked == 0:
        return paid
    if len(parts) == 1:
        (funder,) = parts
        return replace(paid, voucher_fen=earmarked, voucher_payee=funder)
    return replace(paid, paid_fen=paid.paid_fen - earmarked)


def payee_of(ctx: ServiceContext, payer: str) -> str:
    """Who a refund to ``payer`` reaches: the payer, or the successor of a retired wallet."""
    if ctx.cash.is_retired(payer):
        successor = ctx.cash.successor_of(payer)
        if successor != ZERO:
            return successor
    return payer


def _refunded(ctx: ServiceContext, kind: str, ref: str) -> int:
    """What the live (pending or confirmed) refunds of a payment add up to."""
    with ctx.db.session() as s:
        total = s.scalar(
            select(func.coalesce(func.sum(MerchantRefund.amount_fen), 0)).where(
                MerchantRefund.payment_kind == kind,
                MerchantRefund.payment_ref == ref,
                MerchantRefund.status != "failed",
            )
        )
    return int(total or 0)


def _ensure_recorded(ctx: ServiceContext, ops: Operations, key: ApiKey, paid: Paid) -> None:
    """Record the payment on chain once (the service's key). Two first refunds racing both try;
    the loser's transaction reverts ``RefundPaymentAlreadyRecorded``, which is what it wanted."""
    if ctx.refunds.is_recorded(paid.payment_id):
        return
    request = {
        "payment_kind": paid.kind,
        "payment": paid.ref,
        "payment_id": "0x" + paid.payment_id.hex(),
        "merchant": paid.merchant,
        "payer": paid.payer,
        "paid_fen": paid.paid_fen,
        "voucher_fen": paid.voucher_fen,
        "voucher_payee": paid.voucher_payee,
    }
    try:
        perform(
            ops, "refunds.record", key, f"refunds.record:{paid.payment_id.hex()}", request, target=paid.ref
        )
    except Problem as problem:
        if problem.slug != "refund-payment-recorded" or not ctx.refunds.is_recorded(paid.payment_id):
            raise


def refund(
    ctx: ServiceContext,
    ops: Operations,
    key: ApiKey,
    idem: str,
    paid: Paid,
    amount: int,
    reason: str | None,
    confirmed: bool,
) -> MerchantRefund:
    """Refund ``amount`` fen of ``paid`` (the caller may act for its merchant: the route decides;
    ``confirmed``: the payment is confirmed on chain). Returns the refund row, up to date."""
    earlier = _by_key(ctx, key, idem)
    payer = paid.payer
    if earlier is None:
        if not confirmed:
            raise Problem(409, "payment-not-refundable", "Only a confirmed payment can be refunded", paid.ref)
        so_far = _refunded(ctx, paid.kind, paid.ref)
        if so_far + amount > paid.paid_fen:
            raise Problem(
                409,
                "refund-exceeds-payment",
                "The refunds would exceed what was paid for this bill",
                f"paid {paid.paid_fen} fen, refunded {so_far}, asked {amount}",
                paid_fen=paid.paid_fen,
                refunded_fen=so_far,
                asked_fen=amount,
            )
        if ctx.cash.wallet(paid.merchant).frozen:
            raise Problem(409, "merchant-frozen", "The merchant's wallet is frozen", paid.merchant)
        ctx.custodial(paid.merchant)  # the merchant's key signs the refund: 422 not-custodial otherwise
        if ctx.refunds.is_recorded(paid.payment_id):
            payer = ctx.refunds.payment(paid.payment_id).payer
        if ctx.cash.wallet(payer).frozen:
            raise Problem(
                409,
                "refund-payer-frozen",
                "The payer's wallet is frozen: the refund waits",
                f"{payer} is frozen; the money stays with the merchant, ask again once it is unfrozen",
                payer=payer,
            )
        _ensure_recorded(ctx, ops, key, paid)
    if ctx.refunds.is_recorded(paid.payment_id):  # the payee is the recorded one (also on a replay)
        payer = ctx.refunds.payment(paid.payment_id).payer
    request: dict[str, Any] = {
        "payment_kind": paid.kind,
        "payment": paid.ref,
        "code": paid.code_id,
        "terminal": paid.terminal_id,
        "merchant": paid.merchant,
        "payer": payer,
        "amount_fen": amount,
        "reason": reason,
        "payment_id": "0x" + paid.payment_id.hex(),
    }

    def claim() -> dict[str, Any]:
        with ctx.db.session() as s:
            op_id = s.scalar(
                select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
            )
            row = MerchantRefund(
                payment_kind=paid.kind,
                payment_ref=paid.ref,
                code_id=paid.code_id,
                terminal_id=paid.terminal_id,
                merchant=paid.merchant,
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
            ops, "refunds.refund", key, idem, request, target=f"{paid.kind}:{paid.ref}", prepare=claim
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
        terminal_id=row.terminal_id,
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


# -- builders (both services' tables name them) ----------------------------------------------------


def build_record(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``refunds.record``: signed by the service's own key (the contract's recorder)."""
    pid = bytes.fromhex(req["payment_id"][2:])
    fn = ctx.refunds.record_call(
        pid, req["merchant"], req["payer"], req["paid_fen"], req["voucher_fen"], req["voucher_payee"]
    )
    return Call(ctx.operator, fn)


def build_refund(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``refunds.refund``: signed by the merchant's custodial key, on its allowance to the contract
    (``Operations`` grants it first when the chain does not allow it yet)."""
    merchant = ctx.custodial(req["merchant"])
    pid = bytes.fromhex(req["payment_id"][2:])
    fn = ctx.refunds.refund_call(pid, req["amount_fen"], bytes.fromhex(req["ref"][2:]))
    return Call(merchant, fn, allowance=Allowance(merchant.address, ctx.refunds.address, req["amount_fen"]))


BUILDERS: dict[str, Builder] = {"refunds.record": build_record, "refunds.refund": build_refund}
