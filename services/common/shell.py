"""The one shell both services run in: how an app is assembled, started, stopped and commanded.

An app (``services/operator/app.py``, ``services/gateway/app.py``) names what is its own: its
title, its settings class, its signing key, its platform routers and families, and its extras
(the operator's event indexer, disbursement runner and webhook deliverer) through
:class:`Parts`. Everything else is here, once:

- :func:`create_app`: the service context and ``Operations`` (the families' builder tables
  merged), the FastAPI application with the problem handlers, the offline docs and the guard;
- the lifespan: bind the database to its chain, the app's bootstrap, finish what a previous run
  left pending, start the background workers; on shutdown stop them and release the database;
- :func:`cli`: the verbs ``serve``, ``migrate``, ``finish-pending`` (and ``reconcile`` where the
  app has one) behind ``python -m services.<app>`` and the ``xcpay-<app>`` console scripts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import APIRouter, Depends, FastAPI
from web3 import Web3

from services.common.settings import Settings

log = logging.getLogger("xcpay.shell")


class Worker(Protocol):
    """A background worker of an app: started after the first reconcile, stopped on shutdown."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Periodic:
    """Runs ``jobs`` every ``interval_s`` in one daemon thread; a failing job (the node may be
    down) is logged at ``level`` and tried again next round, the others still run."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        jobs: Sequence[Callable[[], object]],
        *,
        level: int = logging.DEBUG,
        join_timeout_s: float = 10.0,
    ) -> None:
        self.name, self.interval_s, self.jobs = name, interval_s, tuple(jobs)
        self.level, self.join_timeout_s = level, join_timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (again, after ``stop``: an app's lifespan may run more than once)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout_s)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            for job in self.jobs:
                try:
                    job()
                except Exception as exc:
                    log.log(self.level, "%s: %s: %s", self.name, getattr(job, "__name__", job), exc)


@dataclass
class Parts:
    """What an app adds to the shell; every hook is optional.

    ``state``: set on ``app.state`` (tests and routes read them there). ``bootstrap``: runs once
    the database is bound to its chain, before pending operations are finished. ``workers``:
    started, in order, after that (only with ``background``), stopped in reverse order.
    ``started``: runs after the workers (the operator resumes disbursements there). ``closing``:
    runs on shutdown after the workers stopped, whether they ran or not.
    """

    state: Mapping[str, Any] = field(default_factory=dict)
    bootstrap: Callable[[], None] | None = None
    workers: Sequence[Worker] = ()
    started: Callable[[], None] | None = None
    closing: Callable[[], None] | None = None


@dataclass(frozen=True)
class AppSpec:
    """What an app is: its name (for the logs), its OpenAPI title and description, whose key it
    signs with (see ``ServiceContext.build``), its platform routers and its families."""

    name: str
    title: str
    description: str
    signer: str
    routers: Sequence[APIRouter]
    modules: Sequence[Any]  # services.common.families.FamilyModule


def create_app(
    spec: AppSpec,
    settings: Settings,
    *,
    w3: Web3 | None = None,
    background: bool = True,
    parts: Callable[[Any, Any], Parts] | None = None,
) -> FastAPI:
    """Build an app from ``spec``. ``w3`` lets tests pass an in-process chain, otherwise
    ``settings.rpc_url``; ``background=False`` starts no worker (the tests drive them).
    ``parts(ctx, ops)`` gives the app's own additions (see :class:`Parts`)."""
    from services.common import docs, guard, problems
    from services.common.context import ServiceContext
    from services.common.deps import refuse_undeclared_body
    from services.common.families import merged_builders
    from services.common.keys import authenticate
    from services.common.models import ApiKey
    from services.common.operations import Operations

    ctx = ServiceContext.build(settings, w3=w3, signer=spec.signer)
    ops = Operations(ctx, merged_builders(spec.modules))
    own = parts(ctx, ops) if parts is not None else Parts()
    app_log = logging.getLogger(f"xcpay.{spec.name}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.bind_database_to_chain()
        if own.bootstrap is not None:
            own.bootstrap()
        try:
            counts = ops.reconcile()  # finish what a previous run left pending, before serving
            if any(counts.values()):
                app_log.warning("reconciled pending operations on start: %s", counts)
        except Exception as exc:
            app_log.warning("reconcile on start failed (node down?): %s", exc)
        running: list[Worker] = []
        if background:
            for worker in own.workers:
                worker.start()
                running.append(worker)
        if own.started is not None:
            own.started()
        try:
            yield
        finally:
            for worker in reversed(running):
                worker.stop()
            if own.closing is not None:
                own.closing()
            ctx.db.dispose()

    app = FastAPI(
        title=spec.title,
        version="0.1.0",
        description=spec.description,
        lifespan=lifespan,
        docs_url=None,  # served from local assets by services.common.docs (offline)
        redoc_url=None,  # ReDoc loads its script and fonts from CDNs
        # on every route: a body-less action (revoke, pause, approve...) refuses a body that says
        # something (services/common/deps.py)
        dependencies=[Depends(refuse_undeclared_body)],
    )
    app.state.ctx = ctx
    app.state.ops = ops
    app.state.settings = settings
    for name, value in own.state.items():
        setattr(app.state, name, value)
    problems.install(app)
    docs.install(app)
    for router in spec.routers:
        app.include_router(router)
    for module in spec.modules:
        for router in module.routers:
            app.include_router(router)

    def check_key(presented: str) -> ApiKey | None:
        with ctx.db.session() as s:
            return authenticate(s, presented)

    guard.install(app, settings, check_key)
    return app


@dataclass(frozen=True)
class Cli:
    """An app's command line. Callables, so that nothing heavy is imported before the logs are
    configured and the settings read: ``settings()`` reads them from the environment (a
    ValueError is a configuration error, exit 2); ``spec()`` loads the app's routes and
    families; ``app(settings)`` builds the served app; ``address(settings)`` is (host, port).
    ``verbs``: the app's own verbs beside the common ones (the operator's ``reconcile``)."""

    prog: str
    serve_help: str
    settings: Callable[[], Settings]
    spec: Callable[[], AppSpec]
    app: Callable[[Any], FastAPI]
    address: Callable[[Any], tuple[str, int]]
    verbs: tuple[Verb, ...] = ()


@dataclass(frozen=True)
class Verb:
    """An app's own command: ``run(settings, args)`` returns the exit code; ``args`` adds its
    options to its parser. It runs after the database is migrated."""

    name: str
    help: str
    run: Callable[[Any, argparse.Namespace], int]
    args: Callable[[argparse.ArgumentParser], None] | None = None


def cli(command: Cli, argv: list[str] | None = None) -> int:
    """``serve`` (migrate, then serve until stopped) | ``migrate`` | ``finish-pending`` (finish
    pending operations once, print the counts) | the app's own verbs."""
    parser = argparse.ArgumentParser(prog=command.prog)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help=command.serve_help)
    sub.add_parser("migrate", help="upgrade the database schema to the newest migration")
    sub.add_parser("finish-pending", help="finish pending operations once and print the counts")
    for verb in command.verbs:
        parser_of_verb = sub.add_parser(verb.name, help=verb.help)
        if verb.args is not None:
            verb.args(parser_of_verb)
    args = parser.parse_args(argv)
    from services.common import logs

    logs.configure(logging.WARNING)  # JSON lines, with the request id

    try:
        settings = command.settings()
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    from services.common.db import upgrade

    upgrade(settings.database_url)
    if args.command == "migrate":
        return 0
    if args.command == "finish-pending":
        print(json.dumps(finish_pending(command.spec(), settings)))
        return 0
    for verb in command.verbs:
        if args.command == verb.name:
            return verb.run(settings, args)

    from chain.exceptions import ChainError
    from services.common.context import ChainMismatch
    from services.common.serve import serve

    try:
        app = command.app(settings)
        app.state.ctx.bind_database_to_chain()  # a clear error here rather than a failed startup
        host, port = command.address(settings)
        serve(app, settings, host, port)  # h11 with bounded headers, see serve.py
    except (ChainMismatch, ChainError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def finish_pending(spec: AppSpec, settings: Settings) -> dict[str, int]:
    """Finish the app's pending operations once (its own kinds only) and return the counts."""
    from services.common.context import ServiceContext
    from services.common.families import merged_builders
    from services.common.operations import Operations

    ctx = ServiceContext.build(settings, signer=spec.signer)
    return Operations(ctx, merged_builders(spec.modules)).reconcile()
