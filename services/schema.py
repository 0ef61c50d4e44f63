"""Every table of the platform on one metadata: the shared ones (services/common/models.py) and
those each app and family owns (``services/<app>/models.py``, ``services/<app>/families/<name>/models.py``).
All are declared on the same ``Base``; importing this module loads them all, so the migrations
(services/common/migrations/env.py) and the migration-vs-models test compare the whole schema,
whichever app happens to be imported."""

from __future__ import annotations

import services.common.refunds
import services.gateway.families.devices.models
import services.gateway.families.hardwallet.models
import services.operator.families.banking.models
import services.operator.families.cash.models
import services.operator.families.disburse.models
import services.operator.families.holder.models
import services.operator.families.park.models
import services.operator.families.refunds.models
import services.operator.families.utilities.models
import services.operator.families.vouchers.models
import services.operator.models  # noqa: F401  (the imports above load the tables)
from services.common.models import Base

metadata = Base.metadata

__all__ = ["Base", "metadata"]
