"""The banking family (two-tier operation, issue 24): the central bank's reserves for the operator
institutions, each institution's simulated core-banking ledger (double-entry, ``models``), bank
accounts linked to wallets, and top-ups from / redemptions to a bank account as one idempotent
operation with its chain leg (``service``), finished or compensated by a reconciler. Routes in
``routes``, builders in ``builders``; the typed client is :class:`chain.clients.tiers.InstitutionsClient`."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.operator.families.banking import builders, routes

MODULE = FamilyModule(name="banking", routers=routes.ROUTERS, builders=builders.BUILDERS)
