"""One person, one identity; holds, court orders and recovery over HTTP (issue 22): the regulator's
holds (the held amount cannot move by any path, the rest can), court orders under maker-checker
with two regulator API keys and two regulator signing keys, the operator's recovery approved by
the regulator (the old address refused everywhere after), the admin's personal wallet limit, and a
voucher programme capped per identity. Real chain, real database (SQLite and PostgreSQL), real HTTP;
the reconciliation stays clean after all of it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from eth_account import Account
from sqlalchemy import select

from services.common.models import ChainEvent
from tests.services.conftest import Api
from tests.services.test_operator_api import assert_problem

CASE = "(2026)京0105执123号"  # 24 bytes of UTF-8: fits the chain's bytes32


def post(client: httpx.Client, path: str, body: dict | None = None, key: str | None = None) -> httpx.Response:
    return client.post(path, json=body, headers={"Idempotency-Key": key or str(uuid.uuid4())})


def balance(api: Api, address: str) -> int:
    return int(api.auditor.get(f"/v1/wallets/{address}").json()["balance_fen"])


def person(api: Api, fen: int = 0, identity: str | None = None, tier: int = 2) -> tuple[str, str]:
    """A custodial personal wallet with ``fen`` issued to it; (address, identity)."""
    identity = identity or f"resident-{uuid.uuid4().hex[:10]}"
    body = {"kind": "personal", "tier": tier, "display_name": "resident", "identity": identity}
    r = api.post("operator", "/v1/wallets", body)
    assert r.status_code == 201, r.text
    address = r.json()["request"]["address"]
    if fen:
        assert api.post("operator", "/v1/issuance", {"to": address, "amount_fen": fen}).status_code == 200
    return address, identity


@pytest.fixture(scope="module")
def second_regulator(api: Api) -> httpx.Client:
    """A second regulator's API key (another person): the checker of court orders."""
    r = api.admin.post("/v1/api-keys", json={"role": "regulator", "label": "second regulator"})
    assert r.status_code == 201, r.text
    return httpx.Client(base_url=api.url, headers={"X-API-Key": r.json()["key"]}, timeout=60)


def hold(api: Api, wallet: str, fen: int, reason: str = "judicial freeze") -> int:
    r = api.post(
        "regulator",
        "/v1/regulator/holds",
        {"wallet": wallet, "amount_fen": fen, "reason": reason, "case_number": CASE},
    )
    assert r.status_code == 201, r.text
    assert r.json()["hold_id"] is not None
    return int(r.json()["hold_id"])


def test_a_hold_freezes_an_amount_and_the_rest_moves_until_it_is_lifted(api: Api) -> None:
    alice, _ = person(api, 1_000)
    bob, _ = person(api)
    hold_id = hold(api, alice, 600)
    listed = api.auditor.get("/v1/regulator/holds", params={"wallet": alice}).json()
    assert listed == {
        "wallet": alice,
        "held_fen": 600,
        "holds": [
            {
                "hold_id": hold_id,
                "wallet": alice,
                "amount_fen": 600,
                "active": True,
                "reason": "judicial freeze",
                "case_number": CASE,
            }
        ],
    }
    r = api.post("operator", "/v1/transfers", {"sender": alice, "to": bob, "amount_fen": 500})
    body = assert_problem(r, 409, "amount-frozen")
    assert body["error"]["name"] == "AmountFrozen"
    r = api.post("operator", "/v1/transfers", {"sender": alice, "to": bob, "amount_fen": 400})
    assert r.status_code == 200, r.text  # the free part moves
    assert (balance(api, alice), balance(api, bob)) == (600, 400)
    assert_problem(
        api.post("operator", "/v1/redemptions", {"from": alice, "amount_fen": 1}), 409, "amount-frozen"
    )
    # only the regulator places or lifts holds
    r = api.post(
        "operator",
        "/v1/regulator/holds",
        {"wallet": alice, "amount_fen": 1, "reason": "x", "case_number": "y"},
    )
    assert_problem(r, 403, "forbidden-role")
    r = api.post("regulator", f"/v1/regulator/holds/{hold_id}/lift")
    assert r.status_code == 200, r.text
    assert api.auditor.get("/v1/regulator/holds", params={"wallet": alice}).json()["held_fen"] == 0
    assert api.auditor.get(f"/v1/regulator/holds/{hold_id}").json()["active"] is False
    assert_problem(api.post("regulator", f"/v1/regulator/holds/{hold_id}/lift"), 409, "hold-not-active")
    assert_problem(api.auditor.get("/v1/regulator/holds/999999"), 404, "hold-not-found")
    r = api.post("operator", "/v1/transfers", {"sender": alice, "to": bob, "amount_fen": 600})
    assert r.status_code == 200, r.text


