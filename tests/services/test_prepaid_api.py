"""Prepaid-fund supervision over HTTP: enrolment, packages, consumption, signed claims,
cancellation, closure and refunds, roles and bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.services.conftest import Api
from tests.services.test_operator_api import assert_problem
from tests.services.test_signature_forms import compact


def in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.fixture(scope="module")
def gym(api: Api) -> dict:
    """A custodial gym wallet enrolled fully supervised, and a merchant key bound to it."""
    address = api.new_wallet(kind="merchant", tier=2, category=7997, name="Gym")
    r = api.post("regulator", "/v1/prepaid/merchants", {"merchant": address, "supervised_bps": 10_000})
    assert r.status_code == 200, r.text
    key = api.admin.post("/v1/api-keys", json={"role": "merchant", "wallet": address}).json()["key"]
    client = httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=60)
    return {"address": address, "client": client}


def consumer(api: Api, fen: int = 1_000_000) -> str:
    address = api.new_wallet(tier=3, name="consumer")
    assert api.post("operator", "/v1/issuance", {"to": address, "amount_fen": fen}).status_code == 200
    return address


def prepay(api: Api, who: str, merchant: str, sessions: int = 10, price: int = 100_00, fee: int = 0) -> int:
    body = {
        "consumer": who,
        "merchant": merchant,
        "sessions": sessions,
        "unit_price_fen": price,
        "expires_at": in_days(30),
        "cancellation_fee_fen": fee,
    }
    r = api.post("operator", "/v1/prepaid/packages", body)
    assert r.status_code == 201, r.text
    (event,) = [e for e in r.json()["result"]["events"] if e["name"] == "PackagePrepaid"]
    return int(event["args"]["id"])


def balance(api: Api, address: str) -> int:
    return int(api.auditor.get(f"/v1/wallets/{address}").json()["balance_fen"])


def test_prepay_consume_and_read_the_history(api: Api, gym: dict) -> None:
    alice = consumer(api)
    pid = prepay(api, alice, gym["address"])
    assert balance(api, alice) == 1_000_000 - 100_000
    r = api.post("operator", f"/v1/prepaid/packages/{pid}/consume", {"sessions": 2})
    assert r.status_code == 200, r.text
    p = api.operator.get(f"/v1/prepaid/packages/{pid}").json()
    assert (p["status"], p["used"], p["held_fen"], p["released_fen"]) == ("open", 2, 80_000, 20_000)
    assert p["deposited_fen"] == p["released_fen"] + p["refunded_fen"] + p["held_fen"]
    assert [h["event"] for h in p["history"]] == ["PackagePrepaid", "SessionsConsumed"]
    assert balance(api, gym["address"]) >= 20_000


def test_merchant_claims_with_the_consumers_signature_once(api: Api, gym: dict) -> None:
    alice = consumer(api)
    pid = prepay(api, alice, gym["address"])
    ctx = api.app.state.ctx
    deadline = int(datetime.now(UTC).timestamp()) + 3600
    signature = ctx.prepaid.sign_consumption(ctx.custodial(alice), pid, 3, 0, deadline)
    body = {"sessions": 3, "deadline": deadline, "signature": "0x" + signature.hex()}
    r = gym["client"].post(
        f"/v1/prepaid/packages/{pid}/claim", json=body, headers={"Idempotency-Key": "c-" + str(pid)}
    )
    assert r.status_code == 200, r.text
    replay = gym["client"].post(
        f"/v1/prepaid/packages/{pid}/claim", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert_problem(replay, 422, "invalid-signature")
    assert api.operator.get(f"/v1/prepaid/packages/{pid}").json()["used"] == 3
    # the next claim signed in EIP-2098 compact form (64 bytes) is expanded and accepted
    signature = ctx.prepaid.sign_consumption(ctx.custodial(alice), pid, 2, 1, deadline)
    body = {"sessions": 2, "deadline": deadline, "signature": compact(signature)}
    r = gym["client"].post(
        f"/v1/prepaid/packages/{pid}/claim", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert r.status_code == 200, r.text
    assert api.operator.get(f"/v1/prepaid/packages/{pid}").json()["used"] == 5


def test_a_merchant_key_reads_only_its_own_packages(api: Api, gym: dict) -> None:
    other = api.new_wallet(kind="merchant", tier=2, category=8299, name="School")
    api.post("regulator", "/v1/prepaid/merchants", {"merchant": other, "supervised_bps": 5_000})
    alice = consumer(api)
    theirs = prepay(api, alice, other)
    ours = prepay(api, alice, gym["address"])
    assert gym["client"].get(f"/v1/prepaid/packages/{ours}").status_code == 200
    assert_problem(gym["client"].get(f"/v1/prepaid/packages/{theirs}"), 403, "not-your-package")
    assert_problem(gym["client"].get(f"/v1/prepaid/merchants/{other}/packages"), 403, "not-your-package")
    mine = gym["client"].get(f"/v1/prepaid/merchants/{gym['address']}/packages").json()
    assert ours in mine["package_ids"] and theirs not in mine["package_ids"]
    deadline = int(datetime.now(UTC).timestamp()) + 60
    claim = {"sessions": 1, "deadline": deadline, "signature": "0x" + "11" * 65}
    r = gym["client"].post(
        f"/v1/prepaid/packages/{theirs}/claim", json=claim, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert_problem(r, 403, "not-your-package")


def test_cancel_returns_the_unused_part_minus_the_fee(api: Api, gym: dict) -> None:
    alice = consumer(api)
    pid = prepay(api, alice, gym["address"], sessions=4, price=50_00, fee=10_00)
    before = balance(api, alice)
    assert api.post("operator", f"/v1/prepaid/packages/{pid}/cancel").status_code == 200
    assert balance(api, alice) == before + 20_000 - 1_000
    assert_problem(
        api.post("operator", f"/v1/prepaid/packages/{pid}/consume", {"sessions": 1}), 409, "package-closed"
    )
    assert_problem(api.post("operator", f"/v1/prepaid/packages/{pid}/cancel"), 409, "package-closed")


def test_closed_merchant_refunds_every_open_package(api: Api) -> None:
    shop = api.new_wallet(kind="merchant", tier=2, category=8299, name="Training centre")
    api.post("regulator", "/v1/prepaid/merchants", {"merchant": shop, "supervised_bps": 10_000})
    alice, bob = consumer(api), consumer(api)
    ids = [prepay(api, alice, shop, 2, 10_00), prepay(api, bob, shop, 3, 10_00)]
    assert_problem(api.post("operator", f"/v1/prepaid/packages/{ids[0]}/refund"), 409, "not-refundable")
    assert api.post("regulator", f"/v1/prepaid/merchants/{shop}/close").status_code == 200
    r = api.post("operator", f"/v1/prepaid/merchants/{shop}/refunds", {"offset": 0, "limit": 100})
    assert r.status_code == 200, r.text
    refunded = [e["args"]["id"] for e in r.json()["result"]["events"] if e["name"] == "PackageRefunded"]
    assert refunded == ids
    assert balance(api, alice) == 1_000_000 and balance(api, bob) == 1_000_000
    assert_problem(
        api.post(
            "operator",
            "/v1/prepaid/packages",
            {
                "consumer": alice,
                "merchant": shop,
                "sessions": 1,
                "unit_price_fen": 1,
                "expires_at": in_days(1),
            },
        ),
        409,
        "merchant-closed",
    )


def test_a_frozen_consumer_cannot_consume_and_its_refund_is_deferred_until_unfrozen(api: Api) -> None:
    shop = api.new_wallet(kind="merchant", tier=2, category=8299, name="Swimming school")
    api.post("regulator", "/v1/prepaid/merchants", {"merchant": shop, "supervised_bps": 10_000})
    alice, bob = consumer(api), consumer(api)
    ids = [prepay(api, alice, shop, 2, 10_00), prepay(api, bob, shop, 3, 10_00)]
    assert api.post("regulator", "/v1/regulator/freeze", {"address": alice}).status_code == 200
    r = api.post("operator", f"/v1/prepaid/packages/{ids[0]}/consume", {"sessions": 1})
    assert_problem(r, 409, "consumer-frozen")
    assert api.post("regulator", f"/v1/prepaid/merchants/{shop}/close").status_code == 200
    r = api.post("operator", f"/v1/prepaid/merchants/{shop}/refunds", {"offset": 0, "limit": 100})
    assert r.status_code == 200, r.text
    events = r.json()["result"]["events"]
    assert [e["args"]["id"] for e in events if e["name"] == "PackageRefunded"] == ids[1:]
    assert [e["args"]["id"] for e in events if e["name"] == "RefundDeferred"] == ids[:1]
    assert balance(api, alice) == 1_000_000 - 2_000 and balance(api, bob) == 1_000_000
    assert api.post("regulator", "/v1/regulator/unfreeze", {"address": alice}).status_code == 200
    r = api.post("operator", f"/v1/prepaid/merchants/{shop}/refunds", {"offset": 0, "limit": 100})
    assert [e["args"]["id"] for e in r.json()["result"]["events"] if e["name"] == "PackageRefunded"] == ids[
        :1
    ]
    assert balance(api, alice) == 1_000_000


def test_roles_and_bad_input(api: Api, gym: dict) -> None:
    alice = consumer(api)
    assert_problem(
        api.post("operator", "/v1/prepaid/merchants", {"merchant": gym["address"], "supervised_bps": 1}),
        403,
        "forbidden-role",
    )
    assert_problem(
        api.post("regulator", "/v1/prepaid/merchants", {"merchant": alice, "supervised_bps": 100}),
        422,
        "not-a-merchant-wallet",
    )
    assert_problem(
        api.post(
            "regulator", "/v1/prepaid/merchants", {"merchant": gym["address"], "supervised_bps": 10_001}
        ),
        422,
        "invalid-request",
    )
    base = {
        "consumer": alice,
        "merchant": gym["address"],
        "sessions": 1,
        "unit_price_fen": 100,
        "expires_at": in_days(1),
    }
    for bad in (
        {"sessions": 0},
        {"unit_price_fen": 0},
        {"expires_at": "2030-01-01T00:00:00"},
        {"expires_at": "tomorrow"},
        {"cancellation_fee_fen": 101},
    ):
        assert_problem(api.post("operator", "/v1/prepaid/packages", {**base, **bad}), 422, "invalid-request")
    assert_problem(
        api.post("operator", "/v1/prepaid/packages", {**base, "expires_at": in_days(-1)}),
        422,
        "expiry-in-past",
    )
    assert_problem(
        api.post("operator", "/v1/prepaid/packages", {**base, "unit_price_fen": 5_000_01}),
        422,
        "tier-payment-cap-exceeded",
    )
    assert_problem(
        api.post("operator", "/v1/prepaid/packages/999999/consume", {"sessions": 1}), 404, "package-not-found"
    )
    assert_problem(api.operator.get("/v1/prepaid/packages/0"), 422, "invalid-request")
    pid = prepay(api, alice, gym["address"], sessions=2)
    assert_problem(
        api.post("operator", f"/v1/prepaid/packages/{pid}/consume", {"sessions": 3}), 422, "too-many-sessions"
    )
    assert_problem(
        gym["client"].post(
            f"/v1/prepaid/packages/{pid}/claim",
            json={"sessions": 1, "deadline": 1, "signature": "0xzz"},
            headers={"Idempotency-Key": "x"},
        ),
        422,
        "invalid-request",
    )


def pending_operations(api: Api, kind: str) -> int:
    """Operations of ``kind`` left pending (the reconciler would retry them)."""
    from sqlalchemy import func, select

    from services.common.models import Operation

    with api.app.state.ctx.db.session() as s:
        return int(
            s.scalar(select(func.count()).where(Operation.kind == kind, Operation.status == "pending")) or 0
        )


@pytest.mark.parametrize(
    "bad",
    [
        {"sessions": 1, "unit_price_fen": 2**128},
        {"sessions": 4294967295, "unit_price_fen": 2**250},
        {"sessions": 1, "unit_price_fen": 1, "cancellation_fee_fen": 2**128},
    ],
)
def test_amounts_beyond_the_contracts_uint128_are_a_422_and_leave_nothing_pending(
    api: Api, gym: dict, bad: dict
) -> None:
    """Red team: these were a 500 and an operation the reconciler retried every 2 s forever."""
    body = {"consumer": consumer(api), "merchant": gym["address"], "expires_at": in_days(30), **bad}
    r = api.post("operator", "/v1/prepaid/packages", body)
    assert_problem(r, 422, "invalid-request")
    assert pending_operations(api, "prepaid.prepay") == 0
