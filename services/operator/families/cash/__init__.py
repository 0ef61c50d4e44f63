"""The cash family: wallets (register, read, list), issuance, redemption and transfers of digital
cash, and the regulator's freeze and pause. Routes in ``routes``, logic in ``service``, operation
builders in ``builders``, models in ``schemas``; the typed client is
:class:`chain.clients.token.CashClient`."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.operator.families.cash import builders, routes

MODULE = FamilyModule(name="cash", routers=routes.ROUTERS, builders=builders.BUILDERS)
