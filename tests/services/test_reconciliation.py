"""The auditor's reconciliation over HTTP: clean after real activity in several families, and each
kind of tampering with the operator's database (a deleted operation, a changed amount, a changed or
deleted indexed event, one transaction counted by two payments, a bill reference paid twice, a code
paid to a non-merchant) caught and named; cash sent straight to a family contract reported as a
surplus with its sender, not as a broken invariant. The money-rule checks also run over hand-made
event lists for every family (and the token's PaidFor). Real chain, real database (SQLite and
PostgreSQL); tests/services/test_reconciliation_money_rules.py produces the bad states on chain."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import select

from chain.events import Event
from services.common.models import ChainEvent, CodePayment, Operation, PaymentCode
from services.operator.reconciliation import (
    check_frozen_parties,
    check_merchant_payees,
    holder_payments,
    holding,
)
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
    # read as a person: money in yuan with the fen beside it, the time in Beijing time
    assert page.headers["content-language"] == "en" and '<html lang="en">' in page.text
    assert "¥50.00 (5000 fen)" in page.text and "¥10.00 (1000 fen)" in page.text
    assert re.search(r"generated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", page.text), page.text[:2000]
    zh = api.auditor.get(
        "/v1/audit/reconciliation", params={"format": "html"}, headers={"Accept-Language": "zh-CN"}
    )
    assert zh.headers["content-language"] == "zh-CN" and '<html lang="zh-CN">' in zh.text
    assert "一致：链上记录与业务记录相符" in zh.text and "¥50.00（5000 分）" in zh.text
    assert "不变量检查" in zh.text and "CLEAN" not in zh.text
    en = api.auditor.get(
        "/v1/audit/reconciliation",
        params={"format": "html", "lang": "en"},
        headers={"Accept-Language": "zh-CN"},
    )
    assert en.headers["content-language"] == "en" and "CLEAN" in en.text


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


# -- the money rules, by tampering with the records ----------------------------------------------


def _pay_code(api: Api, merchant: str, amount: int, reference: str) -> dict[str, Any]:
    code = api.operator.post(
        "/v1/payment-codes", json={"merchant": merchant, "amount_fen": amount, "reference": reference}
    )
    assert code.status_code == 201, code.text
    payer = api.new_wallet(tier=2, name="diner")
    assert api.post("operator", "/v1/issuance", {"to": payer, "amount_fen": 10_000}).status_code == 200
    r = api.post(
        "operator", f"/v1/payment-codes/{code.json()['id']}/pay", {"form": "custodial", "payer": payer}
    )
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    return r.json()


@pytest.fixture(scope="module")
def bills(api: Api, activity: dict) -> dict[str, Any]:
    """Two bills of one canteen, each paid once, by custodial wallets through payment codes."""
    canteen = api.new_wallet(kind="merchant", tier=2, category=5812, name="canteen")
    first = _pay_code(api, canteen, 1_800, "table-1")
    second = _pay_code(api, canteen, 2_200, "table-2")
    return {"canteen": canteen, "first": first, "second": second}


@contextmanager
def tampered_code(api: Api, code_id: str, **values: Any) -> Iterator[None]:
    db = api.app.state.ctx.db
    with db.session() as s:
        row = s.get(PaymentCode, code_id)
        saved = {k: getattr(row, k) for k in values}
        for k, v in values.items():
            setattr(row, k, v)
        s.commit()
    try:
        yield
    finally:
        with db.session() as s:
            row = s.get(PaymentCode, code_id)
            for k, v in saved.items():
                setattr(row, k, v)
            s.commit()


def test_one_transaction_counted_by_two_operations_is_caught(api: Api, activity: dict, bills: dict) -> None:
    """What a relay of one transaction to two codes left behind: a second operation (and a second
    code payment) carrying the first one's transaction."""
    db = api.app.state.ctx.db
    paid = bills["first"]["payments"][0]
    with db.session() as s:
        row = s.get(Operation, paid["operation_id"])
        twin = {c.name: getattr(row, c.name) for c in Operation.__table__.columns}
        twin.update(id=str(uuid.uuid4()), idempotency_key=str(uuid.uuid4()))
        s.add(Operation(**twin))
        s.commit()
    try:
        found = reconciliation(api)["discrepancies"]
    finally:
        with db.session() as s:
            s.delete(s.get(Operation, twin["id"]))
            s.commit()
    assert [(d["kind"], d["tx_hash"]) for d in found] == [("transaction-counted-twice", paid["tx_hash"])]
    assert twin["id"] in found[0]["detail"] and paid["operation_id"] in found[0]["detail"]
    assert reconciliation(api)["verdict"] == "clean"


def test_a_bill_reference_paid_by_two_codes_is_caught(api: Api, activity: dict, bills: dict) -> None:
    first, second = bills["first"], bills["second"]
    with tampered_code(api, second["id"], reference=first["reference"], held_reference=None):
        found = reconciliation(api)["discrepancies"]
    assert [d["kind"] for d in found] == ["reference-paid-twice"]
    assert first["id"] in found[0]["detail"] and second["id"] in found[0]["detail"]
    assert "'table-1'" in found[0]["detail"]
    assert reconciliation(api)["verdict"] == "clean"


