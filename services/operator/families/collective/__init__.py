"""The collective family (农村集体“三资”监管, village three-assets fund supervision): the
``CollectiveFund`` contract's routes (``routes.py``), request and response models
(``schemas.py``), operation builders (``builders.py``) and logic (``service.py``); its typed
client is ``chain/clients/collective.py``."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.operator.families.collective import builders, routes

MODULE = FamilyModule(name="collective", routers=(routes.router,), builders=builders.BUILDERS)
