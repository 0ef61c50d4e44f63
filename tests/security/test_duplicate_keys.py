"""A JSON object that names a key twice is refused before any route reads it.

Found from outside: ``{"amount_fen": 1, "amount_fen": 999999}`` moved 999,999 fen (Python's parser
keeps the last value), while a proxy, a log or a reviewer reading the first saw 1 fen."""

from __future__ import annotations

import json
import uuid

from tests.services.conftest import Api


def _raw(api: Api, role: str, path: str, body: str) -> object:
    headers = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
    return getattr(api, role).post(path, content=body.encode(), headers=headers)


def _balance(api: Api, wallet: str) -> int:
    r = api.operator.get(f"/v1/wallets/{wallet}")
    assert r.status_code == 200, r.text
    return int(r.json()["balance_fen"])


def test_a_transfer_naming_its_amount_twice_is_refused_and_moves_nothing(api: Api) -> None:
    payer = api.new_wallet(name="payer")
    payee = api.new_wallet(kind="merchant", tier=2, category=1, name="shop")
    r = api.post("operator", "/v1/issuance", {"to": payer, "amount_fen": 10_000})
    assert r.status_code == 200, r.text
    body = f'{{"from": "{payer}", "to": "{payee}", "amount_fen": 1, "amount_fen": 9999}}'
    r = _raw(api, "operator", "/v1/transfers", body)
    assert r.status_code == 400, r.text
    problem = r.json()
    assert problem["type"].endswith("json-duplicate-key")
    assert "amount_fen" in problem["detail"]
    assert _balance(api, payer) == 10_000 and _balance(api, payee) == 0
    # The same transfer with each key once goes through: the check refuses only the ambiguity.
    single = json.dumps({"from": payer, "to": payee, "amount_fen": 1})
    r = _raw(api, "operator", "/v1/transfers", single)
    assert r.status_code == 200, r.text
    assert _balance(api, payee) == 1


def test_a_key_named_twice_in_a_nested_object_is_refused_too(api: Api) -> None:
    body = '{"kind": "personal", "tier": 3, "display_name": "x", "identity": "a", "extra": {"k": 1, "k": 2}}'
    r = _raw(api, "operator", "/v1/wallets", body)
    assert r.status_code == 400, r.text
    assert r.json()["type"].endswith("json-duplicate-key")
