"""The banking family's operation builders: the chain legs of top-ups and redemptions, signed by
the serving institution's key, and the central bank's reserve allocations and withdrawals (the
regulator's key holds CENTRAL_BANK_ROLE). Builders write nothing."""

from __future__ import annotations

from typing import Any

from services.common.context import ServiceContext
from services.common.operations import Allowance, Builder, Call
from services.operator.families.banking.service import signer_of
from services.operator.families.cash.builders import signing_key


def topup(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``banking.topup``: the institution mints into the wallet it serves (after the bank leg)."""
    return Call(
        signer_of(ctx, int(req["institution"])), ctx.cash.mint_call(req["wallet"], int(req["amount_fen"]))
    )


def redeem(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``banking.redeem``: the institution burns from the custodial wallet, on its allowance."""
    holder = ctx.custodial(req["wallet"])
    signer = signer_of(ctx, int(req["institution"]))
    amount = int(req["amount_fen"])
    return Call(
        signer,
        ctx.cash.redeem_call(holder.address, amount),
        allowance=Allowance(holder.address, signer.address, amount),
    )


def add_institution(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``banking.add_institution``: the central bank authorises an institution and its key."""
    name = str(req["name"]).encode()[:32].ljust(32, b"\0")
    return Call(ctx.regulator, ctx.institutions.add_institution_call(req["signer"], name))


def grant_issuer(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``banking.grant_issuer``: the token's admin lets the new institution's key issue (a child of
    ``banking.add_institution``, so that an institution authorised over HTTP can issue at once)."""
    return Call(signing_key(ctx.admin, "admin"), ctx.cash.grant_issuer_call(req["signer"]))


def allocate(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``banking.allocate``: the central bank allocates reserve to an institution."""
    return Call(
        ctx.regulator, ctx.institutions.allocate_call(int(req["institution"]), int(req["amount_fen"]))
    )


def withdraw(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``banking.withdraw``: the central bank withdraws reserve (never below what is outstanding)."""
    return Call(
        ctx.regulator, ctx.institutions.withdraw_call(int(req["institution"]), int(req["amount_fen"]))
    )


BUILDERS: dict[str, Builder] = {
    "banking.topup": topup,
    "banking.redeem": redeem,
    "banking.add_institution": add_institution,
    "banking.grant_issuer": grant_issuer,
    "banking.allocate": allocate,
    "banking.withdraw": withdraw,
}
