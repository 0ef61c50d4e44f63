"""Recovery of family-held assets over HTTP (issue 22): approving a recovery moves, after the
wallet's own balance, what the families hold for the lost wallet (a voucher holding, an open
prepaid package) to the replacement, one operation each; a second sweep moves nothing; the
regulator's listings of recoveries and court orders (paged, filtered by the chain's status,
regulator and auditor only); the reconciliation stays clean. Real chain, both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from tests.services.conftest import Api
from tests.services.test_operator_api import assert_problem

DAY = 86_400


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def ok(r: httpx.Response, status: int = 200) -> dict:
    assert r.status_code == status, r.text
    return r.json()


@pytest.fixture(scope="module")
def lost(api: Api) -> dict:
    """A custodial resident (50 yuan) with a voucher holding (10 yuan granted) and an open prepaid
    package (10 sessions of 1 yuan, all held) at a gym; recovered to a new custodial wallet."""
    who = api.new_wallet(kind="personal", tier=2, name="resident who lost a phone")
    ok(api.post("operator", "/v1/issuance", {"to": who, "amount_fen": 5_000}))
    gym = api.new_wallet(kind="merchant", tier=2, category=7997, name="gym")
    ok(api.post("regulator", "/v1/prepaid/merchants", {"merchant": gym, "supervised_bps": 10_000}))
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    package = {
        "consumer": who,
        "merchant": gym,
        "sessions": 10,
        "unit_price_fen": 100,
        "expires_at": iso(now + 30 * DAY),
    }
    package_id = ok(api.post("operator", "/v1/prepaid/packages", package), 201)["package_id"]
    office = api.new_wallet(kind="institution", tier=1, name="District commerce office")
    ok(api.post("operator", "/v1/issuance", {"to": office, "amount_fen": 100_000}))
    programme = {
        "issuer": office,
        "name": "red packets",
        "mode": "grant-list",
        "budget_fen": 10_000,
        "per_person_cap_fen": 1_000,
        "starts_at": iso(now - 60),
        "expires_at": iso(now + 30 * DAY),
        "categories": [5411],
    }
    pid = ok(api.post("operator", "/v1/voucher-programs", programme), 201)["programme_id"]
    grant = {"unit": "fen", "rows": [{"recipient": who, "amount": 1_000}]}
    ok(api.post("operator", f"/v1/voucher-programs/{pid}/grants", grant))
    r = ok(api.post("operator", f"/v1/wallets/{who}/recovery", {"evidence": "face check, counter 2"}), 201)
    return {
        "wallet": who,
        "package": package_id,
        "programme": pid,
        "recovery": r["recovery_id"],
        "replacement": r["replacement"],
    }


def test_approving_a_recovery_moves_every_familys_holdings_once(api: Api, lost: dict) -> None:
    ctx = api.app.state.ctx
    old, new, rid = lost["wallet"], lost["replacement"], lost["recovery"]
    held_before = (ctx.vouchers.total_held(), ctx.prepaid.totals())
    assert_problem(
        api.post("regulator", f"/v1/regulator/recoveries/{rid}/holdings"), 409, "recovery-not-approved"
    )
    key = str(uuid.uuid4())
    body = ok(api.post("regulator", f"/v1/regulator/recoveries/{rid}/approve", key=key))
    moves = body["holdings"]["moves"]
    assert sorted((m["kind"], m["status"]) for m in moves) == [
        ("prepaid.recover_package", "confirmed"),
        ("vouchers.recover_grants", "confirmed"),
    ], body
    assert body["holdings"]["refused"] == []
    assert ctx.prepaid.package(lost["package"]).consumer == new
    assert (ctx.vouchers.balance(lost["programme"], old), ctx.vouchers.balance(lost["programme"], new)) == (
        0,
        1_000,
    )
    assert (ctx.vouchers.total_held(), ctx.prepaid.totals()) == held_before  # nothing left the families
    # A replay of the approval and a later sweep move nothing more (each thing once).
    again = ok(api.post("regulator", f"/v1/regulator/recoveries/{rid}/approve", key=key))
    assert again["id"] == body["id"] and again["holdings"] == {"moves": [], "refused": []}
    assert ok(api.post("operator", f"/v1/regulator/recoveries/{rid}/holdings")) == {
        "moves": [],
        "refused": [],
    }
    assert_problem(api.post("auditor", f"/v1/regulator/recoveries/{rid}/holdings"), 403, "forbidden-role")
    # The successor uses the package and sees its voucher balance.
    ok(api.post("operator", f"/v1/prepaid/packages/{lost['package']}/consume", {"sessions": 1}))


def test_the_successor_sees_the_recovered_vouchers_in_its_own_channel(api: Api, lost: dict) -> None:
    """Red team F4: the grants moved by the sweep (GrantsRecovered) show in the successor's
    ``GET /v1/holder/vouchers`` (they read [] while only Granted events were followed)."""
    key = ok(api.post("operator", "/v1/holder/keys", {"wallet": lost["replacement"], "ttl_minutes": 5}), 201)
    with httpx.Client(base_url=api.url, headers={"X-API-Key": key["key"]}, timeout=60) as holder:
        mine = ok(holder.get("/v1/holder/vouchers"))
    assert [(v["programme_id"], v["balance_fen"]) for v in mine] == [(lost["programme"], 1_000)]


def test_no_new_row_or_grant_is_addressed_to_the_retired_wallet(api: Api, lost: dict) -> None:
    """Red team F5: a payroll row and a voucher grant to the retired wallet are row errors
    ``wallet-retired`` naming the successor (they were accepted: 201, grants confirmed)."""
    old, new = lost["wallet"], lost["replacement"]
    payer = api.new_wallet(kind="institution", tier=1, name="employer f5")
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    batch = {
        "reference": f"f5-{uuid.uuid4().hex[:8]}",
        "payer": payer,
        "purpose": "salary",
        "mode": "explicit",
        "ends_at": iso(now + 30 * DAY),
        "unit": "fen",
        "rows": [{"recipient": old, "amount": 100}],
    }
    grant = {"unit": "fen", "rows": [{"recipient": old, "amount": 100}]}
    before = api.w3.eth.block_number
    for path, body in (
        ("/v1/disbursements", batch),
        (f"/v1/voucher-programs/{lost['programme']}/grants", grant),
    ):
        problem = assert_problem(api.post("operator", path, body), 422, "invalid-rows")
        (error,) = problem["errors"]
        assert (error["row"], error["field"], error["code"]) == (1, "recipient", "wallet-retired"), error
        assert new in error["reason"]
    assert api.w3.eth.block_number == before


def test_the_regulator_lists_recoveries_and_court_orders_by_status(api: Api, lost: dict) -> None:
    debtor = api.new_wallet(kind="personal", tier=2, name="debtor")
    ok(api.post("operator", "/v1/issuance", {"to": debtor, "amount_fen": 500}))
    order = {"from": debtor, "to": lost["replacement"], "amount_fen": 500, "case_number": "(2026)-9"}
    order_id = ok(api.post("regulator", "/v1/regulator/court-orders", order), 201)["order_id"]
    for role in ("regulator", "auditor"):
        page = ok(api.clients[role].get("/v1/regulator/recoveries", params={"status": "executed"}))
        assert [(r["recovery_id"], r["lost"], r["status"]) for r in page["items"]] == [
            (lost["recovery"], lost["wallet"], "executed")
        ]
        assert (
            ok(api.clients[role].get("/v1/regulator/recoveries", params={"status": "pending"}))["items"] == []
        )
        page = ok(api.clients[role].get("/v1/regulator/court-orders", params={"status": "pending"}))
        assert [(o["order_id"], o["from"], o["amount_fen"]) for o in page["items"]] == [
            (order_id, debtor, 500)
        ]
    assert_problem(api.operator.get("/v1/regulator/court-orders"), 403, "forbidden-role")
    assert_problem(api.operator.get("/v1/regulator/recoveries"), 403, "forbidden-role")
    assert_problem(
        api.auditor.get("/v1/regulator/court-orders", params={"status": "lost"}), 422, "invalid-request"
    )
    # The maker is found in the court-order table: it cannot approve its own order.
    assert_problem(
        api.post("regulator", f"/v1/regulator/court-orders/{order_id}/approve"), 403, "checker-is-maker"
    )
    ok(api.post("regulator", f"/v1/regulator/court-orders/{order_id}/cancel"))
    page = ok(api.auditor.get("/v1/regulator/court-orders", params={"status": "cancelled", "limit": 1}))
    assert [o["order_id"] for o in page["items"]] == [order_id]


def test_the_reconciliation_stays_clean_after_the_moves(api: Api) -> None:
    """Last in the module: every move's operation has its event (chain/families.py ``expected``)."""
    report = ok(api.auditor.get("/v1/audit/reconciliation"))
    assert report["verdict"] == "clean", report["discrepancies"]
