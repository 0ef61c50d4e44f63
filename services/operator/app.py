"""The operator API's FastAPI application: the shared shell (``services/common/shell.py``) with
the operator's routes and families, and its own workers: the event indexer, the disbursement
runner, the webhook deliverer and the auditor's background reconciliation."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from web3 import Web3

from services.common import shell
from services.common.context import ServiceContext
from services.common.operations import Operations
from services.operator.settings import OperatorSettings

log = logging.getLogger("xcpay.operator")


def spec() -> shell.AppSpec:
    """The operator service: its routes and families, signing with the operator key."""
    from services.operator.families import MODULES
    from services.operator.routes import ROUTERS

    return shell.AppSpec(
        name="operator",
        title="xcpay operator API",
        description="Operator API of the xcpay programmable-payments platform. Amounts are integers in fen.",
        signer="operator",
        routers=ROUTERS,
        modules=MODULES,
    )


def create_app(settings: OperatorSettings, *, w3: Web3 | None = None, background: bool = True) -> FastAPI:
    """Build the app. ``w3`` lets tests pass an in-process chain; otherwise ``settings.rpc_url``."""
    if not isinstance(settings, OperatorSettings):  # its own fields would be missing, not defaulted
        raise TypeError("the operator service takes OperatorSettings (services/operator/settings.py)")
    return shell.create_app(spec(), settings, w3=w3, background=background, parts=_parts(settings))


def _parts(settings: OperatorSettings) -> Any:
    def parts(ctx: ServiceContext, ops: Operations) -> shell.Parts:
        from services.common.indexer import Indexer, insert_events
        from services.common.keys import ensure_admin
        from services.common.webhooks import Deliverer
        from services.operator.families.banking.service import Transfers
        from services.operator.families.cash.models import record_proposals
        from services.operator.families.disburse.runner import Runner

        indexer = Indexer(ctx)
        ops.on_confirmed = insert_events  # its own transactions' events, decoded once, stored in bulk
        ops.on_confirmed_op = record_proposals  # court orders' and recoveries' makers (migration 0017)
        runner = Runner(ops)
        # Top-ups and redemptions through the bank (two tiers): finished or compensated on start
        # (after the pending operations) and periodically.
        transfers = Transfers(ops)
        # Sends the webhook outbox (the gateway's events too: they are in the shared database).
        deliverer = Deliverer(ctx.db, settings)

        def bootstrap() -> None:
            with ctx.db.session() as s:
                generated = ensure_admin(s, settings.admin_api_key)
            if generated:
                print(f"bootstrap admin API key (shown once, stored hashed): {generated}", flush=True)

        def autodebits() -> None:  # utility bills due under a resident's mandate (idempotent)
            from services.operator.families.utilities.service import run_due

            run_due(ctx, ops)

        workers: list[shell.Worker] = [
            shell.Periodic(
                "xcpay-background",
                min(settings.reconcile_interval_s, settings.index_interval_s),
                (ops.reconcile, indexer.run_once, runner.resume, autodebits, transfers.reconcile),
            ),
            deliverer,
        ]
        if settings.reconciliation_refresh > 0:
            workers.append(
                shell.Periodic(
                    "xcpay-reconciliation",
                    settings.reconciliation_refresh,
                    (_refresh(ctx, indexer),),
                    level=logging.WARNING,
                    join_timeout_s=30,
                )
            )
        if settings.spot_check_interval_s > 0:
            from services.operator.families.refunds import spotcheck

            workers.append(
                shell.Periodic(
                    "xcpay-spot-check",
                    settings.spot_check_interval_s,
                    (lambda: spotcheck.run(ctx, ops),),
                    level=logging.WARNING,
                    join_timeout_s=30,
                )
            )
        return shell.Parts(
            state={"indexer": indexer, "runner": runner, "webhooks": deliverer, "banking": transfers},
            bootstrap=bootstrap,
            workers=workers,
            started=lambda: _resume(runner, transfers),
            closing=deliverer.close,
        )

    return parts


def _resume(runner: Any, transfers: Any) -> None:
    """On start: disbursements a previous run left executing, then bank transfers left between
    their two legs (each finished or compensated; the node may be away: the worker retries)."""
    runner.resume()
    try:
        counts = transfers.reconcile_all()
        if counts:
            logging.getLogger("xcpay.operator").warning("bank transfers on start: %s", counts)
    except Exception as exc:
        logging.getLogger("xcpay.operator").warning("bank transfers on start failed: %s", exc)


def _refresh(ctx: ServiceContext, indexer: Any) -> Any:
    """The auditor's reconciliation kept fresh: the event index catches up and an incremental
    reconciliation runs (a few node round trips when little happened), so GET
    /v1/audit/reconciliation/latest answers at once. A worker of its own: a replay from
    deployment (first run, a reorganised chain) must not hold up pending operations."""

    def reconciliation() -> None:
        from services.operator.reconciliation import reconcile

        indexer.catch_up()
        report = reconcile(ctx)
        if report.verdict != "clean":
            log.warning(
                "reconciliation up to block %s: %d discrepancies", report.to_block, len(report.discrepancies)
            )

    return reconciliation
