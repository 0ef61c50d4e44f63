"""One module per resource; money-moving routes register their operation builder beside them.

Importing this package registers every builder (the reconciler needs them, HTTP or not).
"""

from services.operator.routes import (
    api_keys,
    audit,
    collectives,
    dashboard,
    health,
    operations,
    vouchers,
    webhooks,
)

ROUTERS = [
    m.router
    for m in (
        health,
        api_keys,
        vouchers,
        collectives,
        audit,
        operations,
        dashboard,
        webhooks,
    )
]
