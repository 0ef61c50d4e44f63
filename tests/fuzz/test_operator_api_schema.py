"""Fuzz every operation of the operator API's OpenAPI schema over real HTTP.

Each operation gets valid and invalid inputs (Schemathesis, derandomized) with a key of a role it
admits (operator, checker, merchant, regulator, auditor, a village officer, a holder for the holder
routes, or the admin for API keys). Asserted for every response: no 5xx, a documented status code,
a body and content type as documented, and a problem document for every error (see :mod:`tests.fuzz.harness`).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from eth_account import Account

from chain.clients.hardwallet import CardForm, CardStatus
from chain.clients.prepaid import PackageStatus
from services.operator.families import MODULES
from services.operator.routes import ROUTERS
from tests.fuzz import harness
from tests.services.conftest import ADMIN_KEY, Api

OPERATIONS = harness.operations([*ROUTERS, *(r for m in MODULES for r in m.routers)])


@pytest.fixture(scope="module")
def operator_keys(api: Api) -> dict[str | None, str]:
    """A key per role the routes admit; routes taking any key get the operator's."""
    keys: dict[str | None, str] = {
        role: str(api.clients[role].headers["X-API-Key"])
        for role in ("operator", "checker", "merchant", "regulator", "auditor")
    }
    officer = api.new_wallet(name="village officer")
    r = api.admin.post("/v1/api-keys", json={"role": "officer", "label": "fuzz officer", "wallet": officer})
    assert r.status_code == 201, r.text
    keys["officer"] = r.json()["key"]
    keys["admin"] = ADMIN_KEY
    holder = api.new_wallet(name="fuzz holder")  # a custodial resident's key, for the holder routes
    r = api.operator.post("/v1/holder/keys", json={"wallet": holder, "ttl_minutes": 600})
    assert r.status_code == 201, r.text
    keys["holder"] = r.json()["key"]
    keys[None] = keys["operator"]
    return keys


# Revoking or rotating a key the fuzzer uses would lock the rest of the fuzz out: these act on a
# throwaway key's id only.
THROWAWAY_KEY_ROUTES = {("POST", "/v1/api-keys/{key_id}/revoke"), ("POST", "/v1/api-keys/{key_id}/rotate")}


@pytest.fixture(scope="module")
def throwaway_key_id(api: Api) -> int:
    r = api.admin.post("/v1/api-keys", json={"role": "auditor", "label": "fuzz throwaway"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


@pytest.fixture(scope="module")
def holder_own(api: Api, operator_keys: dict[str | None, str]) -> dict[str, Any]:
    """The fuzz holder's own card and prepaid package, pinned into the holder routes that act on
    one, so that their success answers (and the refusals once used up) meet the schema too: with
    random ids the fuzz would only ever see another's (a 404)."""
    ctx = api.app.state.ctx
    holder = httpx.Client(base_url=api.url, headers={"X-API-Key": operator_keys["holder"]}, timeout=60)
    wallet = holder.get("/v1/holder/balance").json()["wallet"]
    card = Account.create().address
    ctx.hardwallet.register_card(ctx.operator, card, wallet, CardForm.CARD)
    gym = api.new_wallet(kind="merchant", tier=2, category=7997, name="fuzz gym")
    assert (
        api.post(
            "regulator", "/v1/prepaid/merchants", {"merchant": gym, "supervised_bps": 10_000}
        ).status_code
        == 200
    )
    # the fuzz may have withdrawn institution #1's reserve down to what is out (a valid answer of
    # `POST /v1/institutions/{n}/reserve/withdrawals`): give it room first (at the reserve's cap the
    # allocation is refused, and there is room anyway)
    api.post("regulator", "/v1/institutions/1/reserve/allocations", {"amount_fen": 5_000_00})
    api.post("regulator", "/v1/regulator/unpause")  # and it may have paused the system (a valid answer too)
    r = api.post("operator", "/v1/issuance", {"to": wallet, "amount_fen": 5_000_00})
    assert r.status_code == 200, r.text
    body = {"consumer": wallet, "merchant": gym, "sessions": 40, "unit_price_fen": 1_00}
    body["expires_at"] = "2099-01-01T00:00:00+00:00"
    r = api.post("operator", "/v1/prepaid/packages", body)
    assert r.status_code == 201, r.text
    holder.close()
    return {"card": card, "package_id": int(r.json()["package_id"])}


# The holder routes acting on one thing of the holder's: pinned to the fuzz holder's own.
HOLDER_OWN_ROUTES = {
    ("POST", "/v1/holder/cards/{card}/report-lost"): ("card",),
    ("POST", "/v1/holder/packages/{package_id}/consume"): ("package_id",),
    ("POST", "/v1/holder/packages/{package_id}/cancel"): ("package_id",),
}


@pytest.fixture(scope="module")
def operator_schema(api: Api) -> Any:
    """The schema the running operator API publishes at /openapi.json."""
    return harness.load_schema(api.url)


def test_every_documented_operation_is_fuzzed(operator_schema: Any) -> None:
    """The live schema documents exactly the operations fuzzed below: none escapes the fuzz."""
    assert harness.documented(operator_schema) == {(m, p) for m, p, _ in OPERATIONS}


@pytest.mark.parametrize(("method", "path", "role"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_operation_keeps_its_contract(
    request: pytest.FixtureRequest,
    method: str,
    path: str,
    role: str | None,
    operator_schema: Any,
    operator_keys: dict[str | None, str],
) -> None:
    """No input makes this operation answer outside its documented contract."""
    pinned = None
    if (method, path) in THROWAWAY_KEY_ROUTES:
        pinned = {"key_id": request.getfixturevalue("throwaway_key_id")}
    if (method, path) in HOLDER_OWN_ROUTES:
        own = request.getfixturevalue("holder_own")
        pinned = {name: own[name] for name in HOLDER_OWN_ROUTES[(method, path)]}
    assert harness.fuzz(operator_schema, method, path, operator_keys[role], pinned) > 0
    if (method, path) in HOLDER_OWN_ROUTES:  # the pin reached the holder's own: it was acted on
        own, ctx = request.getfixturevalue("holder_own"), request.getfixturevalue("api").app.state.ctx
        if "card" in path:
            assert ctx.hardwallet.card(own["card"]).status == CardStatus.LOST
        else:
            package = ctx.prepaid.package(own["package_id"])
            assert package.used > 0 or package.status != PackageStatus.OPEN
