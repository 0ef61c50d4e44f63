"""The unattended-devices family of the gateway (issue 23; contracts/devices/DevicePayments.sol):
vending machines pre-authorise a card's maximum and complete with the real amount or release it;
recycling bins pay people from an operator's programme budget. The machines and bins are terminals
(``/v1/terminals``) and act with their terminal keys.

- ``routes.py``: thin routes; ``schemas.py``: their models; ``service.py``: what they call;
- ``builders.py``: ``BUILDERS``, the operation kinds ``devices.*`` as pure data-to-call;
- ``models.py``: the pre-authorisations and payouts the gateway uploaded (offline duplicates);
- ``panel.py``: the dashboard section (the contract's totals).
"""

from __future__ import annotations

from services.common.families import FamilyModule
from services.gateway.families.devices import builders, routes

MODULE = FamilyModule(name="devices", routers=(routes.router,), builders=builders.BUILDERS)