def test_a_case_number_longer_than_32_bytes_is_refused_before_the_chain(api: Api) -> None:
    alice, _ = person(api, 100)
    r = api.post(
        "regulator",
        "/v1/regulator/holds",
        {"wallet": alice, "amount_fen": 10, "reason": "aml", "case_number": "案" * 11},  # 33 bytes
    )
    assert_problem(r, 422, "invalid-request")


def test_a_held_amount_cannot_be_paid_out_through_a_payment_code(api: Api) -> None:
    shop = api.new_wallet(kind="merchant", tier=2, category=5812, name="Canteen")
    payer, _ = person(api, 1_000)
    hold(api, payer, 800)
    code = api.operator.post("/v1/payment-codes", json={"merchant": shop, "amount_fen": 500}).json()
    r = post(api.operator, f"/v1/payment-codes/{code['id']}/pay", {"form": "custodial", "payer": payer})
    body = assert_problem(r, 409, "amount-frozen")
    assert body["error"]["name"] == "AmountFrozen"
    assert (balance(api, payer), balance(api, shop)) == (1_000, 0)
    code = api.operator.post("/v1/payment-codes", json={"merchant": shop, "amount_fen": 200}).json()
    r = post(api.operator, f"/v1/payment-codes/{code['id']}/pay", {"form": "custodial", "payer": payer})
    assert r.status_code == 200, r.text  # within the free balance
    assert (balance(api, payer), balance(api, shop)) == (800, 200)


def test_a_payroll_payer_with_a_hold_cannot_pay_more_than_its_free_balance(api: Api) -> None:
    employer = api.new_wallet(kind="institution", tier=1, name="Employer under a court freeze")
    assert api.post("operator", "/v1/issuance", {"to": employer, "amount_fen": 10_000}).status_code == 200
    checker_wallet = api.new_wallet(tier=2, name="Finance officer")
    key = api.admin.post("/v1/api-keys", json={"role": "checker", "wallet": checker_wallet}).json()["key"]
    checker = httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=60)
    r = api.post(
        "operator",
        f"/v1/disbursements/payers/{employer}/officers",
        {"account": checker_wallet, "role": "checker"},
    )
    assert r.status_code == 200, r.text
    worker, _ = person(api)
    hold(api, employer, 7_000)
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    ends = datetime.fromtimestamp(now + 30 * 86_400, UTC).isoformat()

    def batch(fen: int) -> str:
        body = {
            "reference": f"payroll-{uuid.uuid4().hex[:10]}",
            "payer": employer,
            "purpose": "salary",
            "mode": "explicit",
            "ends_at": ends,
            "unit": "fen",
            "rows": [{"recipient": worker, "amount": fen}],
        }
        r = api.post("operator", "/v1/disbursements", body)
        assert r.status_code == 201, r.text
        return str(r.json()["reference"])

    too_much = batch(3_001)  # the free balance is 3,000
    r = post(checker, f"/v1/disbursements/{too_much}/approve")
    body = assert_problem(r, 409, "amount-frozen")
    assert body["error"]["name"] == "AmountFrozen"
    assert balance(api, employer) == 10_000
    r = post(checker, f"/v1/disbursements/{batch(3_000)}/approve")
    assert r.status_code == 200, r.text
    assert balance(api, employer) == 7_000  # exactly the held amount is left


