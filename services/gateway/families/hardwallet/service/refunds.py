"""Refunds of card payments the merchant's terminals uploaded (settled, or the covered part of a
shortfall): the shared pipeline of ``services/common/refunds.py``, with the payment found in the
uploads' stored outcomes. A card payment is known on chain by its card and counter (a counter
pays once), so its refund id is bound to both; the cash goes back to the card's holder wallet,
what its purses paid (the settlement's ``PurseSpent`` events) to their funder."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from chain.clients.refunds import payment_id
from services.common import refunds as core
from services.common.context import ServiceContext
from services.common.models import ApiKey, GatewayTerminal, Operation
from services.common.operations import Operations
from services.common.problems import Problem
from services.gateway.families.hardwallet.models import OfflineUpload


def find_card_payment(
    ctx: ServiceContext, card: str, counter: int, merchant: str | None
) -> tuple[dict[str, Any], str, str]:
    """The stored outcome of (card, counter) that paid a merchant (of ``merchant``'s terminals
    when given), the terminal that uploaded it and the upload's operation; 404 when none did."""
    with ctx.db.session() as s:
        q = select(OfflineUpload, GatewayTerminal).join(
            GatewayTerminal, GatewayTerminal.id == OfflineUpload.terminal_id
        )
        if merchant is not None:
            q = q.where(GatewayTerminal.merchant == merchant)
        rows = s.execute(q.where(OfflineUpload.results.is_not(None)).order_by(OfflineUpload.id)).all()
    for upload, terminal in rows:
        for r in (upload.results or {}).get("results", []):
            if r["card"] == card and int(r["counter"]) == counter and int(r["paid_fen"]) > 0:
                return r, terminal.id, upload.operation_id
    raise Problem(
        404,
        "card-payment-not-found",
        "No settled card payment of this card and counter",
        f"{card} #{counter}",
    )


def refund_card_payment(
    ctx: ServiceContext,
    ops: Operations,
    key: ApiKey,
    idem: str,
    card: str,
    counter: int,
    merchant: str | None,
    amount: int,
    reason: str | None,
) -> core.MerchantRefund:
    """Refund ``amount`` fen of the card payment (card, counter); a terminal key's ``merchant``
    limits the search to its own merchant's uploads (another's is a 404, as a missing one)."""
    result, terminal_id, operation_id = find_card_payment(ctx, card, counter, merchant)
    holder = ctx.hardwallet.card(card).holder
    paid = core.Paid(
        kind="card",
        ref=f"{card}:{counter}",
        payment_id=payment_id("card", ctx.tx.chain_id, f"{card}:{counter}"),
        merchant=result["merchant"],
        payer=core.payee_of(ctx, holder),
        paid_fen=int(result["paid_fen"]),
        terminal_id=terminal_id,
    )
    with ctx.db.session() as s:
        op = s.get(Operation, operation_id)
    events = ((op.result if op is not None else None) or {}).get("events", [])
    paid = core.with_purses(paid, core.purse_share(ctx, events, card, counter))
    return core.refund(ctx, ops, key, idem, paid, amount, reason, confirmed=True)