def test_a_code_paid_to_a_non_merchant_is_caught(api: Api, activity: dict, bills: dict) -> None:
    with tampered_code(api, bills["first"]["id"], merchant=activity["bob"]):
        found = reconciliation(api)["discrepancies"]
    assert [(d["kind"], d["tx_hash"]) for d in found] == [
        ("payee-not-a-merchant", bills["first"]["payments"][0]["tx_hash"])
    ]
    assert activity["bob"] in found[0]["detail"] and "a personal wallet" in found[0]["detail"]
    assert reconciliation(api)["verdict"] == "clean"


def test_two_code_payments_of_one_transaction_cannot_be_recorded(api: Api, bills: dict) -> None:
    """The database itself refuses a second payment carrying a transaction already counted."""
    from sqlalchemy.exc import IntegrityError

    db = api.app.state.ctx.db
    paid = bills["first"]["payments"][0]
    with db.session() as s:
        s.add(
            CodePayment(
                code_id=bills["second"]["id"],
                form="custodial",
                payer=paid["payer"],
                amount_fen=1,
                operation_id=str(uuid.uuid4()),
                status="confirmed",
                tx_hash=paid["tx_hash"],
            )
        )
        with pytest.raises(IntegrityError):
            s.commit()


# -- the money rules over hand-made events: every family, and the token's PaidFor -----------------

HOLDER, MERCHANT, PERSON, CARD = (f"0x{c * 40}" for c in "abcd")


def ev(contract: str, name: str, tx: str, **args: Any) -> Event:
    return Event(
        contract, name, args, address="0x" + "00" * 20, block_number=int(tx), log_index=0, tx_hash=tx
    )


def registered(package_merchant: str = MERCHANT) -> list[Event]:
    return [
        ev("WalletRegistry", "WalletRegistered", "1", wallet=HOLDER, kind=1),
        ev("WalletRegistry", "WalletRegistered", "1", wallet=MERCHANT, kind=2),
        ev("WalletRegistry", "WalletRegistered", "1", wallet=PERSON, kind=1),
        ev("HardWalletSettlement", "CardRegistered", "2", card=CARD, holder=HOLDER),
        ev("PrepaidEscrow", "PackagePrepaid", "2", id=7, consumer=HOLDER, merchant=package_merchant),
        ev("QuickPay", "MandateGranted", "2", id=3, holder=HOLDER, merchant=MERCHANT),
    ]


def family_payments(payee: str, tx: str) -> list[Event]:
    """One payment on the holder's behalf in each family that names a holder."""
    return [
        ev("HardWalletSettlement", "PaymentSettled", tx, card=CARD, counter=1, merchant=payee, amount=5),
        ev(
            "HardWalletSettlement",
            "PaymentShortfall",
            tx,
            card=CARD,
            counter=2,
            merchant=payee,
            amount=9,
            covered=4,
        ),
        ev(
            "PrepaidEscrow", "SessionsConsumed", tx, id=7, sessions=1, amount=6, remaining=1, bySignature=True
        ),
        ev("QuickPay", "MandatePulled", tx, id=3, merchant=payee, orderRef=b"x", amount=7, spentToday=7),
        ev(
            "VoucherProgrammes",
            "Spent",
            tx,
            id=1,
            holder=HOLDER,
            merchant=payee,
            category=5812,
            bill=8,
            voucher=8,
            cash=0,
            bySignature=False,
        ),
        ev("DigitalCash", "PaidFor", tx, family=CARD, owner=HOLDER, to=payee, amount=3),
    ]


def test_every_family_payment_names_its_owner_and_payee() -> None:
    paid = holder_payments(registered() + family_payments(MERCHANT, "5"))
    assert sorted((p.source, p.owner, p.payee, p.amount, p.merchant_only) for p in paid) == sorted(
        [
            ("HardWalletSettlement.PaymentSettled", HOLDER, MERCHANT, 5, True),
            ("HardWalletSettlement.PaymentShortfall", HOLDER, MERCHANT, 4, True),
            ("PrepaidEscrow.SessionsConsumed", HOLDER, MERCHANT, 6, True),
            ("QuickPay.MandatePulled", HOLDER, MERCHANT, 7, True),
            ("VoucherProgrammes.Spent", HOLDER, MERCHANT, 8, True),
            ("DigitalCash.PaidFor", HOLDER, MERCHANT, 3, False),
        ]
    )
    # the family's event and the token's PaidFor for the same payment count once, as the family's
    both = holder_payments(
        [
            *registered(),
            ev("DigitalCash", "PaidFor", "6", family=CARD, owner=HOLDER, to=MERCHANT, amount=5),
            ev(
                "HardWalletSettlement",
                "PaymentSettled",
                "6",
                card=CARD,
                counter=3,
                merchant=MERCHANT,
                amount=5,
            ),
        ]
    )
    assert [(p.source, p.merchant_only) for p in both] == [("DigitalCash.PaidFor", True)]
    # a refund (the owner's money back to the owner) is no payment on the owner's behalf
    refund = ev("DigitalCash", "PaidFor", "7", family=CARD, owner=HOLDER, to=HOLDER, amount=5)
    assert holder_payments([*registered(), refund]) == []


