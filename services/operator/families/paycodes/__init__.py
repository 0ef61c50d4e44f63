"""The paycodes family: merchant payment codes (strict EIP-681 URIs and QR images, static or one
bill), paid by a custodial wallet, a payer-signed transfer, a voucher or a card. Routes in
``routes``, logic in ``service``, the ``code.pay`` builder in ``builders``, models in ``schemas``."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.operator.families.paycodes import builders, routes

MODULE = FamilyModule(name="paycodes", routers=(routes.router,), builders=builders.BUILDERS)
