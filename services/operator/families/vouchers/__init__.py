"""The vouchers family (消费红包 / 工会福利, consumption vouchers and union welfare): the
``VoucherProgrammes`` contract's routes (``routes.py``), request and response models
(``schemas.py``), operation builders (``builders.py``) and logic (``service.py``); its typed
client is ``chain/clients/vouchers.py``."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.operator.families.vouchers import builders, routes

MODULE = FamilyModule(name="vouchers", routers=(routes.router,), builders=builders.BUILDERS)
