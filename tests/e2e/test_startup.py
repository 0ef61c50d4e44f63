"""The stack starts reliably: the operator and the gateway start side by side on one fresh database
(as `make run` starts them) and both bind it to the chain; whichever records the binding first,
neither stops."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from chain.backends import in_process
from chain.compiler import CompileResult
from chain.deploy import deploy_all
from chain.processes import anvil_cmd, free_port, running, wait_for_http, wait_for_rpc
from services.common.context import ChainMismatch, ServiceContext
from services.common.db import Database, upgrade
from services.common.models import Meta
from services.common.settings import Settings
from tests.databases import BACKENDS, fresh_database
from tests.e2e.test_operator_processes import deploy, service_env

# Start-ups per case. The race itself (the other service records the binding between this one's
# read and write) is tested exactly above, in-process on both databases, in `make test`; the rounds
# here show the real processes come up side by side: three on SQLite (`make run`'s default) in
# `make test`, ten on SQLite and five on PostgreSQL, slower to set up, in `make audit` (`long`).
ROUNDS = {"sqlite": 3, "sqlite-long": 10, "postgresql": 5}


def _context(kind: str, tmp: Path, compiled: CompileResult) -> Iterator[ServiceContext]:
    w3 = in_process()
    deploy_all(w3, compiled=compiled).save(tmp / "manifest.json")
    with fresh_database(kind, tmp) as url:
        upgrade(url)
        settings = Settings(database_url=url, manifest=tmp / "manifest.json", rpc_url="in-process")
        ctx = ServiceContext.build(settings, w3=w3)
        yield ctx
        ctx.db.dispose()


@pytest.fixture(params=BACKENDS)
def ctx(request: pytest.FixtureRequest, tmp_path: Path, compiled: CompileResult) -> Iterator[ServiceContext]:
    yield from _context(str(request.param), tmp_path, compiled)


def other_service_binds_after_our_read(ctx: ServiceContext, value: str) -> list[str]:
    """Records ``value`` as the binding from another connection right after this service's first
    read of the meta table: the other service winning the race at the worst moment."""
    raced: list[str] = []
    other = Database(ctx.db.url)

    def after_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not raced and statement.lstrip().upper().startswith("SELECT") and "meta" in statement:
            raced.append(statement)
            with other.session() as s:
                s.add(Meta(key="chain", value=value))
                s.commit()

    event.listen(ctx.db.engine, "after_cursor_execute", after_execute)
    return raced


def recorded_binding(ctx: ServiceContext) -> str | None:
    with ctx.db.session() as s:
        return s.scalar(select(Meta.value).where(Meta.key == "chain"))


def test_a_binding_recorded_by_the_other_service_meanwhile_is_accepted(ctx: ServiceContext) -> None:
    raced = other_service_binds_after_our_read(ctx, ctx.chain_binding())
    ctx.bind_database_to_chain()
    assert raced, "the other service did not get in between"
    assert recorded_binding(ctx) == ctx.chain_binding()


def test_a_binding_to_another_chain_recorded_meanwhile_is_refused(ctx: ServiceContext) -> None:
    elsewhere = "1:0xabc:0x0000000000000000000000000000000000000001"
    raced = other_service_binds_after_our_read(ctx, elsewhere)
    with pytest.raises(ChainMismatch, match="belongs to chain 1:0xabc"):
        ctx.bind_database_to_chain()
    assert raced and recorded_binding(ctx) == elsewhere


@pytest.fixture(scope="module")
def chain_with_contracts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("startup")
    port = free_port()
    rpc = f"http://127.0.0.1:{port}"
    with running(anvil_cmd(port)) as node:
        wait_for_rpc(rpc, node)
        deploy(rpc, tmp)
        yield rpc, tmp / "manifest.json"


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(k, marks=[pytest.mark.long] if k != "sqlite" else [])
        for k in ("sqlite", "sqlite-long", *(k for k in BACKENDS if k != "sqlite"))
    ],
)
def test_operator_and_gateway_start_together_on_a_fresh_database_every_time(
    case: str, chain_with_contracts: tuple[str, Path], tmp_path: Path
) -> None:
    rpc, manifest = chain_with_contracts
    kind = case.removesuffix("-long")
    for round_ in range(ROUNDS[case]):
        tmp = tmp_path / f"round-{round_}"
        tmp.mkdir()
        with fresh_database(kind, tmp) as db_url:
            env = service_env(tmp, rpc, free_port())
            env.update(XCPAY_MANIFEST=str(manifest), XCPAY_DATABASE_URL=db_url)
            upgrade(db_url)  # `make run` migrates once, then starts both services
            operator_log, gateway_log = tmp / "operator.log", tmp / "gateway.log"
            operator = [sys.executable, "-m", "services.operator", "serve"]
            gateway = [sys.executable, "-m", "services.gateway", "serve"]
            with running(operator, env, log=operator_log) as op, running(gateway, env, log=gateway_log) as gw:
                for url, proc, log in (
                    (f"http://127.0.0.1:{env['XCPAY_API_PORT']}", op, operator_log),
                    (f"http://127.0.0.1:{env['XCPAY_GATEWAY_PORT']}", gw, gateway_log),
                ):
                    try:
                        wait_for_http(f"{url}/healthz", proc)
                    except RuntimeError as exc:
                        pytest.fail(f"round {round_}: {exc}\n{log.read_text(errors='replace')[-3000:]}")
            db = Database(db_url)
            with db.session() as s:
                assert s.scalar(select(Meta.value).where(Meta.key == "chain")) is not None
            db.dispose()