def test_a_court_order_moves_a_held_amount_under_maker_checker(
    api: Api, second_regulator: httpx.Client
) -> None:
    debtor, _ = person(api, 2_000)
    creditor, _ = person(api)
    hold_id = hold(api, debtor, 1_500)
    order = {"from": debtor, "to": creditor, "amount_fen": 1_500, "case_number": CASE, "hold_id": hold_id}
    r = api.post("regulator", "/v1/regulator/court-orders", order)
    assert r.status_code == 201, r.text
    order_id = r.json()["order_id"]
    got = api.auditor.get(f"/v1/regulator/court-orders/{order_id}").json()
    assert (got["status"], got["from"], got["to"], got["amount_fen"], got["case_number"], got["hold_id"]) == (
        "pending",
        debtor,
        creditor,
        1_500,
        CASE,
        hold_id,
    )
    # the maker cannot approve its own order; nothing moved
    r = api.post("regulator", f"/v1/regulator/court-orders/{order_id}/approve")
    assert_problem(r, 403, "checker-is-maker")
    assert_problem(
        api.post("operator", f"/v1/regulator/court-orders/{order_id}/approve"), 403, "forbidden-role"
    )
    assert (balance(api, debtor), balance(api, creditor)) == (2_000, 0)
    r = post(second_regulator, f"/v1/regulator/court-orders/{order_id}/approve")
    assert r.status_code == 200, r.text
    executed = [e for e in r.json()["result"]["events"] if e["name"] == "CourtOrderExecuted"]
    assert len(executed) == 1 and executed[0]["args"]["amount"] == 1_500
    assert (balance(api, debtor), balance(api, creditor)) == (500, 1_500)
    assert api.auditor.get("/v1/regulator/holds", params={"wallet": debtor}).json()["held_fen"] == 0
    assert api.auditor.get(f"/v1/regulator/court-orders/{order_id}").json()["status"] == "executed"
    r = post(second_regulator, f"/v1/regulator/court-orders/{order_id}/approve")
    assert_problem(r, 409, "proposal-not-pending")
    assert_problem(api.auditor.get("/v1/regulator/court-orders/999999"), 404, "court-order-not-found")


def test_a_cancelled_court_order_moves_nothing(api: Api, second_regulator: httpx.Client) -> None:
    debtor, _ = person(api, 900)
    creditor, _ = person(api)
    order = {"from": debtor, "to": creditor, "amount_fen": 900, "case_number": "AML-7"}
    order_id = api.post("regulator", "/v1/regulator/court-orders", order).json()["order_id"]
    r = post(second_regulator, f"/v1/regulator/court-orders/{order_id}/cancel")
    assert r.status_code == 200, r.text
    assert api.auditor.get(f"/v1/regulator/court-orders/{order_id}").json()["status"] == "cancelled"
    r = post(second_regulator, f"/v1/regulator/court-orders/{order_id}/approve")
    assert_problem(r, 409, "proposal-not-pending")
    assert (balance(api, debtor), balance(api, creditor)) == (900, 0)


