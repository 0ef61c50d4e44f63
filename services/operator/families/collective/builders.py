"""The collective family's operation builders: a stored request in, the signed-for call out.

Pure data-to-call (see ``services/common/operations.py``): each builder reads the request the
route stored, picks the signing account (the township's regulator account, an officer's or a
payer's custodial wallet) and asks the typed client for the call. Nothing here sends a
transaction; the allowance income needs is stated as data (``Call.allowance``) and Operations
makes sure of it, so the reconciler can run any builder again after a restart.
"""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount

from chain.clients.collective import AssetKind, OfficerRole, Tier
from services.common.context import ServiceContext
from services.common.operations import Allowance, Builder, Call

ZERO = b"\0" * 32
ROLES = {"committee": OfficerRole.COMMITTEE, "treasurer": OfficerRole.TREASURER, "none": OfficerRole.NONE}
KINDS = {"property": AssetKind.PROPERTY, "resource": AssetKind.RESOURCE}


def _b32(hex_: str | None) -> bytes:
    """A stored hex hash as bytes32; none is the zero hash."""
    if not hex_:
        return ZERO
    return bytes.fromhex(hex_.removeprefix("0x"))


def _tier(t: dict[str, Any]) -> Tier:
    return Tier(t["max_amount_fen"], t["committee"], t["township"], t["delay_s"])


def _lines(lines: list[dict[str, Any]]) -> list[tuple[bytes, int]]:
    """Budget lines as (name as UTF-8 in a bytes32, budget in fen)."""
    return [(ln["name"].encode().ljust(32, b"\0"), ln["budget_fen"]) for ln in lines]


def _account(ctx: ServiceContext, signer: str) -> LocalAccount:
    """An approver as stored by the route: "township" (the regulator account) or an officer's wallet."""
    return ctx.regulator if signer == "township" else ctx.custodial(signer)


# -- township (signed by the regulator account) -------------------------------------------------


def create(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.collective.create_call(
        req["supervisor"],
        _b32(req["name_sha256"]),
        [(o["account"], ROLES[o["role"]]) for o in req["officers"]],
        [_tier(t) for t in req["tiers"]],
        req["proposal_lifetime_s"],
    )
    return Call(ctx.regulator, fn)


def open_year(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.collective.open_year_call(req["collective_id"], req["year"], _lines(req["lines"]))
    return Call(ctx.regulator, fn)


def amend_budget(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.collective.amend_budget_call(req["collective_id"], req["line"], req["budget_fen"])
    return Call(ctx.regulator, fn)


def set_officer(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.collective.set_officer_call(req["collective_id"], req["account"], ROLES[req["role"]])
    return Call(ctx.regulator, fn)


def set_rules(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    tiers = [_tier(t) for t in req["tiers"]]
    fn = ctx.collective.set_rules_call(req["collective_id"], tiers, req["proposal_lifetime_s"])
    return Call(ctx.regulator, fn)


def set_split_window(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, ctx.collective.set_split_window_call(req["days"]))


def freeze(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.collective.freeze_call(req["collective_id"], _b32(req["reason_sha256"]))
    return Call(ctx.regulator, fn)


def unfreeze(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, ctx.collective.unfreeze_call(req["collective_id"]))


# -- proposals (officers' wallets; the township approves and rejects with its account) ----------


def propose(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.collective.propose_call(
        req["collective_id"],
        req["payee"],
        req["amount_fen"],
        req["line"],
        _b32(req["purpose_sha256"]),
        _b32(req["evidence_sha256"]),
    )
    return Call(ctx.custodial(req["officer"]), fn)


def approve(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(_account(ctx, req["signer"]), ctx.collective.approve_call(req["proposal_id"]))


def reject(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.collective.reject_call(req["proposal_id"], _b32(req["reason_sha256"]))
    return Call(_account(ctx, req["signer"]), fn)


def cancel(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.custodial(req["officer"]), ctx.collective.cancel_call(req["proposal_id"]))


def execute(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.custodial(req["officer"]), ctx.collective.execute_call(req["proposal_id"]))


# -- register and income ------------------------------------------------------------------------


def register_asset(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.collective.register_asset_call(
        req["collective_id"], KINDS[req["kind"]], req["value_fen"], _b32(req["description_sha256"])
    )
    return Call(ctx.custodial(req["officer"]), fn)


def income(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The payer's wallet pays in; the fund pulls the amount, so the payer must allow it that."""
    payer = ctx.custodial(req["payer"])
    fn = ctx.collective.record_income_call(
        req["collective_id"], req["amount_fen"], req["asset_id"], _b32(req["memo_sha256"])
    )
    return Call(payer, fn, allowance=Allowance(payer.address, ctx.collective.address, req["amount_fen"]))


BUILDERS: dict[str, Builder] = {
    "collective.create": create,
    "collective.open_year": open_year,
    "collective.amend_budget": amend_budget,
    "collective.set_officer": set_officer,
    "collective.set_rules": set_rules,
    "collective.set_split_window": set_split_window,
    "collective.freeze": freeze,
    "collective.unfreeze": unfreeze,
    "collective.propose": propose,
    "collective.approve": approve,
    "collective.reject": reject,
    "collective.cancel": cancel,
    "collective.execute": execute,
    "collective.register_asset": register_asset,
    "collective.income": income,
}
