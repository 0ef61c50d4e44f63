"""The hard-wallet gateway's FastAPI application: the shared shell (``services/common/shell.py``)
with the gateway's routes and families; its one worker finishes its pending operations.

The gateway shares the operator's backbone and, in a deployment, its database (API keys,
custodial wallets, operations and their idempotency keys, the audit log): ``make run`` starts
both on one database and one chain. It signs with a key of its own (``XCPAY_GATEWAY_KEYSTORE``;
development account 10 in the local profile), given the settlement contract's OPERATOR_ROLE at
deployment (card registration and loss reports need it) and its SETTLER_ROLE (uploads): the operator service
signs with another key, so neither waits for nor fights over the other's nonces. (A custodial
wallet's key may still be opened by both: chain's one nonce strategy, ``chain/sender.py``, signs
again when the other took the nonce.)
"""

from __future__ import annotations

from fastapi import FastAPI
from web3 import Web3

from services.common import shell
from services.common.context import ServiceContext
from services.common.operations import Operations
from services.gateway.settings import GatewaySettings

__all__ = ["GatewaySettings", "create_app", "spec"]


def spec() -> shell.AppSpec:
    """The gateway: its routes and families, signing with the gateway's key."""
    from services.gateway.families import MODULES
    from services.gateway.routes import ROUTERS  # importing them registers their builders

    return shell.AppSpec(
        name="gateway",
        title="xcpay hard-wallet gateway",
        description="Hard-wallet gateway of the xcpay platform: terminals upload offline card payments, "
        "cards are issued and loaded, doors ask for access, merchants pull quick-pay mandates. "
        "Amounts are integers in fen.",
        signer="gateway",
        routers=ROUTERS,
        modules=MODULES,
    )


def create_app(settings: GatewaySettings, *, w3: Web3 | None = None, background: bool = True) -> FastAPI:
    """Build the app. ``w3`` lets tests pass an in-process chain; otherwise ``settings.rpc_url``."""

    def parts(ctx: ServiceContext, ops: Operations) -> shell.Parts:
        # The reconciler finishes the gateway's own operations (the operator service indexes events).
        from services.gateway.families.devices.service import sweep_expired

        def expire_preauths() -> None:  # expired vending holds go back to their holders by themselves
            sweep_expired(ctx, ops)

        loop = shell.Periodic(
            "xcpay-gateway-background", settings.reconcile_interval_s, (ops.reconcile, expire_preauths)
        )
        return shell.Parts(workers=(loop,))

    return shell.create_app(spec(), settings, w3=w3, background=background, parts=parts)
