"""The auditor's reconciliation over HTTP: clean after real activity in several families, and each
kind of tampering with the operator's database (a deleted operation, a changed amount, a changed or
deleted indexed event) caught and named. Real chain, real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import select

from services.common.models import ChainEvent, Operation
from tests.services.conftest import Api


@pytest.fixture(scope="module")
def activity(api: Api) -> dict[str, Any]:
    """Wallets, issuance, a transfer, a prepaid package, a small disbursement, and one transaction
    the service did not send (a self-custody wallet paying by itself)."""
    ctx = api.app.state.ctx
    alice = api.new_wallet(tier=2, name="alice")
    bob = api.new_wallet(tier=2, name="bob")
    gym = api.new_wallet(kind="merchant", tier=2, category=7997, name="gym")
    assert api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 500_000}).status_code == 200
    r = api.post("operator", "/v1/transfers", {"from": alice, "to": bob, "amount_fen": 12_345})
    assert r.status_code == 200, r.text
    transfer_op = r.json()["id"]
    assert (
        api.post(
            "regulator", "/v1/prepaid/merchants", {"merchant": gym, "supervised_bps": 10_000}
        ).status_code
        == 200
    )
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    package = {
        "consumer": alice,
        "merchant": gym,
        "sessions": 4,
        "unit_price_fen": 1_000,
        "expires_at": expires,
    }
    r = api.post("operator", "/v1/prepaid/packages", package)
    assert r.status_code == 201, r.text
    (prepaid,) = [e for e in r.json()["result"]["events"] if e["name"] == "PackagePrepaid"]
    consumed = api.post("operator", f"/v1/prepaid/packages/{prepaid['args']['id']}/consume", {"sessions": 1})
    assert consumed.status_code == 200, consumed.text
    payer = api.new_wallet(kind="institution", tier=1, name="office")
    assert api.post("operator", "/v1/issuance", {"to": payer, "amount_fen": 100_000}).status_code == 200
    checker = api.new_wallet(tier=2, name="checker")
    key = api.admin.post("/v1/api-keys", json={"role": "checker", "wallet": checker}).json()["key"]
    officers = {"account": checker, "role": "checker"}
    assert api.post("operator", f"/v1/disbursements/payers/{payer}/officers", officers).status_code == 200
    batch = {
        "reference": f"rec-{uuid.uuid4().hex[:6]}",
        "payer": payer,
        "purpose": "subsidy",
        "ends_at": expires,
        "unit": "fen",
        "rows": [{"recipient": bob, "amount": 3_000}, {"recipient": alice, "amount": 2_000}],
    }
    r = api.post("operator", "/v1/disbursements", batch)
    assert r.status_code == 201, r.text
    ref = r.json()["reference"]
    approve = api.clients["anonymous"].post(
        f"/v1/disbursements/{ref}/approve", headers={"X-API-Key": key, "Idempotency-Key": str(uuid.uuid4())}
    )
    assert approve.status_code == 200, approve.text
    assert api.operator.post(f"/v1/disbursements/{ref}/execute", json={}).status_code == 202
    _wait_executed(api, ref)
    # A self-custody wallet pays on its own: the service did not send it and must not blame it.
    own = Account.create()
    body = {"kind": "personal", "tier": 2, "display_name": "own", "identity": f"own-{uuid.uuid4()}"}
    assert (
        api.post("operator", "/v1/wallets", {**body, "custody": "self", "address": own.address}).status_code
        == 201
    )
    assert api.post("operator", "/v1/issuance", {"to": own.address, "amount_fen": 9_000}).status_code == 200
    ctx.tx.send_value(ctx.operator, own.address, 10**17)
    ctx.cash.transfer(own, bob, 4_000)
    return {"alice": alice, "bob": bob, "transfer_op": transfer_op}


def _wait_executed(api: Api, ref: str) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if api.operator.get(f"/v1/disbursements/{ref}").json()["status"] == "executed":
            return
        time.sleep(0.2)
    raise AssertionError("the disbursement did not finish")


def reconciliation(api: Api) -> dict[str, Any]:
    r = api.auditor.get("/v1/audit/reconciliation")
    assert r.status_code == 200, r.text
    return r.json()


def test_clean_after_activity_in_several_families(api: Api, activity: dict) -> None:
    report = reconciliation(api)
    assert report["verdict"] == "clean", report["discrepancies"]
    counts = report["counts"]
    assert counts["external_transactions"] == 1 and counts["operation_transactions"] >= 10
    assert counts["events"] == counts["indexed_events"]
    assert {c["family"] for c in report["invariants"]} >= {"token", "prepaid", "disburse"}
    assert all(c["holds"] for c in report["invariants"])
    totals = report["totals"]
    assert totals["disbursed_by_purpose_fen"] == {"subsidy": 5_000}
    assert totals["paid_to_merchants_by_category_fen"] == {"7997": 1_000}  # one session released
    page = api.auditor.get("/v1/audit/reconciliation", params={"format": "html"})
    assert page.headers["content-type"].startswith("text/html") and "CLEAN" in page.text


@contextmanager
def tampered_operation(api: Api, op_id: str, change: Any) -> Iterator[None]:
    db = api.app.state.ctx.db
    with db.session() as s:
        row = s.get(Operation, op_id)
        saved = copy.deepcopy({"request": row.request, "result": row.result})
        change(s, row)
        s.commit()
    try:
        yield
    finally:
        with db.session() as s:
            row = s.get(Operation, op_id)
            row.request, row.result = saved["request"], saved["result"]
            s.commit()


def test_a_changed_amount_is_caught(api: Api, activity: dict) -> None:
    def inflate(_s: Any, row: Operation) -> None:
        row.request = {**row.request, "amount_fen": row.request["amount_fen"] + 1}

    with tampered_operation(api, activity["transfer_op"], inflate):
        found = reconciliation(api)["discrepancies"]
    assert [(d["kind"], d["operation_id"]) for d in found] == [("request-differs", activity["transfer_op"])]
    assert reconciliation(api)["verdict"] == "clean"


def test_a_changed_stored_event_is_caught(api: Api, activity: dict) -> None:
    def rewrite(_s: Any, row: Operation) -> None:
        result = copy.deepcopy(row.result)
        for e in result["events"]:
            if e["name"] == "Transfer":
                e["args"]["value"] += 100
        row.result = result

    with tampered_operation(api, activity["transfer_op"], rewrite):
        kinds = [d["kind"] for d in reconciliation(api)["discrepancies"]]
    assert kinds == ["events-differ"]


def test_a_deleted_operation_is_caught(api: Api, activity: dict) -> None:
    db = api.app.state.ctx.db
    with db.session() as s:
        row = s.get(Operation, activity["transfer_op"])
        saved = {c.name: getattr(row, c.name) for c in Operation.__table__.columns}
        s.delete(row)
        s.commit()
    try:
        found = reconciliation(api)["discrepancies"]
    finally:
        with db.session() as s:
            s.add(Operation(**saved))
            s.commit()
    assert [d["kind"] for d in found] == ["transaction-without-operation"]
    assert found[0]["tx_hash"] == saved["tx_hash"]
    assert reconciliation(api)["verdict"] == "clean"


def test_a_changed_or_deleted_indexed_event_is_caught(api: Api, activity: dict) -> None:
    db = api.app.state.ctx.db
    with db.session() as s:
        row = s.scalars(select(ChainEvent).where(ChainEvent.name == "Transfer")).first()
        saved = {c.name: getattr(row, c.name) for c in ChainEvent.__table__.columns}
        row.args = {**row.args, "value": row.args["value"] + 1}
        s.commit()
    assert [d["kind"] for d in reconciliation(api)["discrepancies"]] == ["index-differs"]
    with db.session() as s:
        s.delete(s.get(ChainEvent, saved["id"]))
        s.commit()
    assert [d["kind"] for d in reconciliation(api)["discrepancies"]] == ["index-missing-event"]
    with db.session() as s:
        s.add(ChainEvent(**saved))
        s.commit()
    assert reconciliation(api)["verdict"] == "clean"
