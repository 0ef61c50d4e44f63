"""Secrets stay secret: realistic flows of both services with every log captured at DEBUG, then no
API key, private key, keystore password or mnemonic in any log line, audit row, error response or
OpenAPI schema; keys at rest are hashes, custodial keys at rest are encrypted, keystore files hold
neither the key nor the password, and the bootstrap admin key is printed once, on stdout only.

What is captured: the services' own loggers (``xcpay.*``), uvicorn's error and access logs,
SQLAlchemy's engine log (statements, parameters and rows) and web3's, all at DEBUG, through a
handler added after the servers started (uvicorn's config sets its loggers' levels on start).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from sqlalchemy import select, text

from chain.accounts import DEV_MNEMONIC
from services.common.keys import hash_key
from services.common.logs import JsonFormatter
from services.common.models import ApiKey, AuditEntry, Wallet
from services.common.settings import LOCAL_KEYSTORE_PASSWORD, Settings
from services.operator.app import create_app
from services.operator.settings import OperatorSettings
from services.schema import Base
from tests.gateway.conftest import Gateway
from tests.services.conftest import ADMIN_KEY, Api
from wallets import keystore
from wallets.hardwallet import HardWallet

JSON_LINES = JsonFormatter()
LOGGERS = ("xcpay", "uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy.engine", "web3", "fastapi")


class Collect(logging.Handler):
    """Keeps every record it is given, formatted with its exception if any."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.names: set[str] = set()
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.names.add(record.name)
        self.lines.append(self.format(record))
        self.lines.append(JSON_LINES.format(record))  # as the services write them: every field


@dataclass
class Secrets:
    """Everything that must not leak, and every place it must not leak to."""

    api_keys: list[str] = field(default_factory=list)
    private_keys: list[bytes] = field(default_factory=list)
    passwords: list[str] = field(default_factory=list)
    mnemonics: list[str] = field(default_factory=lambda: [DEV_MNEMONIC])
    responses: list[str] = field(default_factory=list)  # every answer but those that hand a key out
    unknown_key: str = ""  # presented once, stored nowhere

    def needles(self) -> list[tuple[str, str]]:
        """(what, text) pairs; private keys in hex with and without 0x, both cases."""
        out = [("API key", k) for k in self.api_keys]
        for pk in self.private_keys:
            out += [("private key", pk.hex()), ("private key", pk.hex().upper())]
        out += [("keystore password", p) for p in self.passwords]
        out += [("mnemonic", m) for m in self.mnemonics]
        return out

    def find(self, haystack: str) -> list[str]:
        # "0x" + hex contains the bare hex, so the bare form covers both prefixes
        return [f"{what} {needle[:10]}…" for what, needle in self.needles() if needle in haystack]


def _hold(s: Secrets, r: httpx.Response, *, hands_out_a_key: bool = False) -> httpx.Response:
    if not hands_out_a_key:
        s.responses.append(f"{r.request.method} {r.request.url.path} -> {r.status_code} {r.text}")
    return r


@pytest.fixture(scope="module")
def logs(api: Api, gateway: Gateway) -> Iterator[Collect]:
    handler = Collect()
    saved = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)  # uvicorn's loggers do not propagate: a handler on each
    yield handler
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).removeHandler(handler)


