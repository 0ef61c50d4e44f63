"""The utilities family's operation builders (pure data-to-call; the kinds are stored, never renamed)."""

from __future__ import annotations

from typing import Any

from chain.clients.hardwallet import order_ref
from services.common.context import ServiceContext
from services.common.operations import Allowance, Builder, Call


def pay_bill(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """A resident's custodial wallet pays the bill to the biller."""
    return Call(ctx.custodial(req["payer"]), ctx.cash.transfer_call(req["biller_wallet"], req["amount_fen"]))


def grant_mandate(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The resident's custodial wallet grants the biller a mandate (the biller's cap, per day too)."""
    fn = ctx.quickpay.grant_call(req["biller_wallet"], req["cap_fen"], req["cap_fen"], req["expires_at"])
    return Call(ctx.custodial(req["holder"]), fn)


def revoke_mandate(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.custodial(req["holder"]), ctx.quickpay.revoke_call(req["mandate"]))


def autodebit(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The biller's custodial wallet pulls the bill under the mandate; the order reference is the
    bill's (biller/account/period), so the chain refuses a second pull of one bill."""
    qp = ctx.quickpay
    return Call(
        ctx.custodial(req["biller_wallet"]),
        qp.pull_call(req["mandate"], req["amount_fen"], order_ref(req["reference"])),
        allowance=Allowance(req["holder"], qp.address, req["amount_fen"]),
    )


BUILDERS: dict[str, Builder] = {
    "utilities.bill.pay": pay_bill,
    "utilities.mandate.grant": grant_mandate,
    "utilities.mandate.revoke": revoke_mandate,
    "utilities.autodebit": autodebit,
}
