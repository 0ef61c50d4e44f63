"""The gateway served over real HTTP (uvicorn on a free port) against an in-process chain and a
real database (SQLite, and PostgreSQL when present). Wallets are created the way the operator
service creates them (custodial keystore in the shared database, registered on chain)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3 import Web3

from chain.accounts import dev_account
from chain.backends import in_process
from chain.clients.hardwallet import CardForm
from chain.clients.token import Kind
from chain.compiler import CompileResult
from chain.deploy import deploy_all
from services.common.context import ServiceContext
from services.common.db import upgrade
from services.common.keys import Role, create_key
from services.common.models import Wallet
from services.gateway.app import GatewaySettings, create_app
from tests.databases import BACKENDS, fresh_database
from tests.processes import free_port
from tests.services.conftest import ServerThread
from wallets.hardwallet import HardWallet

# The operator service's key registers wallets and issues cash; the gateway signs with its own.
OPERATOR = dev_account(1)


@dataclass
class Gateway:
    """A running gateway, its chain, and an HTTP client per role."""

    url: str
    w3: Web3
    app: Any
    clients: dict[str, httpx.Client]

    @property
    def ctx(self) -> ServiceContext:
        return self.app.state.ctx  # type: ignore[no-any-return]

    def client(self, key: str) -> httpx.Client:
        c = httpx.Client(base_url=self.url, headers={"X-API-Key": key}, timeout=60)
        self.clients[key] = c
        return c

    def post(
        self, who: str | httpx.Client, path: str, json: Any = None, key: str | None = None
    ) -> httpx.Response:
        client = self.clients[who] if isinstance(who, str) else who
        return client.post(path, json=json, headers={"Idempotency-Key": key or str(uuid.uuid4())})

    def get(self, who: str | httpx.Client, path: str) -> httpx.Response:
        client = self.clients[who] if isinstance(who, str) else who
        return client.get(path)

    # -- chain set-up, as the operator service does it -----------------------------------

    def wallet(
        self,
        kind: Kind = Kind.PERSONAL,
        tier: int = 3,
        category: int = 0,
        register: Callable[[str, Kind, int, int, bytes], object] | None = None,
    ) -> str:
        """A custodial wallet, registered on chain by the operator (``register``: another way,
        e.g. a second institution's key through the central bank's book)."""
        ctx = self.ctx
        address, keystore = ctx.custody.create()
        with ctx.db.session() as s:
            s.add(
                Wallet(
                    address=address,
                    kind=kind.name.lower(),
                    tier=tier,
                    category=category,
                    display_name="someone",
                    identity_hash="0x" + "00" * 32,
                    custody="custodial",
                    keystore=keystore,
                )
            )
            s.commit()
        ctx.tx.send_value(OPERATOR, address, 10**17)
        identity = uuid.uuid4().bytes * 2
        if register is None:
            ctx.cash.register(OPERATOR, address, kind, tier, category, identity)
        else:
            register(address, kind, tier, category, identity)
        return address

    def merchant(self, category: int = 5411) -> str:
        return self.wallet(Kind.MERCHANT, 2, category)

    def mint(self, to: str, amount: int) -> None:
        self.ctx.cash.mint(OPERATOR, to, amount)

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def terminal(self, merchant: str, location: str = "counter 1") -> tuple[str, httpx.Client]:
        r = self.post("operator", "/v1/terminals", {"merchant": merchant, "location": location})
        assert r.status_code == 201, r.text
        return r.json()["id"], self.client(r.json()["key"])

    def card(
        self, holder: str | None = None, load: int = 0, private_key: bytes | None = None, **kwargs: Any
    ) -> tuple[HardWallet, str]:
        """A new card issued to ``holder`` (a new funded person if None), with ``load`` loaded;
        ``private_key`` keeps the key known to the test (to play a cloned card)."""
        if holder is None:
            holder = self.wallet()
            self.mint(holder, 5_000_00)
        domain = self.ctx.hardwallet.domain
        card = (
            HardWallet(private_key, domain, **kwargs) if private_key else HardWallet.issue(domain, **kwargs)
        )
        r = self.post(
            "operator",
            "/v1/cards",
            {"card": card.address, "holder": holder, "form": CardForm(card.form).name.lower()},
        )
        assert r.status_code == 201, r.text
        if load:
            r = self.post("operator", f"/v1/cards/{card.address}/loads", {"amount_fen": load})
            assert r.status_code == 200, r.text
            card.credit(load)
        return card, holder


@pytest.fixture(scope="module", params=BACKENDS)
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def gateway(
    db_kind: str, compiled: CompileResult, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp: Path = tmp_path_factory.mktemp("gateway")
    w3 = in_process()
    manifest = deploy_all(w3, compiled=compiled)
    manifest.save(tmp / "manifest.json")
    with fresh_database(db_kind, tmp) as db_url:
        upgrade(db_url)
        settings = GatewaySettings(
            database_url=db_url,
            manifest=tmp / "manifest.json",
            rpc_url="in-process",
            receipt_timeout_s=10,
            access_challenge_ttl_s=2,
        )
        app = create_app(settings, w3=w3, background=False)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with ServerThread(app, port):
            gw = Gateway(url, w3, app, {"anonymous": httpx.Client(base_url=url, timeout=60)})
            with app.state.ctx.db.session() as s:
                keys = {
                    role: create_key(s, role, f"test {role}")[1] for role in (Role.OPERATOR, Role.AUDITOR)
                }
                s.commit()
            for role, key in keys.items():
                gw.clients[str(role)] = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60)
            yield gw
            for c in set(gw.clients.values()):
                c.close()
