"""The hard-wallet family's operation builders: a stored request in, the call to sign out.

Each builder is pure data-to-call (``services/common/operations.py``): it reads the request the
route stored and names the signer, the typed client's call and, where the call pulls from a
custodial wallet, the allowance it needs as data. Nothing here sends a transaction, so the
reconciler can run a builder again after a restart and get the same call. The kind strings are
stored in the operations table: they never change.
"""

from __future__ import annotations

from typing import Any

from chain.clients.hardwallet import CardForm, SignedPayment, order_ref
from services.common.context import ServiceContext
from services.common.operations import Allowance, Builder, Call
from services.common.refunds import BUILDERS as REFUND_BUILDERS

FORMS = {"card": CardForm.CARD, "sim": CardForm.SIM, "wearable": CardForm.WEARABLE}


def settle(ctx: ServiceContext, req: dict[str, Any]) -> Call | None:
    """A terminal's uploaded batch, settled by the gateway's key (its SETTLER_ROLE: no one else
    settles; each payment pays only the merchant its card signed for, once). The payments the
    gateway refused before sending (``refused``: index -> reason, service/offline_payments.py
    ``prechecked``) are left out; None when that is every one: nothing is sent."""
    refused = req.get("refused", {})
    payments = [SignedPayment.from_json(p) for i, p in enumerate(req["payments"]) if str(i) not in refused]
    if not payments:
        return None
    return Call(ctx.operator, ctx.hardwallet.settle_call(payments))


def register_card(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.hardwallet.register_card_call(req["card"], req["holder"], FORMS[req["form"]])
    return Call(ctx.operator, fn)


def load_card(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The holder's custodial wallet loads the card; the settlement contract pulls the amount."""
    holder = ctx.custodial(req["holder"])
    hw = ctx.hardwallet
    return Call(
        holder,
        hw.load_call(req["card"], req["amount_fen"]),
        allowance=Allowance(holder.address, hw.address, req["amount_fen"]),
    )


def report_lost(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.hardwallet.report_lost_call(req["card"]))


def return_reserve(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.hardwallet.return_reserve_call(req["card"]))


def create_purse_programme(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.hardwallet.create_purse_programme_call(
        req["programme"],
        req["funder"],
        req["per_card_cap_fen"],
        req["expires_at"],
        req["at_expiry"] == "holder",
        req["categories"],
    )
    return Call(ctx.operator, fn)


def fund_purse(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The programme's custodial funder funds the card's purse; the settlement pulls the amount."""
    funder = ctx.custodial(req["funder"])
    hw = ctx.hardwallet
    return Call(
        funder,
        hw.fund_purse_call(req["card"], req["programme"], req["amount_fen"]),
        allowance=Allowance(funder.address, hw.address, req["amount_fen"]),
    )


def expire_purse(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.hardwallet.expire_purse_call(req["card"], req["programme"]))


def grant_mandate(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The custodial holder grants the merchant a mandate (the service signs for the holder)."""
    fn = ctx.quickpay.grant_call(
        req["merchant"], req["per_payment_cap_fen"], req["daily_cap_fen"], req["expires_at"]
    )
    return Call(ctx.custodial(req["holder"]), fn)


def pull(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The merchant's custodial wallet pulls from the holder; QuickPay needs the holder's
    allowance (the mandate's caps, not the allowance, limit what is pulled)."""
    qp = ctx.quickpay
    fn = qp.pull_call(req["mandate"], req["amount_fen"], order_ref(req["reference"]))
    return Call(
        ctx.custodial(req["merchant"]),
        fn,
        allowance=Allowance(req["holder"], qp.address, req["amount_fen"]),
    )


def revoke_mandate(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.custodial(req["holder"]), ctx.quickpay.revoke_call(req["mandate"]))


BUILDERS: dict[str, Builder] = {
    "gateway.settle": settle,
    "gateway.card.register": register_card,
    "gateway.card.load": load_card,
    "gateway.card.report_lost": report_lost,
    "gateway.card.return_reserve": return_reserve,
    "gateway.purse.programme": create_purse_programme,
    "gateway.purse.fund": fund_purse,
    "gateway.purse.expire": expire_purse,
    "gateway.mandate.grant": grant_mandate,
    "gateway.mandate.pull": pull,
    "gateway.mandate.revoke": revoke_mandate,
    **REFUND_BUILDERS,  # refunds of card payments: the shared pipeline (services/common/refunds.py)
}
