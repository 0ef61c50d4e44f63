"""The hard-wallet family of the gateway: terminals, offline card payments and their batch
settlement, cards, door access points and quick-pay mandates (contracts/hardwallet/:
``HardWalletSettlement`` and ``QuickPay``; typed clients in ``chain/clients/hardwallet.py``).

- ``routes/``: one thin module per resource (terminals, offline_payments, cards, access, quickpay);
- ``schemas.py``: their request and response models;
- ``service/``: what the routes call, one module per resource beside its route module;
- ``builders.py``: ``BUILDERS``, the operation kinds ``gateway.*`` as pure data-to-call.
"""

from __future__ import annotations

from services.common.families import FamilyModule
from services.gateway.families.hardwallet import builders, routes

MODULE = FamilyModule(name="hardwallet", routers=routes.ROUTERS, builders=builders.BUILDERS)
