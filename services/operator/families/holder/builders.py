"""The holder family's operation builders: pure data-to-call (``services/common/operations.py``).

A mandate's revocation must be signed by the mandate's holder (``QuickPay.revoke`` checks
``msg.sender``): for a custodial wallet the service signs with the holder's custodial key. A
card's loss report is the gateway's ``reportLost`` call, which the card's holder or an operator
may make: signed with a custodial holder's own key, or the operator's for a self-custody holder
(``belongings.py`` says why). A Merkle row's claim may be submitted by anyone and pays only its
recipient: the operator signs. The holder's other actions reuse their families' operations
(``prepaid.consume``, ``prepaid.cancel``, ``voucher.claim``, ``disburse.retry``). The kind strings
are stored in the operations table: they never change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from chain.clients.disburse import Row
from services.common.context import ServiceContext
from services.common.operations import Builder, Call
from services.operator.families.disburse.models import DisbursementRow
from services.operator.families.disburse.service import batch_and_id, proof


def revoke_mandate(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The custodial holder revokes their own mandate (the route checked that it is theirs)."""
    return Call(ctx.custodial(req["holder"]), ctx.quickpay.revoke_call(req["mandate"]))


def report_card_lost(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The holder's card reported lost (the route checked that it is theirs and active or blocked)."""
    signer = ctx.custodial(req["holder"]) if req["signer"] == "holder" else ctx.operator
    return Call(signer, ctx.hardwallet.report_lost_call(req["card"]))


def claim_row(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The holder's unpaid row of a Merkle batch, claimed with its stored proof."""
    _, bid = batch_and_id(ctx, req["ref"])
    with ctx.db.session() as s:
        stored = s.scalar(
            select(DisbursementRow.proof).where(
                DisbursementRow.ref == req["ref"], DisbursementRow.idx == req["index"]
            )
        )
    nodes = [bytes.fromhex(p[2:]) for p in proof(stored)]
    row = Row(req["recipient"], req["amount_fen"])
    return Call(ctx.operator, ctx.disburse.claim_call(bid, req["index"], row, nodes))


BUILDERS: dict[str, Builder] = {
    "holder.mandate.revoke": revoke_mandate,
    "holder.card.report_lost": report_card_lost,
    "holder.disburse.claim": claim_row,
}
