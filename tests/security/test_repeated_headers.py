"""A request that sends ``X-API-Key`` or ``Idempotency-Key`` twice is refused (400), on both
services, before any key is looked up or any body read (red team 10: the operator service acted on
the last ``X-API-Key`` of two, so a proxy that checks the first one could be walked past; the
first of two ``Idempotency-Key`` headers was used)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.gateway.conftest import Gateway
from tests.services.conftest import Api

_READ = {"operator": "/v1/wallets", "gateway": "/v1/terminals"}  # an operator key reads these


def _key(client: httpx.Client) -> str:
    return str(client.headers["X-API-Key"])


@pytest.mark.parametrize("service", ["operator", "gateway"])
def test_two_api_keys_are_refused_whichever_comes_first(service: str, api: Api, gateway: Gateway) -> None:
    stack = api if service == "operator" else gateway
    strong, weak = _key(stack.clients["operator"]), _key(stack.clients["auditor"])
    for pair in ((weak, strong), (strong, weak), (strong, strong), ("junk", strong)):
        r = httpx.get(
            f"{stack.url}{_READ[service]}",
            headers=[("X-API-Key", pair[0]), ("X-API-Key", pair[1])],
        )
        assert r.status_code == 400, (pair, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].endswith("repeated-header") and "x-api-key" in r.json()["detail"]
    one = httpx.get(f"{stack.url}{_READ[service]}", headers={"X-API-Key": strong})
    assert one.status_code == 200, one.text  # one key, as ever


def test_two_idempotency_keys_are_refused_and_nothing_is_issued(api: Api) -> None:
    wallet = api.new_wallet()
    body = {"to": wallet, "amount_fen": 500}
    headers = [
        ("X-API-Key", _key(api.clients["operator"])),
        ("Idempotency-Key", str(uuid.uuid4())),
        ("Idempotency-Key", str(uuid.uuid4())),
    ]
    r = httpx.post(f"{api.url}/v1/issuance", json=body, headers=headers)
    assert r.status_code == 400 and "idempotency-key" in r.json()["detail"], r.text
    assert api.auditor.get(f"/v1/wallets/{wallet}").json()["balance_fen"] == 0