def test_a_recovered_wallets_old_address_is_refused_everywhere(api: Api) -> None:
    lost, identity = person(api, 3_000)
    hold(api, lost, 1_000)
    other, _ = person(api, 100)
    r = api.post(
        "operator", f"/v1/wallets/{lost}/recovery", {"evidence": "face check at counter 3, clerk 17"}
    )
    assert r.status_code == 201, r.text
    recovery_id, replacement = r.json()["recovery_id"], r.json()["replacement"]
    assert "face check" not in r.text  # only the evidence's hash is kept
    got = api.auditor.get(f"/v1/regulator/recoveries/{recovery_id}").json()
    assert (got["status"], got["lost"], got["replacement"]) == ("pending", lost, replacement)
    assert_problem(
        api.post("operator", f"/v1/regulator/recoveries/{recovery_id}/approve"), 403, "forbidden-role"
    )
    r = api.post("regulator", f"/v1/regulator/recoveries/{recovery_id}/approve")
    assert r.status_code == 200, r.text
    assert api.auditor.get(f"/v1/regulator/recoveries/{recovery_id}").json()["status"] == "executed"
    assert (balance(api, lost), balance(api, replacement)) == (0, 3_000)
    old = api.auditor.get(f"/v1/wallets/{lost}").json()
    assert (old["retired"], old["successor"], old["held_fen"]) == (True, replacement, 0)
    new = api.auditor.get(f"/v1/wallets/{replacement}").json()
    assert (new["retired"], new["successor"], new["held_fen"], new["tier"]) == (False, None, 1_000, 2)
    assert api.auditor.get("/v1/regulator/holds", params={"wallet": replacement}).json()["held_fen"] == 1_000

    refused = [
        api.post("operator", "/v1/issuance", {"to": lost, "amount_fen": 1}),
        api.post("operator", "/v1/transfers", {"sender": other, "to": lost, "amount_fen": 1}),
        api.post("operator", "/v1/transfers", {"sender": lost, "to": other, "amount_fen": 1}),
        api.post(
            "regulator",
            "/v1/regulator/holds",
            {"wallet": lost, "amount_fen": 1, "reason": "x", "case_number": "y"},
        ),
        api.post("operator", f"/v1/wallets/{lost}/recovery", {"evidence": "again"}),
    ]
    for r in refused:
        body = assert_problem(r, 410, "wallet-retired")
        assert body["error"]["name"] == "WalletRetired"
    assert balance(api, other) == 100
    # the replacement moves the free part of what it took over; a payroll row by identity finds it
    r = api.post("operator", "/v1/transfers", {"sender": replacement, "to": other, "amount_fen": 2_000})
    assert r.status_code == 200, r.text
    found = api.auditor.get("/v1/wallets", params={"identity": identity}).json()["items"]
    assert {w["address"] for w in found} == {lost, replacement}
    # a payroll row addressed by the identity goes to the successor, never to the retired wallet
    employer = api.new_wallet(kind="institution", tier=1, name="Employer")
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    batch = {
        "reference": f"payroll-{uuid.uuid4().hex[:10]}",
        "payer": employer,
        "purpose": "salary",
        "mode": "explicit",
        "ends_at": datetime.fromtimestamp(now + 30 * 86_400, UTC).isoformat(),
        "unit": "fen",
        "rows": [{"identity": identity, "amount": 100}],
    }
    r = api.post("operator", "/v1/disbursements", batch)
    assert r.status_code == 201, r.text
    row = api.operator.get(f"/v1/disbursements/{batch['reference']}/rows/0").json()
    assert row["recipient"] == replacement
    r = api.post("operator", "/v1/redemptions", {"from": replacement, "amount_fen": 1})
    assert_problem(r, 409, "amount-frozen")


def test_a_refused_recovery_leaves_no_replacement_record(api: Api) -> None:
    """A merchant's wallet is not recovered to a personal one here: a self-custody replacement
    already registered is refused (409), and a proposal the chain refuses leaves no record."""
    lost, _ = person(api, 10)
    taken, _ = person(api)
    r = api.post(
        "operator", f"/v1/wallets/{lost}/recovery", {"evidence": "e", "custody": "self", "address": taken}
    )
    assert_problem(r, 409, "wallet-already-registered")
    fresh = Account.create().address
    r = api.post("operator", f"/v1/wallets/{Account.create().address}/recovery", {"evidence": "e"})
    assert_problem(r, 404, "wallet-not-found")
    r = api.post(
        "operator", f"/v1/wallets/{lost}/recovery", {"evidence": "e", "custody": "self", "address": fresh}
    )
    assert r.status_code == 201, r.text
    assert r.json()["replacement"] == fresh


def test_a_second_recovery_of_a_wallet_is_refused_while_one_is_pending(api: Api) -> None:
    """Red team F6: a second proposal for the same lost wallet is refused (409 recovery-pending:
    it could never be approved after the first), a replay of the first gets its first answer, and
    a replacement the chain never registered is not listed for the identity."""
    lost, identity = person(api, 10)
    key = str(uuid.uuid4())
    first = api.post("operator", f"/v1/wallets/{lost}/recovery", {"evidence": "face check"}, key=key)
    assert first.status_code == 201, first.text
    found = api.auditor.get("/v1/wallets", params={"identity": identity}).json()["items"]
    assert [w["address"] for w in found] == [lost]  # the replacement is not registered yet
    before = api.w3.eth.block_number
    r = api.post("operator", f"/v1/wallets/{lost}/recovery", {"evidence": "again"})
    body = assert_problem(r, 409, "recovery-pending")
    assert str(first.json()["recovery_id"]) in body["detail"]
    assert api.w3.eth.block_number == before
    again = api.post("operator", f"/v1/wallets/{lost}/recovery", {"evidence": "face check"}, key=key)
    assert (again.status_code, again.json()["id"]) == (201, first.json()["id"]), again.text
    r = api.post("regulator", f"/v1/regulator/recoveries/{first.json()['recovery_id']}/approve")
    assert r.status_code == 200, r.text
    found = api.auditor.get("/v1/wallets", params={"identity": identity}).json()["items"]
    assert {w["address"] for w in found} == {lost, first.json()["replacement"]}


