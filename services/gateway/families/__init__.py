"""The gateway's families, each a folder of its own (see ``services/common/families.py``)."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.gateway.families import devices, hardwallet

MODULES: tuple[FamilyModule, ...] = (hardwallet.MODULE, devices.MODULE)
