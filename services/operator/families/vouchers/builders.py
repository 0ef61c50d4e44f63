"""The voucher family's operation builders: a stored request in, the signed-for call out.

Pure data-to-call (see ``services/common/operations.py``): each builder reads the stored request
(and what it needs to read: the programme's issuer, a campaign leaf, whether a bill qualifies),
picks the signing account and asks the typed client ``ctx.vouchers`` for the call. The allowances
a creation (the budget) and a custodial spend (the bill, the most it can pull) need are stated as
data (``Call.allowance``) and Operations makes sure of them; nothing here sends a transaction.
"""

from __future__ import annotations

from typing import Any

from chain.clients.vouchers import Grant, Mode, Terms, programme_name
from services.common.context import ServiceContext
from services.common.operations import Allowance, Builder, Call
from services.operator.families.vouchers.service import leaf, leaf_proof

MODES = {"grant-list": Mode.GRANT_LIST, "open-enrolment": Mode.OPEN_ENROLMENT}


def create(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The issuer's wallet creates and funds the programme: the contract pulls the budget."""
    issuer = ctx.custodial(req["issuer"])
    terms = Terms(
        name=programme_name(req["name"]),
        mode=MODES[req["mode"]],
        starts_at=req["starts_at"],
        expires_at=req["expires_at"],
        budget=req["budget_fen"],
        per_person_cap=req["per_person_cap_fen"],
        min_bill=req["min_bill_fen"],
        discount_per_spend=req["discount_fen"],
    )
    fn = ctx.vouchers.create_call(terms, req["categories"], req["merchants"])
    return Call(issuer, fn, allowance=Allowance(issuer.address, ctx.vouchers.address, terms.budget))


def cap_per_identity(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``vouchers.cap_per_identity``: the issuer makes the cap count per identity (issue 22)."""
    issuer = ctx.custodial(ctx.vouchers.programme(req["programme"]).issuer)
    return Call(issuer, ctx.vouchers.cap_per_identity_call(req["programme"]))


def grant(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    issuer = ctx.custodial(ctx.vouchers.programme(req["programme"]).issuer)
    grants = [Grant(holder, amount) for holder, amount in req["grants"]]
    return Call(issuer, ctx.vouchers.grant_call(req["programme"], grants))


def set_root(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    issuer = ctx.custodial(ctx.vouchers.programme(req["programme"]).issuer)
    fn = ctx.vouchers.set_grant_root_call(req["programme"], bytes.fromhex(req["root"][2:]), req["leaves"])
    return Call(issuer, fn)


def claim(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The operator claims a campaign grant for the holder in its stored leaf."""
    row = leaf(ctx, req["programme"], req["index"])
    fn = ctx.vouchers.claim_call(
        req["programme"], req["index"], Grant(row.holder, row.amount_fen), leaf_proof(row)
    )
    return Call(ctx.operator, fn)


def enrol(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.custodial(req["holder"]), ctx.vouchers.enrol_call(req["programme"]))


def spend(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The holder's wallet pays the bill; the contract pulls the holder's own share (if any)."""
    holder = ctx.custodial(req["holder"])
    fn = ctx.vouchers.spend_call(req["programme"], req["merchant"], req["bill_fen"])
    return Call(holder, fn, allowance=spend_allowance(ctx, req["programme"], holder.address, req["bill_fen"]))


def spend_allowance(ctx: ServiceContext, programme: int, holder: str, bill: int) -> Allowance:
    """The allowance a custodial holder's spend of ``bill`` needs: the bill, the most the contract
    can pull (its cash part is the bill less the voucher share), not the cash part quoted now.
    The share depends on the voucher balance when the spend is mined: a quote read before another
    spend of the holder used the voucher up says 0 where the contract then pulls cash (the red team
    saw the third of three bills refused for want of an allowance that was never asked for). What
    is left of it after the pull is harmless: only this contract may use it, and only for a spend
    the holder signs (or the service signs as its custodian), to a merchant of the holder's choice,
    never beyond what the holder holds; Operations approves what the wallet holds anyway.

    The quote is still read, as a check before anything is signed or approved: it refuses as the
    spend would a zero bill, a bill below the minimum and an empty voucher balance."""
    ctx.vouchers.quote(programme, holder, bill)
    return Allowance(holder, ctx.vouchers.address, bill)


def spend_signed(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The operator submits the holder's signed ``Spend`` (the holder's own approval stands)."""
    fn = ctx.vouchers.spend_with_signature_call(
        req["programme"],
        req["holder"],
        req["merchant"],
        req["bill_fen"],
        req["deadline"],
        bytes.fromhex(req["signature"][2:]),
    )
    return Call(ctx.operator, fn)


def close(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.vouchers.close_call(req["programme"], req["holders"]))


BUILDERS: dict[str, Builder] = {
    "voucher.create": create,
    "vouchers.cap_per_identity": cap_per_identity,
    "voucher.grant": grant,
    "voucher.set_root": set_root,
    "voucher.claim": claim,
    "voucher.enrol": enrol,
    "voucher.spend": spend,
    "voucher.spend_signed": spend_signed,
    "voucher.close": close,
}
