"""The operator API served over real HTTP (uvicorn on a free port) against an in-process chain
and a real database (SQLite, and PostgreSQL when present)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from web3 import Web3

from chain.backends import in_process
from chain.compiler import CompileResult
from chain.deploy import deploy_all
from services.common.db import upgrade
from services.operator.app import create_app
from services.operator.settings import OperatorSettings
from tests.databases import BACKENDS, fresh_database
from tests.processes import free_port

ADMIN_KEY = "xcp_test_admin_key_0123456789abcdef"


@dataclass
class Api:
    """A running operator API and an HTTP client per role."""

    url: str
    w3: Web3
    app: Any
    clients: dict[str, httpx.Client]

    def __getattr__(self, role: str) -> httpx.Client:
        try:
            return self.clients[role]
        except KeyError:
            raise AttributeError(role) from None

    def post(self, role: str, path: str, json: Any = None, key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key or str(uuid.uuid4())}
        return self.clients[role].post(path, json=json, headers=headers)

    def new_wallet(
        self, kind: str = "personal", tier: int = 3, category: int = 0, name: str = "someone"
    ) -> str:
        body = {"kind": kind, "tier": tier, "display_name": name, "identity": f"id-{uuid.uuid4()}"}
        if category:
            body["merchant_category"] = category
        r = self.post("operator", "/v1/wallets", body)
        assert r.status_code == 201, r.text
        return str(r.json()["request"]["address"])


class ServerThread:
    def __init__(self, app: Any, port: int, settings: Any = None) -> None:
        """With ``settings``: served as the services serve (services/common/serve.py)."""
        # Keep-alive longer than any pause of a test on a loaded machine: with uvicorn's 5 s, the
        # server may close an idle pooled connection just as the test client sends on it, and the
        # request fails with "Server disconnected without sending a response" (seen under load).
        keep = {"timeout_keep_alive": 600}
        if settings is None:
            config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **keep)
        else:
            from services.common.serve import uvicorn_options

            config = uvicorn.Config(app, host="127.0.0.1", port=port, **{**uvicorn_options(settings), **keep})
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="module", params=BACKENDS)
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def api(db_kind: str, compiled: CompileResult, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp: Path = tmp_path_factory.mktemp("operator")
    w3 = in_process()
    manifest = deploy_all(w3, compiled=compiled)
    manifest.save(tmp / "manifest.json")
    with fresh_database(db_kind, tmp) as db_url:
        upgrade(db_url)
        settings = OperatorSettings(
            database_url=db_url,
            manifest=tmp / "manifest.json",
            rpc_url="in-process",
            admin_api_key=ADMIN_KEY,
            receipt_timeout_s=10,
        )
        app = create_app(settings, w3=w3, background=False)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with ServerThread(app, port):
            admin = httpx.Client(base_url=url, headers={"X-API-Key": ADMIN_KEY}, timeout=60)
            clients = {"admin": admin, "anonymous": httpx.Client(base_url=url, timeout=60)}
            api = Api(url, w3, app, clients)
            for role in ("operator", "checker", "merchant", "regulator", "auditor"):
                body = {"role": role, "label": f"test {role}"}
                # keys that speak for a wallet name a registered one (refused otherwise)
                if role == "merchant":
                    body["wallet"] = api.new_wallet(kind="merchant", tier=2, category=5999, name="key shop")
                if role == "checker":
                    body["wallet"] = api.new_wallet(tier=2, name="test checker")
                r = admin.post("/v1/api-keys", json=body)
                assert r.status_code == 201, r.text
                clients[role] = httpx.Client(base_url=url, headers={"X-API-Key": r.json()["key"]}, timeout=60)
            yield api
            for c in clients.values():
                c.close()
