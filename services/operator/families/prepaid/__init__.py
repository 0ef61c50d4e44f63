"""The prepaid family (prepaid-fund supervision) of the operator API: ``routes`` (thin HTTP),
``schemas``, ``builders`` (operation kind -> PrepaidEscrow call) and ``service`` (who may see a
package, the steps of each action, the reads)."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.operator.families.prepaid import builders, routes

MODULE = FamilyModule(name="prepaid", routers=(routes.router,), builders=builders.BUILDERS)
