"""The refunds family's operation builders: ``refunds.record`` (the operator records a payment as
the chain confirmed it) and ``refunds.refund`` (the merchant's key refunds part of it; the
contract pulls from the merchant's wallet on its allowance, which ``Operations`` makes sure of)."""

from __future__ import annotations

from typing import Any

from services.common.context import ServiceContext
from services.common.operations import Allowance, Builder, Call


def record(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``refunds.record``: signed by the operator (the contract's recorder)."""
    pid = bytes.fromhex(req["payment_id"][2:])
    fn = ctx.refunds.record_call(
        pid, req["merchant"], req["payer"], req["paid_fen"], req["voucher_fen"], req["voucher_payee"]
    )
    return Call(ctx.operator, fn)


def refund(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """``refunds.refund``: signed by the merchant's custodial key, on its allowance to the contract."""
    merchant = ctx.custodial(req["merchant"])
    pid = bytes.fromhex(req["payment_id"][2:])
    fn = ctx.refunds.refund_call(pid, req["amount_fen"], bytes.fromhex(req["ref"][2:]))
    return Call(merchant, fn, allowance=Allowance(merchant.address, ctx.refunds.address, req["amount_fen"]))


BUILDERS: dict[str, Builder] = {"refunds.record": record, "refunds.refund": refund}
