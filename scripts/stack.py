"""A private stack for scripts (benchmarks, the demo): a local anvil node (the default node of
`make run`, here without a state file), a deployment, the operator service in its own process and
its database, each started on free ports and stopped afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from chain.processes import anvil_cmd, free_port, running, wait_for_http, wait_for_rpc

ROOT = Path(__file__).resolve().parent.parent


def sqlite_with_operator_key(path: Path, label: str) -> tuple[str, str]:
    """A new SQLite database at ``path``, migrated, holding one operator API key (``label``): its
    URL and the key (shown once), for a script that serves a service in its own process."""
    from services.common.db import Database, upgrade
    from services.common.keys import Role, create_key

    url = f"sqlite:///{path}"
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        _, key = create_key(s, Role.OPERATOR, label)
        s.commit()
    db.dispose()
    return url, key


def tail_of(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def local_node(tmp: Path, pids: list[int] | None = None) -> Iterator[str]:
    """anvil on a free port (its output in ``tmp/node.log``); yields its URL. Its process id is
    appended to ``pids`` when given (a benchmark measures the stack's memory)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "node.log"
    with running(anvil_cmd(port), log=log) as proc:
        if pids is not None:
            pids.append(proc.pid)
        try:
            wait_for_rpc(url, proc, timeout_s=90)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{tail_of(log)}") from None
        yield url


def deploy(rpc: str, manifest: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chain", "deploy", "--rpc", rpc, "--out", str(manifest)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"deploy failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@contextmanager
def operator_service(env: dict[str, str], log: Path, pids: list[int] | None = None) -> Iterator[str]:
    """``python -m services.operator serve``; yields its URL once /healthz answers (its process id
    appended to ``pids`` when given)."""
    url = f"http://127.0.0.1:{env['XCPAY_API_PORT']}"
    with running([sys.executable, "-m", "services.operator", "serve"], env, log=log) as proc:
        if pids is not None:
            pids.append(proc.pid)
        try:
            wait_for_http(f"{url}/healthz", proc)
        except RuntimeError as exc:
            raise RuntimeError(f"the operator service: {exc}:\n{tail_of(log)}") from None
        yield url


def service_env(rpc: str, manifest: Path, database_url: str, api_port: int, admin_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XCPAY_")}
    env.update(
        XCPAY_PROFILE="local",
        XCPAY_RPC_URL=rpc,
        XCPAY_MANIFEST=str(manifest),
        XCPAY_DATABASE_URL=database_url,
        XCPAY_ADMIN_API_KEY=admin_key,
        XCPAY_API_PORT=str(api_port),
    )
    return env


@contextmanager
def database(url: str | None, tmp: Path) -> Iterator[str]:
    """The service's database for this run (see the module docstring); yields its URL."""
    if url is None:
        yield f"sqlite:///{tmp / 'operator.db'}"
        return
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and Path(parsed.database).exists():
            raise SystemExit(f"{parsed.database} exists: it belongs to another chain; name a new file")
        yield url
        return
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit(f"unsupported database {parsed.get_backend_name()!r}: sqlite or postgresql")
    name = f"xcpay_bench_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@contextmanager
def gateway_service(env: dict[str, str], log: Path) -> Iterator[str]:
    """``python -m services.gateway serve`` on ``XCPAY_GATEWAY_PORT``; yields its URL once it answers."""
    url = f"http://127.0.0.1:{env['XCPAY_GATEWAY_PORT']}"
    with running([sys.executable, "-m", "services.gateway", "serve"], env, log=log) as proc:
        try:
            wait_for_http(f"{url}/healthz", proc)
        except RuntimeError as exc:
            raise RuntimeError(f"the gateway: {exc}:\n{tail_of(log)}") from None
        yield url
