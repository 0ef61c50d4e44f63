"""The refunds family's operation builders: ``refunds.record`` (the operator records a payment as
the chain confirmed it) and ``refunds.refund`` (the merchant's key refunds part of it), shared with
the gateway (services/common/refunds.py)."""

from __future__ import annotations

from services.common.operations import Builder
from services.common.refunds import BUILDERS as SHARED

BUILDERS: dict[str, Builder] = dict(SHARED)
