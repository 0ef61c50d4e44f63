"""One module per resource; money-moving routes register their operation builder beside them.

Importing this package registers every builder (the reconciler needs them, HTTP or not).
"""

from services.operator.routes import (
    api_keys,
    audit,
    cash,
    collectives,
    dashboard,
    health,
    operations,
    payment_codes,
    regulator,
    vouchers,
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
        vouchers,
        collectives,
        payment_codes,
        audit,
        operations,
        dashboard,
        webhooks,
    )
]
