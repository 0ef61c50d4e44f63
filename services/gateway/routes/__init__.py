"""One module per resource; money-moving routes register their operation builder beside them.

Importing this package registers every gateway builder (the reconciler needs them)."""

from services.gateway.routes import access, cards, health, offline_payments, quickpay, terminals

ROUTERS = [m.router for m in (health, terminals, offline_payments, cards, access, quickpay)]
