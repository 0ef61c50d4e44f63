"""The operator API's FastAPI application."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from web3 import Web3

from services.common import docs, guard, problems
from services.common.context import ServiceContext
from services.common.families import merged_builders
from services.common.indexer import Indexer, insert_events
from services.common.keys import authenticate, ensure_admin
from services.common.models import ApiKey
from services.common.operations import Operations
from services.common.settings import Settings
from services.common.webhooks import Deliverer
from services.operator.families import MODULES
from services.operator.families.disburse.runner import Runner
from services.operator.routes import ROUTERS

log = logging.getLogger("xcpay.operator")


class Background:
    """Runs the reconciler, the event indexer and the disbursement resumer periodically in one
    daemon thread."""

    def __init__(self, ops: Operations, indexer: Indexer, runner: Runner, settings: Settings) -> None:
        self.ops, self.indexer, self.runner, self.settings = ops, indexer, runner, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="xcpay-background", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        interval = min(self.settings.reconcile_interval_s, self.settings.index_interval_s)
        while not self._stop.wait(interval):
            for job in (self.ops.reconcile, self.indexer.run_once, self.runner.resume):
                try:
                    job()
                except Exception as exc:  # the node may be down; try again next round
                    log.debug("background %s: %s", job.__name__, exc)


class ReconciliationRefresh:
    """Keeps the auditor's reconciliation fresh in its own daemon thread: every ``interval_s`` the
    event index catches up and an incremental reconciliation runs (a few node round trips when
    little happened), so GET /v1/audit/reconciliation/latest answers at once. Its own thread: a
    replay from deployment (first run, a reorganised chain) must not hold up pending operations."""

    def __init__(self, ctx: ServiceContext, indexer: Indexer, interval_s: float) -> None:
        self.ctx, self.indexer, self.interval_s = ctx, indexer, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="xcpay-reconciliation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        from services.operator.reconciliation import reconcile

        while not self._stop.wait(self.interval_s):
            try:
                self.indexer.catch_up()
                report = reconcile(self.ctx)
                if report.verdict != "clean":
                    log.warning(
                        "reconciliation up to block %s: %d discrepancies",
                        report.to_block,
                        len(report.discrepancies),
                    )
            except Exception as exc:  # the node may be down; try again next round
                log.warning("background reconciliation: %s", exc)


def create_app(settings: Settings, *, w3: Web3 | None = None, background: bool = True) -> FastAPI:
    """Build the app. ``w3`` lets tests pass an in-process chain; otherwise ``settings.rpc_url``."""
    ctx = ServiceContext.build(settings, w3=w3)
    ops = Operations(ctx, merged_builders(MODULES))
    indexer = Indexer(ctx)
    ops.on_confirmed = insert_events  # its own transactions' events, decoded once, stored in bulk
    runner = Runner(ops)
    # Sends the webhook outbox (the gateway's events too: they are in the shared database).
    deliverer = Deliverer(ctx.db, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.bind_database_to_chain()
        with ctx.db.session() as s:
            generated = ensure_admin(s, settings.admin_api_key)
        if generated:
            print(f"bootstrap admin API key (shown once, stored hashed): {generated}", flush=True)
        try:
            counts = ops.reconcile()  # finish what a previous run left pending, before serving
            if any(counts.values()):
                log.warning("reconciled pending operations on start: %s", counts)
        except Exception as exc:
            log.warning("reconcile on start failed (node down?): %s", exc)
        loop = Background(ops, indexer, runner, settings) if background else None
        if loop:
            loop.start()
            deliverer.start()
        refresh = settings.reconciliation_refresh
        audit = ReconciliationRefresh(ctx, indexer, refresh) if background and refresh > 0 else None
        if audit:
            audit.start()
        runner.resume()  # disbursements a previous run left executing
        try:
            yield
        finally:
            if audit:
                audit.stop()
            if loop:
                loop.stop()
            deliverer.close()
            ctx.db.dispose()

    app = FastAPI(
        title="xcpay operator API",
        version="0.1.0",
        description="Operator API of the xcpay programmable-payments platform. Amounts are integers in fen.",
        lifespan=lifespan,
        docs_url=None,  # served from local assets by services.common.docs (offline)
        redoc_url=None,  # ReDoc loads its script and fonts from CDNs
    )
    app.state.ctx = ctx
    app.state.ops = ops
    app.state.indexer = indexer
    app.state.runner = runner
    app.state.webhooks = deliverer
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
