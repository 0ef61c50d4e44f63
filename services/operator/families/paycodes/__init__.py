"""The paycodes family: merchant payment codes (strict EIP-681 URIs and QR images, static or one
bill), paid by a custodial wallet, a payer-signed transfer, a voucher or a card. Routes in
``routes``, logic in ``service``, the ``code.pay`` builder in ``builders``, models in ``schemas``."""

from __future__ import annotations

from chain.families import Panel
from services.common.families import FamilyModule
from services.operator.families.paycodes import builders, routes

# No contract of its own (codes are paid in digital cash), so its dashboard panel is declared here.
MODULE = FamilyModule(
    name="paycodes",
    routers=(routes.router,),
    builders=builders.BUILDERS,
    extra={"panel": Panel("payment_codes", "Payment codes", "DigitalCash")},
)
