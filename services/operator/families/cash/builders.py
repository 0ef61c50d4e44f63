"""The cash family's operation builders: each turns a stored request into who signs which call.

Data-to-call: a builder reads (a wallet's key, its gas balance) and states the allowance its call
needs as :class:`Allowance`, which ``Operations`` makes sure of; the calls come from the typed
client (:class:`chain.clients.token.CashClient`). The one write left here is the gas money a new
custodial wallet gets before it is registered (ether, no cash; see ``register``)."""

from __future__ import annotations

from typing import Any

from web3 import Web3

from chain.clients.token import Kind, Registration
from services.common.context import ServiceContext
from services.common.operations import Allowance, Builder, Call

KINDS = {"personal": Kind.PERSONAL, "merchant": Kind.MERCHANT, "institution": Kind.INSTITUTION}


def _short_of_gas(ctx: ServiceContext, custody: str, address: str) -> bool:
    """A custodial wallet with less than half a top-up of gas money (it could not sign later)."""
    topup = ctx.settings.gas_topup_wei
    return (
        custody == "custodial"
        and topup > 0
        and ctx.w3.eth.get_balance(Web3.to_checksum_address(address)) < topup // 2
    )


def register(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``wallet.register``: the registrar (the operator) registers one wallet."""
    address = req["address"]
    if _short_of_gas(ctx, req["custody"], address):  # gas money, so the wallet can sign
        # Not an operation of its own (it moves no cash): the one chain write of these builders.
        ctx.tx.send_value(ctx.operator, address, ctx.settings.gas_topup_wei)
    fn = ctx.cash.register_call(
        address,
        KINDS[req["kind"]],
        req["tier"],
        req["merchant_category"],
        bytes.fromhex(req["identity_hash"][2:]),
    )
    return Call(ctx.operator, fn)


def register_batch(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``wallet.register_batch``: one group of a batch, one ``registerBatch``, all or nothing."""
    rows = list(zip(req["wallets"], req["addresses"], strict=True))
    if ctx.settings.gas_topup_wei > 0:  # gas money, as for one wallet; sent together, awaited once
        poor = [a for w, a in rows if _short_of_gas(ctx, w["custody"], a)]
        ctx.tx.send_values(ctx.operator, [(a, ctx.settings.gas_topup_wei) for a in poor])
    registrations = [
        Registration(
            address,
            KINDS[w["kind"]],
            w["tier"],
            w["merchant_category"],
            bytes.fromhex(w["identity_hash"][2:]),
        )
        for w, address in rows
    ]
    return Call(ctx.operator, ctx.cash.register_batch_call(registrations))


def issue(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``cash.issue``: the issuer (the operator) mints into a registered wallet."""
    return Call(ctx.operator, ctx.cash.mint_call(req["to"], req["amount_fen"]))


def redeem(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``cash.redeem``: the issuer burns from a custodial wallet, on its allowance to the issuer."""
    holder = ctx.custodial(req["holder"])
    return Call(
        ctx.operator,
        ctx.cash.redeem_call(holder.address, req["amount_fen"]),
        allowance=Allowance(holder.address, ctx.operator.address, req["amount_fen"]),
    )


def transfer(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``cash.transfer``: a custodial wallet pays a registered wallet."""
    return Call(ctx.custodial(req["sender"]), ctx.cash.transfer_call(req["to"], req["amount_fen"]))


def freeze(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, ctx.cash.freeze_call(req["address"]))


def unfreeze(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, ctx.cash.unfreeze_call(req["address"]))


def pause(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, ctx.cash.pause_call())


def unpause(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, ctx.cash.unpause_call())


BUILDERS: dict[str, Builder] = {
    "wallet.register": register,
    "wallet.register_batch": register_batch,
    "cash.issue": issue,
    "cash.redeem": redeem,
    "cash.transfer": transfer,
    "regulator.freeze": freeze,
    "regulator.unfreeze": unfreeze,
    "regulator.pause": pause,
    "regulator.unpause": unpause,
}
