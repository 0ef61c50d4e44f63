"""The hard-wallet gateway's FastAPI application.

The gateway shares the operator's backbone and, in a deployment, its database (API keys,
custodial wallets, operations and their idempotency keys, the audit log): ``make run`` starts
both on one database and one chain. It signs with a key of its own (``XCPAY_GATEWAY_KEYSTORE``;
development account 10 in the local profile), given the settlement contract's OPERATOR_ROLE at
deployment (card registration and loss reports need it; anyone may settle): the operator service
signs with another key, so neither waits for nor fights over the other's nonces.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from pydantic import Field, model_validator
from web3 import Web3

from services.common import docs, guard, problems
from services.common.context import ServiceContext
from services.common.families import merged_builders
from services.common.keys import authenticate
from services.common.models import ApiKey
from services.common.operations import Operations
from services.common.settings import Settings
from services.gateway.families import MODULES
from services.gateway.routes import ROUTERS

log = logging.getLogger("xcpay.gateway")


class GatewaySettings(Settings):
    """The common settings plus the gateway's own (same ``XCPAY_`` prefix)."""

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8001, ge=1, le=65535)
    # How long a door reader's challenge may be answered (it is also single-use).
    access_challenge_ttl_s: int = Field(default=30, ge=1, le=300)
    # The gateway's own signing key (an Ethereum v3 keystore and its password, or a file holding
    # it); development account 10 in the local profile.
    gateway_keystore: Path | None = None
    gateway_password: str | None = None
    gateway_password_file: Path | None = None

    @model_validator(mode="after")
    def _refuse_a_missing_gateway_key(self) -> GatewaySettings:
        if self.profile == "local":
            return self
        refusal = "refusing to start in the production profile: "
        if self.gateway_keystore is None:
            raise ValueError(refusal + "XCPAY_GATEWAY_KEYSTORE must point to an encrypted keystore")
        if not (self.gateway_password or self.gateway_password_file):
            raise ValueError(refusal + "XCPAY_GATEWAY_PASSWORD or _PASSWORD_FILE must be set")
        return self


class Background:
    """Runs the reconciler periodically in one daemon thread (the operator service indexes events)."""

    def __init__(self, ops: Operations, settings: Settings) -> None:
        self.ops, self.settings = ops, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="xcpay-gateway-background", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.reconcile_interval_s):
            try:
                self.ops.reconcile()
            except Exception as exc:  # the node may be down; try again next round
                log.debug("background reconcile: %s", exc)


def create_app(settings: GatewaySettings, *, w3: Web3 | None = None, background: bool = True) -> FastAPI:
    """Build the app. ``w3`` lets tests pass an in-process chain; otherwise ``settings.rpc_url``."""
    ctx = ServiceContext.build(settings, w3=w3, signer="gateway")
    ops = Operations(ctx, merged_builders(MODULES))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.bind_database_to_chain()
        try:
            counts = ops.reconcile()
            if any(counts.values()):
                log.warning("reconciled pending operations on start: %s", counts)
        except Exception as exc:
            log.warning("reconcile on start failed (node down?): %s", exc)
        loop = Background(ops, settings) if background else None
        if loop:
            loop.start()
        try:
            yield
        finally:
            if loop:
                loop.stop()
            ctx.db.dispose()

    app = FastAPI(
        title="xcpay hard-wallet gateway",
        version="0.1.0",
        description="Hard-wallet gateway of the xcpay platform: terminals upload offline card payments, "
        "cards are issued and loaded, doors ask for access, merchants pull quick-pay mandates. "
        "Amounts are integers in fen.",
        lifespan=lifespan,
        docs_url=None,  # served from local assets by services.common.docs (offline)
        redoc_url=None,  # ReDoc loads its script and fonts from CDNs
    )
    app.state.ctx = ctx
    app.state.ops = ops
    app.state.settings = settings
    problems.install(app)
    docs.install(app)
    for router in ROUTERS:
        app.include_router(router)
    for module in MODULES:
        for router in module.routers:
            app.include_router(router)

    def check_key(presented: str) -> ApiKey | None:
        with ctx.db.session() as s:
            return authenticate(s, presented)

    guard.install(app, settings, check_key)
    return app
