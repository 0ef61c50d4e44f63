"""The closed-loop park (黄桥未来工场, 园区"收、管、付"闭环, issue 23): a park set up from one
declarative file (tenants with payer and staff wallets, merchants, gateway terminals and door
points, the fee wallet) and its report: how much of the wages paid into staff wallets was spent
at the park's merchants (the retention ratio), by tenant and category, and the fee income.

No contract and no builders of its own: payroll runs through the disburse family, lunch through
payment codes or cards, fees through QuickPay or transfers; the report reads their events."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.operator.families.park import routes

MODULE = FamilyModule(name="park", routers=(routes.router,), builders={})