@pytest.fixture(scope="module")
def flows(api: Api, gateway: Gateway, logs: Collect) -> Secrets:
    """Keys of every kind handed out, custodial wallets created and spent from, a card issued and
    paid with, error answers provoked; returns what must not leak."""
    s = Secrets(api_keys=[ADMIN_KEY], passwords=[api.app.state.ctx.settings.keystore_password])
    idem = {"Idempotency-Key": str(uuid.uuid4())}

    # operator: keys for roles, custodial wallets, cash moved by custodial signatures
    shop = api.new_wallet(kind="merchant", tier=2, category=5999, name="secrets shop")
    for role, wallet in (("operator", None), ("auditor", None), ("merchant", shop)):
        r = _hold(
            s, api.admin.post("/v1/api-keys", json={"role": role, "wallet": wallet}), hands_out_a_key=True
        )
        assert r.status_code == 201, r.text
        s.api_keys.append(r.json()["key"])
    alice, bob = api.new_wallet(tier=2, name="alice"), api.new_wallet(tier=2, name="bob")
    for address in (alice, bob):
        with api.app.state.ctx.db.session() as sess:
            store = sess.get(Wallet, address).keystore
        s.private_keys.append(bytes(Account.decrypt(store, s.passwords[0])))
    s.private_keys += [api.app.state.ctx.operator.key, api.app.state.ctx.regulator.key]
    assert (
        _hold(s, api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 5_000})).status_code == 200
    )
    r = _hold(s, api.post("operator", "/v1/transfers", {"sender": alice, "to": bob, "amount_fen": 1_000}))
    assert r.status_code == 200, r.text
    # error answers: an unknown key, a private key pasted where an address belongs, a refused role
    pasted = "0x" + s.private_keys[0].hex()
    bad = "xcp_" + secrets.token_urlsafe(32)
    s.api_keys.append(bad)
    s.unknown_key = bad
    anonymous = httpx.Client(base_url=api.url, headers={"X-API-Key": bad}, timeout=60)
    assert _hold(s, anonymous.get(f"/v1/wallets/{alice}")).status_code == 401
    # (in the body: a key pasted into a URL would be in the access log, as any path is)
    r = _hold(
        s,
        api.operator.post("/v1/transfers", json={"sender": pasted, "to": bob, "amount_fen": 1}, headers=idem),
    )
    assert r.status_code == 422
    r = _hold(s, api.admin.post("/v1/api-keys", json={"role": "admin", "key": ADMIN_KEY}))
    assert r.status_code == 422  # no field to choose a key with, and the value is not echoed
    assert (
        _hold(
            s, api.auditor.post("/v1/issuance", json={"to": alice, "amount_fen": 1}, headers=idem)
        ).status_code
        == 403
    )
    anonymous.close()

    # gateway: a terminal (its key), a door reader (its key), a card with a known key, an upload
    merchant = gateway.merchant()
    r = _hold(
        s,
        gateway.post("operator", "/v1/terminals", {"merchant": merchant, "location": "till"}),
        hands_out_a_key=True,
    )
    assert r.status_code == 201, r.text
    s.api_keys.append(r.json()["key"])
    terminal = gateway.client(r.json()["key"])
    r = _hold(s, gateway.post("operator", "/v1/access-points", {"name": "door"}), hands_out_a_key=True)
    assert r.status_code == 201, r.text
    s.api_keys.append(r.json()["key"])
    card_key = secrets.token_bytes(32)
    s.private_keys.append(card_key)
    card, _holder = gateway.card(load=2_000, private_key=card_key)
    payment = card.sign_payment(merchant, 150, gateway.now())
    r = _hold(s, gateway.post(terminal, "/v1/offline-payments", {"payments": [payment.to_json()]}))
    assert r.status_code == 200, r.text
    _hold(s, gateway.get("operator", f"/v1/terminals/{r.json()['terminal']}"))
    _hold(s, gateway.get(terminal, f"/v1/cards/{card.address}"))  # refused: a terminal reads no cards
    for client in (api.anonymous, gateway.clients["anonymous"]):
        r = client.get("/openapi.json")
        assert r.status_code == 200
        s.responses.append(r.text)
    return s


def test_logging_was_captured_at_debug(flows: Secrets, logs: Collect) -> None:
    """The capture works: access lines and SQL with parameters were seen (else the rest is void)."""
    assert "uvicorn.access" in logs.names and any("/v1/issuance" in line for line in logs.lines)
    assert "sqlalchemy.engine.Engine" in logs.names
    assert any("api_keys" in line for line in logs.lines)
    # the guard's access log: one JSON line per request, with the request id and the key's id
    access = [json.loads(line) for line in logs.lines if line.startswith("{") and '"xcpay.access"' in line]
    assert any(a["path"] == "/v1/issuance" and a["key_id"] and a["request_id"] for a in access)
    assert any(a["status"] == 401 and a["key_id"] is None for a in access)


