"""The hard-wallet family's routes, one module per resource (each thin: validate, authorise,
call ``service``, answer). ``ROUTERS`` is in the order the app includes them."""

from __future__ import annotations

from services.gateway.families.hardwallet.routes import (
    access,
    cards,
    offline_payments,
    purses,
    quickpay,
    refunds,
    terminals,
)

ROUTERS = tuple(m.router for m in (terminals, offline_payments, cards, purses, access, quickpay, refunds))