def test_a_payment_for_an_owner_frozen_at_that_block_is_named_in_every_family() -> None:
    before = registered() + family_payments(MERCHANT, "4")
    frozen = [ev("WalletRegistry", "Frozen", "5", wallet=HOLDER, regulator=PERSON)]
    during = family_payments(MERCHANT, "6")
    thawed = [ev("WalletRegistry", "Unfrozen", "7", wallet=HOLDER, regulator=PERSON)]
    after = family_payments(MERCHANT, "8")
    events = before + frozen + during + thawed + after
    found = check_frozen_parties(holder_payments(events), events)
    assert {(d.kind, d.tx_hash) for d in found} == {("paid-for-frozen-owner", "6")}
    assert len(found) == 1 and "frozen since block 5" in found[0].detail
    # and each family alone is caught (one check per family event, not one for the transaction)
    for one in family_payments(MERCHANT, "6"):
        events = registered() + frozen + [one]
        assert [d.kind for d in check_frozen_parties(holder_payments(events), events)] == [
            "paid-for-frozen-owner"
        ]
    # a frozen payee too
    events = [*registered(), ev("WalletRegistry", "Frozen", "5", wallet=MERCHANT, regulator=PERSON), *during]
    assert {d.kind for d in check_frozen_parties(holder_payments(events), events)} == {"paid-to-frozen-payee"}


def test_a_payment_to_a_non_merchant_is_named_where_the_scene_needs_a_merchant() -> None:
    kinds = {HOLDER: 1, MERCHANT: 2, PERSON: 1}
    for one in family_payments(PERSON, "6"):
        found = check_merchant_payees(holder_payments([*registered(PERSON), one]), kinds)
        expected = [] if one.name == "PaidFor" else ["payee-not-a-merchant"]  # PaidFor names no scene
        assert [d.kind for d in found] == expected, one.name
    assert check_merchant_payees(holder_payments(registered() + family_payments(MERCHANT, "6")), kinds) == []


def test_a_surplus_is_explained_by_direct_transfers_or_is_a_discrepancy() -> None:
    escrow, stranger = "0x" + "ee" * 20, PERSON
    events = [
        ev("DigitalCash", "Transfer", "3", **{"from": HOLDER, "to": escrow, "value": 50}),
        ev("PrepaidEscrow", "PackagePrepaid", "3", id=1, consumer=HOLDER, merchant=MERCHANT),
        ev("DigitalCash", "Transfer", "4", **{"from": stranger, "to": escrow, "value": 1}),
    ]
    check, surplus, problem = holding("prepaid", "PrepaidEscrow", escrow, 50, 51, "books", events)
    assert check.holds and problem is None
    assert surplus is not None and surplus.surplus_fen == 1
    assert surplus.direct_transfers == [{"from": stranger, "value_fen": 1, "tx_hash": "4"}]
    check, surplus, problem = holding("prepaid", "PrepaidEscrow", escrow, 49, 51, "books", events)
    assert check.holds and problem is not None and problem.kind == "surplus-unexplained"
    check, surplus, problem = holding("prepaid", "PrepaidEscrow", escrow, 52, 51, "books", events)
    assert not check.holds and surplus is None and problem is None  # a deficit: a broken invariant


def test_cash_sent_straight_to_a_family_contract_is_a_surplus_with_its_sender(
    api: Api, activity: dict
) -> None:
    """Last in this module: it leaves a surplus (and an external transaction) on chain for good."""
    from chain.exceptions import ContractError

    ctx = api.app.state.ctx
    stranger = Account.create()
    body = {"kind": "personal", "tier": 2, "display_name": "stranger", "identity": f"s-{uuid.uuid4()}"}
    r = api.post("operator", "/v1/wallets", {**body, "custody": "self", "address": stranger.address})
    assert r.status_code == 201, r.text
    assert (
        api.post("operator", "/v1/issuance", {"to": stranger.address, "amount_fen": 100}).status_code == 200
    )
    ctx.tx.send_value(ctx.operator, stranger.address, 10**17)
    escrow = ctx.prepaid.escrow.address
    try:
        sent = ctx.cash.transfer(stranger, escrow, 1)
    except ContractError as exc:  # the token refuses cash sent to a family contract: no surplus arises
        pytest.skip(f"the token refuses a direct transfer to a family contract ({exc})")
    report = reconciliation(api)
    assert report["verdict"] == "clean", report["discrepancies"]
    assert all(c["holds"] for c in report["invariants"]), report["invariants"]
    assert report["surpluses"] == [
        {
            "family": "prepaid",
            "contract": "PrepaidEscrow",
            "address": escrow,
            "surplus_fen": 1,
            "direct_transfers": [{"from": stranger.address, "value_fen": 1, "tx_hash": sent.tx_hash}],
        }
    ]
    page = api.auditor.get("/v1/audit/reconciliation", params={"format": "html"}).text
    assert "CLEAN" in page and stranger.address in page
