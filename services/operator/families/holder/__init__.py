"""The holder family: a resident's own channel. A holder signs in with their wallet (Sign-In with
Ethereum, EIP-4361) and gets a short-lived key of role ``holder`` bound to that wallet (custodial
holders get one from the operator); with it they read their balance and what is left of today's
limits, the history of every movement, their quick-pay mandates and prepaid packages, and revoke a
mandate. Every holder route answers for the key's own wallet only."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.operator.families.holder import builders, routes

MODULE = FamilyModule(name="holder", routers=(routes.router,), builders=builders.BUILDERS)
