"""One module per resource; money-moving routes register their operation builder beside them.

Importing this package registers every builder (the reconciler needs them, HTTP or not).
"""

from services.operator.routes import (
    api_keys,
    audit,
    cash,
    dashboard,
    health,
    operations,
    payment_codes,
    regulator,
    wallets,
    webhooks,
)

ROUTERS = [
    m.router
    for m in (
        health,
        api_keys,
        wallets,
        cash,
        regulator,
        payment_codes,
        audit,
        operations,
        dashboard,
        webhooks,
    )
]
