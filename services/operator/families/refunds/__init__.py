"""The refunds family (issue 23, merchants' everyday needs): refunds of ordinary payments
(``MerchantRefunds`` on chain), daily merchant statements and settlement files, and the spot-check
robot (抽检). Routes in ``routes``, logic in ``service``, ``statements`` and ``spotcheck``."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.operator.families.refunds import builders, routes

MODULE = FamilyModule(name="refunds", routers=(routes.router,), builders=builders.BUILDERS)
