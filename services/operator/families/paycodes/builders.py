"""The paycodes family's operation builder (``code.pay``): the stored payment of a code, in the
payer's form, as who signs which call; a payer-signed transaction is relayed as it is.

Data-to-call: the voucher form states the allowance its spend needs as :class:`Allowance`, which
``Operations`` makes sure of. The card form's ``settle`` and the voucher form's ``spend`` are calls
of the hard-wallet and voucher families' contracts, built by their typed clients."""

from __future__ import annotations

from typing import Any

from chain.clients.hardwallet import SignedPayment
from services.common.context import ServiceContext
from services.common.operations import Builder, Call, Relay
from services.operator.families.vouchers.builders import spend_allowance


def pay(ctx: ServiceContext, req: dict[str, Any]) -> Call | Relay:
    """``code.pay``: by form (see ``service.pay``)."""
    if req["form"] == "signed-transaction":
        return Relay(bytes.fromhex(req["raw"][2:]))
    if req["form"] == "card":  # the settlement contract pays the merchant from the card's reserve
        return Call(ctx.operator, ctx.hardwallet.settle_call([SignedPayment.from_json(req["payment"])]))
    if req["form"] == "voucher":  # the programme pays its share, the payer's wallet the rest
        holder = ctx.custodial(req["payer"])
        fn = ctx.vouchers.spend_call(req["programme_id"], req["merchant"], req["amount_fen"])
        allowance = spend_allowance(ctx, req["programme_id"], holder.address, req["amount_fen"])
        return Call(holder, fn, allowance=allowance)
    return Call(ctx.custodial(req["payer"]), ctx.cash.transfer_call(req["merchant"], req["amount_fen"]))


BUILDERS: dict[str, Builder] = {"code.pay": pay}
