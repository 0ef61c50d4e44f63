"""The disbursement family (payroll and subsidies) of the operator API: ``routes`` (thin HTTP),
``schemas``, ``builders`` (operation kind -> contract call), ``service`` (records, reports, the
steps of each action), ``rows`` (parsing and checking payroll rows) and ``runner`` (paying
approved batches in the background)."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.operator.families.disburse import builders, routes

MODULE = FamilyModule(name="disburse", routers=(routes.router,), builders=builders.BUILDERS)
