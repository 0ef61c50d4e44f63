"""The operator API's families, each a folder of its own (see ``services/common/families.py``)."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.operator.families import collective, disburse, prepaid, vouchers

MODULES: tuple[FamilyModule, ...] = (prepaid.MODULE, disburse.MODULE, vouchers.MODULE, collective.MODULE)
