"""The devices family's operation builders: a stored request in, the call to sign out (pure).

The gateway's key holds ``DEVICE_ROLE`` and ``OPERATOR_ROLE`` of DevicePayments. A
pre-authorisation pulls the maximum from the holder's wallet: for a custodial holder the builder
states the allowance as data (Operations grants it first); a self-custody holder approves
DevicePayments themselves, as for quick-pay. The kind strings are stored: they never change.
"""

from __future__ import annotations

from typing import Any

from chain.clients.devices import SignedPreAuth, recycling_ref
from services.common.context import ServiceContext
from services.common.operations import Allowance, Builder, Call


def preauth(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    signed = SignedPreAuth.from_json(req)
    allowance = None
    if req["custodial"]:
        allowance = Allowance(req["holder"], ctx.devices.address, int(req["max_amount_fen"]))
    return Call(ctx.operator, ctx.devices.preauthorize_call(signed), allowance=allowance)


def complete(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.devices.complete_call(req["preauth"], req["amount_fen"]))


def release(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.devices.release_call(req["preauth"]))


def create_programme(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.devices.create_programme_call(req["sponsor"], req["merchant"], req["daily_cap_fen"])
    return Call(ctx.operator, fn)


def fund_programme(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    sponsor = ctx.custodial(req["sponsor"])
    return Call(
        sponsor,
        ctx.devices.fund_call(req["programme"], req["amount_fen"]),
        allowance=Allowance(sponsor.address, ctx.devices.address, req["amount_fen"]),
    )


def close_programme(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.devices.close_programme_call(req["programme"]))


def payout(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.devices.payout_call(
        req["programme"], req["to"], req["amount_fen"], recycling_ref(req["reference"])
    )
    return Call(ctx.operator, fn)


BUILDERS: dict[str, Builder] = {
    "devices.preauth": preauth,
    "devices.complete": complete,
    "devices.release": release,
    "devices.programme.create": create_programme,
    "devices.programme.fund": fund_programme,
    "devices.programme.close": close_programme,
    "devices.payout": payout,
}
