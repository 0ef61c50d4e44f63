"""The refunds family's operation builders: ``refunds.record`` (the operator records a payment as
the chain confirmed it) and ``refunds.refund`` (the merchant's key refunds part of it), shared with
the gateway (services/common/refunds.py); and the spot-check robot's probe card (spotcheck.py):
``spotcheck.card.register`` and ``spotcheck.card.load`` (the operator issues and loads the robot's
card, as the gateway does a holder's: the operator key holds the settlement contract's
OPERATOR_ROLE) and ``spotcheck.settle`` (a terminal's probe payment, settled like a terminal's
upload). The same calls as the gateway's kinds, under kinds of their own so that the operator's
process, not the gateway's, finishes them."""

from __future__ import annotations

from services.common.operations import Builder
from services.common.refunds import BUILDERS as SHARED
from services.gateway.families.hardwallet import builders as hardwallet

BUILDERS: dict[str, Builder] = {
    **SHARED,
    "spotcheck.card.register": hardwallet.register_card,
    "spotcheck.card.load": hardwallet.load_card,
    "spotcheck.settle": hardwallet.settle,
}