def test_no_secret_in_any_log_line(flows: Secrets, logs: Collect) -> None:
    leaks = {hit: line[:200] for line in logs.lines for hit in flows.find(line)}
    assert leaks == {}


def test_no_secret_in_any_response_but_the_one_handing_a_key_out(flows: Secrets) -> None:
    assert len(flows.responses) > 10
    leaks = {hit: r[:200] for r in flows.responses for hit in flows.find(r)}
    assert leaks == {}


def test_no_secret_in_the_audit_log(flows: Secrets, api: Api, gateway: Gateway) -> None:
    for app in (api.app, gateway.app):
        with app.state.ctx.db.session() as s:
            rows = s.scalars(select(AuditEntry)).all()
        text_rows = [
            json.dumps({c.name: str(getattr(r, c.key)) for c in AuditEntry.__table__.columns}) for r in rows
        ]
        assert text_rows, "the flows write audit rows (key and terminal creation)"
        leaks = {hit: row for row in text_rows for hit in flows.find(row)}
        assert leaks == {}


def _all_rows(app: Any) -> list[str]:
    out = []
    with app.state.ctx.db.session() as s:
        for table in Base.metadata.sorted_tables:
            out += [f"{table.name} {tuple(row)}" for row in s.execute(select(table)).all()]
    return out


def test_api_keys_at_rest_are_hashes_only(flows: Secrets, api: Api, gateway: Gateway) -> None:
    hashes: set[str] = set()
    for app in (api.app, gateway.app):
        with app.state.ctx.db.session() as s:
            stored = s.scalars(select(ApiKey)).all()
        assert stored and all(len(k.key_hash) == 64 and len(k.prefix) <= 8 for k in stored)
        hashes |= {k.key_hash for k in stored}
        rows = _all_rows(app)
        for key in flows.api_keys:
            assert not [row[:80] for row in rows if key in row], "a clear API key is stored"
    issued = [k for k in flows.api_keys if k != flows.unknown_key]
    assert len(issued) >= 6  # admin, three role keys, terminal, door reader
    assert {hash_key(k) for k in issued} <= hashes  # each one stored, as its hash
    assert hash_key(flows.unknown_key) not in hashes


def _database_bytes(app: Any) -> bytes:
    url = app.state.ctx.settings.database_url
    assert url.startswith("sqlite:///"), "this module runs on SQLite (see conftest.py)"
    path = Path(url.removeprefix("sqlite:///"))
    with app.state.ctx.db.session() as s:
        s.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    sides = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")]
    return b"".join(p.read_bytes() for p in sides if p.exists())


def test_no_private_key_or_password_in_the_database_file(flows: Secrets, api: Api, gateway: Gateway) -> None:
    for app in (api.app, gateway.app):
        raw = _database_bytes(app)
        assert len(raw) > 10_000
        for pk in flows.private_keys:
            assert pk not in raw, "raw private key bytes in the database file"
            assert pk.hex().encode() not in raw.lower(), "a private key in hex in the database file"
        for secret in flows.api_keys + flows.passwords:
            assert secret.encode() not in raw


def test_custodial_keys_at_rest_are_encrypted_keystores(flows: Secrets, api: Api) -> None:
    with api.app.state.ctx.db.session() as s:
        custodial = s.scalars(select(Wallet).where(Wallet.custody == "custodial")).all()
    assert len(custodial) >= 2
    for w in custodial:
        doc = w.keystore
        assert doc["crypto"]["kdf"] == "scrypt" and doc["crypto"]["ciphertext"]
        key = bytes(Account.decrypt(doc, flows.passwords[0]))  # it is this wallet's key, sealed
        assert Account.from_key(key).address == w.address
        assert key.hex() not in json.dumps(doc).lower()