def test_the_admin_reads_and_sets_the_personal_wallet_limit(api: Api) -> None:
    assert api.admin.get("/v1/admin/personal-wallet-limit").json() == {"limit": 1, "operation": None}
    assert_problem(api.operator.get("/v1/admin/personal-wallet-limit"), 403, "forbidden-role")
    first, identity = person(api, tier=3)
    r = api.post(
        "operator", "/v1/wallets", {"kind": "personal", "tier": 3, "display_name": "b", "identity": identity}
    )
    body = assert_problem(r, 409, "identity-wallet-limit")
    assert body["error"]["name"] == "IdentityWalletLimit"
    # the refused registration left no record: only the first wallet is listed for the identity
    assert [
        w["address"] for w in api.auditor.get("/v1/wallets", params={"identity": identity}).json()["items"]
    ] == [first]
    r = api.admin.put(
        "/v1/admin/personal-wallet-limit", json={"limit": 2}, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert r.status_code == 200, r.text
    assert r.json()["limit"] == 2
    try:
        r = api.post(
            "operator",
            "/v1/wallets",
            {"kind": "personal", "tier": 3, "display_name": "b", "identity": identity},
        )
        assert r.status_code == 201, r.text
    finally:
        r = api.admin.put(
            "/v1/admin/personal-wallet-limit",
            json={"limit": 1},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 200, r.text
    r = api.admin.put(
        "/v1/admin/personal-wallet-limit", json={"limit": 0}, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert_problem(r, 422, "invalid-request")


def test_a_voucher_programme_capped_per_identity_grants_one_red_packet_per_person(api: Api) -> None:
    office = api.new_wallet(kind="institution", tier=1, name="District commerce office")
    assert api.post("operator", "/v1/issuance", {"to": office, "amount_fen": 1_000_000}).status_code == 200
    one, identity = person(api, tier=2)
    two, _ = person(api, tier=3, identity=identity)  # the same person's wallet in another tier
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    body = {
        "issuer": office,
        "name": "red packets",
        "mode": "grant-list",
        "budget_fen": 100_000,
        "per_person_cap_fen": 1_000,
        "starts_at": datetime.fromtimestamp(now - 60, UTC).isoformat(),
        "expires_at": datetime.fromtimestamp(now + 30 * 86_400, UTC).isoformat(),
        "categories": [5411],
        "cap_per_identity": True,
    }
    key = str(uuid.uuid4())
    r = api.post("operator", "/v1/voucher-programs", body, key=key)
    assert r.status_code == 201, r.text
    pid = r.json()["programme_id"]
    assert pid is not None and api.app.state.ctx.vouchers.caps_per_identity(pid)
    again = api.post("operator", "/v1/voucher-programs", body, key=key)  # a replay changes nothing
    assert again.status_code == 201 and again.json()["programme_id"] == pid, again.text
    r = api.post(
        "operator",
        f"/v1/voucher-programs/{pid}/grants",
        {"unit": "fen", "rows": [{"recipient": one, "amount": 1_000}]},
    )
    assert r.status_code == 200, r.text
    r = api.post(
        "operator",
        f"/v1/voucher-programs/{pid}/grants",
        {"unit": "fen", "rows": [{"recipient": two, "amount": 1}]},
    )
    body = assert_problem(r, 422, "over-identity-cap")
    assert body["error"]["name"] == "VoucherOverIdentityCap"


def test_the_reconciliation_stays_clean_after_holds_court_orders_and_recovery(api: Api) -> None:
    """Last in the module: every operation above matches its events (chain/families.py
    ``expected``) and the event index holds the new events."""
    r = api.auditor.get("/v1/audit/reconciliation")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["verdict"] == "clean", report["discrepancies"]
    with api.app.state.ctx.db.session() as s:
        names = set(s.scalars(select(ChainEvent.name).where(ChainEvent.contract == "WalletRegistry")))
    assert {
        "HoldPlaced",
        "HoldReleased",
        "CourtOrderProposed",
        "CourtOrderExecuted",
        "CourtOrderCancelled",
        "RecoveryProposed",
        "WalletRecovered",
        "WalletRetiredTo",
        "PersonalWalletLimitChanged",
    } <= names
