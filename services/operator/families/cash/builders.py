"""The cash family's operation builders: each turns a stored request into who signs which call.

Data-to-call: a builder reads (a wallet's key, its gas balance) and states the allowance its call
needs as :class:`Allowance`, which ``Operations`` makes sure of; the calls come from the typed
client (:class:`chain.clients.token.CashClient`). A new custodial wallet's gas money is data too
(``Call.gas_money``): ``Operations`` sends it before the call. Builders write nothing."""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain.clients.token import Kind, Registration, bytes32_text
from services.common.context import ServiceContext
from services.common.operations import Allowance, Builder, Call
from services.common.problems import Problem
from services.operator.families.cash import recovery

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
    poor = (address,) if _short_of_gas(ctx, req["custody"], address) else ()  # so it can sign later
    if int(req.get("institution") or 1) != 1:
        # Two tiers: the institution registers the wallet it serves through the central bank's
        # book, which records it as that institution's (its key signs).
        fn = ctx.institutions.register_call(
            address,
            KINDS[req["kind"]],
            req["tier"],
            req["merchant_category"],
            bytes.fromhex(req["identity_hash"][2:]),
        )
        return Call(_issuer(ctx, req), fn, gas_money=poor)
    fn = ctx.cash.register_call(
        address,
        KINDS[req["kind"]],
        req["tier"],
        req["merchant_category"],
        bytes.fromhex(req["identity_hash"][2:]),
    )
    return Call(ctx.operator, fn, gas_money=poor)


def register_batch(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``wallet.register_batch``: one group of a batch, one ``registerBatch``, all or nothing."""
    rows = list(zip(req["wallets"], req["addresses"], strict=True))
    poor = tuple(a for w, a in rows if _short_of_gas(ctx, w["custody"], a))  # sent together
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
    return Call(ctx.operator, ctx.cash.register_batch_call(registrations), gas_money=poor)


def issue(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``cash.issue``: the issuer (the operator) mints into a registered wallet."""
    return Call(_issuer(ctx, req), ctx.cash.mint_call(req["to"], req["amount_fen"]))


def _issuer(ctx: ServiceContext, req: dict[str, Any]) -> LocalAccount:
    """The operator's key, or (two tiers) the key of the institution the request names."""
    institution = int(req.get("institution") or 1)
    if institution == 1:
        return ctx.operator
    from services.operator.families.banking.service import signer_of

    return signer_of(ctx, institution)


def redeem(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``cash.redeem``: the issuer burns from a custodial wallet, on its allowance to the issuer."""
    holder = ctx.custodial(req["holder"])
    issuer = _issuer(ctx, req)
    return Call(
        issuer,
        ctx.cash.redeem_call(holder.address, req["amount_fen"]),
        allowance=Allowance(holder.address, issuer.address, req["amount_fen"]),
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


# -- one person, one identity; holds, court orders, recovery (issue 22) -------------------------


def signing_key(account: LocalAccount | None, what: str) -> LocalAccount:
    """A signing key the service may not hold in production: 503 naming it when absent."""
    if account is None:
        slug = "second-regulator-missing" if what == "second_regulator" else "admin-key-missing"
        raise Problem(
            503, slug, "The service holds no such signing key", f"configure XCPAY_{what.upper()}_KEYSTORE"
        )
    return account


def set_personal_wallet_limit(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``cash.set_personal_wallet_limit``: the admin sets how many personal wallets one identity
    may hold per tier."""
    return Call(signing_key(ctx.admin, "admin"), ctx.cash.set_personal_wallet_limit_call(req["limit"]))


def place_hold(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``cash.place_hold``: hold an amount of a wallet (judicial freeze, AML hold)."""
    fn = ctx.cash.place_hold_call(
        req["wallet"], req["amount_fen"], bytes32_text(req["reason"]), bytes32_text(req["case_number"])
    )
    return Call(ctx.regulator, fn)


def lift_hold(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, ctx.cash.lift_hold_call(req["wallet"], req["hold_id"]))


def propose_court_order(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``cash.propose_court_order``: the first regulator key is the maker."""
    fn = ctx.cash.propose_court_order_call(
        req["from"], req["to"], req["amount_fen"], bytes32_text(req["case_number"]), req["hold_id"]
    )
    return Call(ctx.regulator, fn)


def approve_court_order(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``cash.approve_court_order``: the second regulator key (the checker) approves, so
    the chain's maker-checker rule (``CheckerIsMaker``) holds between two different keys."""
    signer = signing_key(ctx.second_regulator, "second_regulator")
    return Call(signer, ctx.cash.approve_court_order_call(req["order_id"]))


def cancel_court_order(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, ctx.cash.cancel_court_order_call(req["order_id"]))


def propose_recovery(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``cash.propose_recovery``: the registrar (the operator) records the verified identity
    (the evidence's hash) and names the replacement; a custodial replacement gets gas money."""
    replacement = req["replacement"]
    poor = (replacement,) if _short_of_gas(ctx, req["custody"], replacement) else ()
    fn = ctx.cash.propose_recovery_call(req["lost"], replacement, bytes.fromhex(req["evidence_hash"][2:]))
    return Call(ctx.operator, fn, gas_money=poor)


def approve_recovery(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``cash.approve_recovery``: the regulator (the checker of the operator's proposal)."""
    return Call(ctx.regulator, ctx.cash.approve_recovery_call(req["recovery_id"]))


BUILDERS.update(
    {
        "cash.set_personal_wallet_limit": set_personal_wallet_limit,
        "cash.place_hold": place_hold,
        "cash.lift_hold": lift_hold,
        "cash.propose_court_order": propose_court_order,
        "cash.approve_court_order": approve_court_order,
        "cash.cancel_court_order": cancel_court_order,
        "cash.propose_recovery": propose_recovery,
        "cash.approve_recovery": approve_recovery,
    }
)
BUILDERS.update(recovery.BUILDERS)  # the moves of family-held assets after a recovery