def test_the_default_keystore_password_is_refused_outside_local(flows: Secrets) -> None:
    """The password in the flows above is the local default: production settings refuse it."""
    assert flows.passwords[0] == LOCAL_KEYSTORE_PASSWORD
    with pytest.raises(ValueError, match="XCPAY_KEYSTORE_PASSWORD"):
        Settings(profile="production", database_url="sqlite://", manifest=Path("m.json"))


def test_no_secret_in_the_openapi_schemas(flows: Secrets, api: Api, gateway: Gateway) -> None:
    for client in (api.anonymous, gateway.clients["anonymous"]):
        schema = client.get("/openapi.json").text
        assert flows.find(schema) == []
        assert "xcp_" not in schema  # no example key either


@pytest.mark.parametrize("cipher", sorted(keystore.CIPHERS))
def test_keystore_files_hold_neither_the_key_nor_the_password(tmp_path: Path, api: Api, cipher: str) -> None:
    password = "pw-" + secrets.token_urlsafe(16)
    key = secrets.token_bytes(32)
    domain = api.app.state.ctx.hardwallet.domain
    issuer = secrets.token_bytes(32)
    card = HardWallet(key, domain, issuer_secret=issuer)
    files = {
        "key": keystore.save(
            tmp_path / "key.json", keystore.encrypt_key(key, password, cipher=cipher, scrypt_n=2**12)
        ),
        "card": keystore.save(
            tmp_path / "card.json", card.save(password, issuer_secret=issuer, cipher=cipher, scrypt_n=2**12)
        ),
        "v3": keystore.save(tmp_path / "v3.json", keystore.to_v3(key, password, scrypt_n=2**12)),
    }
    for name, path in files.items():
        raw = path.read_bytes()
        assert key.hex().encode() not in raw.lower() and key not in raw, name
        assert password.encode() not in raw, name
        assert path.stat().st_mode & 0o077 == 0, f"{name}: readable by others"
    # and they do hold the key, sealed: the files open with the password
    assert keystore.load_key(files["key"], password) == key == keystore.load_key(files["v3"], password)
    restored = HardWallet.restore(keystore.load(files["card"]), password, issuer_secret=issuer)
    assert restored.address == card.address
    assert key.hex() not in repr(card)


def test_the_bootstrap_admin_key_is_printed_once_on_stdout_only(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str], logs: Collect
) -> None:
    """What `make run` does on its first start: the operator service generates the admin key,
    prints it once, stores its hash; the next start prints nothing. (scripts/run.py starts the
    service without redirecting its output and writes no file: stdout is the only place.)"""
    from services.common.db import upgrade

    base = api.app.state.ctx.settings
    url = f"sqlite:///{tmp_path / 'bootstrap.db'}"
    upgrade(url)
    settings = OperatorSettings(
        database_url=url, manifest=base.manifest, rpc_url="in-process", admin_api_key=None
    )

    async def start_and_stop() -> None:
        app = create_app(settings, w3=api.w3, background=False)
        async with app.router.lifespan_context(app):
            pass

    before = len(logs.lines)
    asyncio.run(start_and_stop())
    first = capsys.readouterr()
    printed = [line for line in first.out.splitlines() if "bootstrap admin API key" in line]
    assert len(printed) == 1, first.out
    key = printed[0].rsplit(" ", 1)[1]
    assert key.startswith("xcp_") and key not in first.err
    assert not [line for line in logs.lines[before:] if key in line]
    asyncio.run(start_and_stop())
    assert "bootstrap admin API key" not in capsys.readouterr().out  # once
    raw = Path(url.removeprefix("sqlite:///")).read_bytes()
    assert key.encode() not in raw and hash_key(key).encode() in raw
