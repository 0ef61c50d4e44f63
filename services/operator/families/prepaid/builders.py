"""The prepaid family's operation builders: each turns a stored request into who signs which
PrepaidEscrow call (``services/common/operations.py`` signs, records and sends it).

Pure data-to-call: a builder reads the package from the chain where it needs its consumer or
merchant, and builds the call through the typed client; it sends nothing. The allowance a
prepayment needs (the escrow pulls the total from the consumer) is stated as data on the call.
"""

from __future__ import annotations

from typing import Any

from services.common.context import ServiceContext
from services.common.operations import Allowance, Builder, Call


def enrol(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The regulator enrols a merchant for supervision."""
    call = ctx.prepaid.enrol_call(req["merchant"], req["supervised_bps"], req["ceiling_fen"])
    return Call(ctx.regulator, call)


def close(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The regulator closes a merchant."""
    return Call(ctx.regulator, ctx.prepaid.close_merchant_call(req["merchant"]))


def refund_batch(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The operator refunds one page of a merchant's packages (the ids as the chain lists them)."""
    ids = ctx.prepaid.packages_of(req["merchant"], req["offset"], req["limit"])
    return Call(ctx.operator, ctx.prepaid.refund_batch_call(ids))


def prepay(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The consumer prepays; the escrow pulls the package's total, hence the allowance."""
    consumer = ctx.custodial(req["consumer"])
    total = req["sessions"] * req["unit_price_fen"]
    call = ctx.prepaid.prepay_call(
        req["merchant"],
        req["sessions"],
        req["unit_price_fen"],
        req["expires_at"],
        req["cancellation_fee_fen"],
    )
    return Call(consumer, call, allowance=Allowance(consumer.address, ctx.prepaid.address, total))


def consume(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The package's consumer confirms sessions used."""
    consumer = ctx.custodial(ctx.prepaid.package(req["id"]).consumer)
    return Call(consumer, ctx.prepaid.consume_call(req["id"], req["sessions"]))


def claim(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The package's merchant claims sessions with the consumer's signature."""
    merchant = ctx.custodial(ctx.prepaid.package(req["id"]).merchant)
    signature = bytes.fromhex(req["signature"][2:])
    return Call(merchant, ctx.prepaid.claim_call(req["id"], req["sessions"], req["deadline"], signature))


def cancel(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The package's consumer cancels it."""
    consumer = ctx.custodial(ctx.prepaid.package(req["id"]).consumer)
    return Call(consumer, ctx.prepaid.cancel_call(req["id"]))


def refund(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The operator, as keeper, refunds a package to its consumer."""
    return Call(ctx.operator, ctx.prepaid.refund_call(req["id"]))


BUILDERS: dict[str, Builder] = {
    "prepaid.enrol": enrol,
    "prepaid.close": close,
    "prepaid.refund_batch": refund_batch,
    "prepaid.prepay": prepay,
    "prepaid.consume": consume,
    "prepaid.claim": claim,
    "prepaid.cancel": cancel,
    "prepaid.refund": refund,
}
