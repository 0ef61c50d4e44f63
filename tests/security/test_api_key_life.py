"""API keys have a life: listed by the admin (never the key), revoked at once on both services,
rotated (by the admin, or by the key itself), expiring; and a key that speaks for a wallet names a
registered wallet of the right kind when it is created, not when it is first used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from services.common.keys import Role, create_key
from services.common.models import ApiKey
from tests.gateway.conftest import Gateway
from tests.services.conftest import Api

UNREGISTERED = "0x" + "00" * 19 + "77"


def _create(api: Api, **body: object) -> httpx.Response:
    return api.admin.post("/v1/api-keys", json={"label": "life", **body})


def _client(api: Api, key: str) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=60)


def _problem(r: httpx.Response, status: int, slug: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["type"] == f"urn:xcpay:problem:{slug}", r.text


def test_the_admin_lists_keys_without_the_keys(api: Api) -> None:
    created = _create(api, role="auditor").json()
    listed = api.admin.get("/v1/api-keys", params={"role": "auditor"})
    assert listed.status_code == 200
    row = next(k for k in listed.json()["items"] if k["id"] == created["id"])
    assert row["prefix"] == created["key"][:8] and row["active"] and row["expires_at"] is None
    assert created["key"] not in listed.text and "key_hash" not in listed.text
    _problem(api.auditor.get("/v1/api-keys"), 403, "forbidden-role")


def test_a_revoked_key_is_refused_at_once_on_both_services(api: Api, gateway: Gateway) -> None:
    created = _create(api, role="auditor").json()
    auditor = _client(api, created["key"])
    assert auditor.get("/v1/audit/events").status_code == 200
    r = api.admin.post(f"/v1/api-keys/{created['id']}/revoke")
    assert r.status_code == 200 and r.json()["revoked"] and not r.json()["active"]
    _problem(auditor.get("/v1/audit/events"), 401, "invalid-api-key")  # the very next request
    assert created["id"] not in [k["id"] for k in api.admin.get("/v1/api-keys?limit=200").json()["items"]]
    assert created["id"] in [
        k["id"] for k in api.admin.get("/v1/api-keys?include_revoked=true&limit=200").json()["items"]
    ]
    # the gateway (which shares the key table with the operator service in a deployment) reads the
    # key's row on every request too: a key revoked in its table is refused at its next request
    with gateway.ctx.db.session() as s:
        row, key = create_key(s, Role.AUDITOR, "gateway life")
        s.commit()
    probe = "/v1/operations/00000000-0000-0000-0000-000000000000"
    _problem(gateway.client(key).get(probe), 404, "operation-not-found")
    with gateway.ctx.db.session() as s:
        s.execute(update(ApiKey).where(ApiKey.id == row.id).values(revoked=True))
        s.commit()
    _problem(gateway.client(key).get(probe), 401, "invalid-api-key")


def test_the_last_admin_key_cannot_be_revoked(api: Api) -> None:
    admins = [k for k in api.admin.get("/v1/api-keys", params={"role": "admin"}).json()["items"]]
    assert len(admins) == 1
    _problem(api.admin.post(f"/v1/api-keys/{admins[0]['id']}/revoke"), 409, "last-admin-key")


def test_a_key_rotates_itself_and_the_old_one_stops_at_once(api: Api) -> None:
    created = _create(api, role="regulator").json()
    old = _client(api, created["key"])
    other = _create(api, role="regulator").json()
    _problem(old.post(f"/v1/api-keys/{other['id']}/rotate"), 403, "not-yours")  # not another's
    r = old.post(f"/v1/api-keys/{created['id']}/rotate")
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["role"] == "regulator" and new["key"] != created["key"] and new["id"] != created["id"]
    _problem(old.get(f"/v1/api-keys/{created['id']}/rotate"), 401, "invalid-api-key")
    probe = "/v1/operations/00000000-0000-0000-0000-000000000000"
    _problem(_client(api, new["key"]).get(probe), 404, "operation-not-found")  # the new key works
    # the admin rotates any key
    r = api.admin.post(f"/v1/api-keys/{other['id']}/rotate")
    assert r.status_code == 201 and r.json()["role"] == "regulator"
    _problem(_client(api, other["key"]).get("/v1/api-keys"), 401, "invalid-api-key")


def test_an_expired_key_is_refused(api: Api) -> None:
    soon = datetime.now(UTC) + timedelta(days=1)
    created = _create(api, role="auditor", expires_at=soon.isoformat()).json()
    auditor = _client(api, created["key"])
    assert auditor.get("/v1/audit/events").status_code == 200
    with api.app.state.ctx.db.session() as s:  # a day later (the clock is not the test's to move)
        s.execute(
            update(ApiKey)
            .where(ApiKey.id == created["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        s.commit()
    _problem(auditor.get("/v1/audit/events"), 401, "invalid-api-key")
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    _problem(_create(api, role="auditor", expires_at=past), 422, "expiry-in-past")


@pytest.mark.parametrize(
    ("role", "wallet_kind", "slug"),
    [
        ("merchant", None, "not-a-merchant-wallet"),  # unregistered
        ("merchant", "personal", "not-a-merchant-wallet"),  # registered, but not a merchant
        ("checker", None, "not-a-custodial-wallet"),
        ("officer", None, "not-a-custodial-wallet"),
        ("officer", "self", "not-a-custodial-wallet"),  # registered, but the service holds no key
    ],
)
def test_a_bound_key_needs_a_registered_wallet_of_the_right_kind(
    api: Api, role: str, wallet_kind: str | None, slug: str
) -> None:
    if wallet_kind is None:
        wallet = UNREGISTERED
    elif wallet_kind == "self":
        from eth_account import Account

        wallet = Account.create().address
        body = {
            "kind": "personal",
            "tier": 2,
            "display_name": "self",
            "identity": wallet,
            "custody": "self",
            "address": wallet,
        }
        assert api.post("operator", "/v1/wallets", body).status_code == 201
    else:
        wallet = api.new_wallet(kind=wallet_kind, tier=2, name="not a shop")
    _problem(_create(api, role=role, wallet=wallet), 422, slug)
    _problem(_create(api, role="checker"), 422, "invalid-request")  # and checkers need one at all
