"""The operator API's families, each a folder of its own (see ``services/common/families.py``)."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.operator.families import (
    banking,
    cash,
    collective,
    disburse,
    holder,
    park,
    paycodes,
    prepaid,
    refunds,
    utilities,
    vouchers,
)

MODULES: tuple[FamilyModule, ...] = (
    cash.MODULE,
    prepaid.MODULE,
    disburse.MODULE,
    vouchers.MODULE,
    collective.MODULE,
    paycodes.MODULE,
    holder.MODULE,
    refunds.MODULE,
    utilities.MODULE,
    banking.MODULE,
    park.MODULE,
)
