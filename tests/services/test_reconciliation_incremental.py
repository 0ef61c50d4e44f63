"""The incremental reconciliation: it resumes from its checkpoint, reads only the new blocks from the
node, and always gives the full replay's verdict: after new activity, after each kind of record
tampering on either side of the checkpoint, after a money-rule breach that appears after the
checkpoint (with the state it needs, a freeze or a registration, from before it), and after the
checkpoint is invalidated (the chain reorganised under it, or the index below it changed). The
latest verdict is served from the database; the background refresh keeps it current.

Its own module (its own chain and database): a reorganisation and surpluses stay on chain. Real
chain (in-process), real database (SQLite and PostgreSQL), real HTTP."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.common.models import ChainEvent, CodePayment, Operation
from services.common.problems import jsonable
from services.operator import reconcile_state
from services.operator.models import ReconciliationCheckpoint
from tests.services.conftest import ADMIN_KEY, Api
from tests.services.test_reconciliation import _pay_code

# What differs between two runs that agree: how they got there, and when.
RUN_FIELDS = {"generated_at", "mode", "resumed_from", "notes", "cost"}


def run(api: Api, full: bool = False) -> dict[str, Any]:
    r = api.auditor.get("/v1/audit/reconciliation", params={"full": str(full).lower()})
    assert r.status_code == 200, r.text
    return r.json()


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in RUN_FIELDS}


def both(api: Api) -> dict[str, Any]:
    """An incremental run (which resumes) and then a full replay: they must agree in everything
    but how they ran. Returns the incremental report."""
    incremental = run(api)
    assert incremental["mode"] == "incremental", incremental["notes"]
    full = run(api, full=True)
    assert full["mode"] == "full" and full["resumed_from"] is None
    assert incremental["to_block"] == full["to_block"]
    assert verdict(incremental) == verdict(full)
    return incremental


def checkpoint_block(api: Api) -> int:
    cp = reconcile_state.load(api.app.state.ctx.db)
    assert cp is not None
    return cp.block_number


@pytest.fixture(scope="module")
def people(api: Api) -> dict[str, Any]:
    alice = api.new_wallet(tier=2, name="alice")
    bob = api.new_wallet(tier=2, name="bob")
    canteen = api.new_wallet(kind="merchant", tier=2, category=5812, name="canteen")
    assert api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 300_000}).status_code == 200
    return {"alice": alice, "bob": bob, "canteen": canteen}


def test_latest_is_a_404_problem_before_the_first_run(api: Api) -> None:
    r = api.auditor.get("/v1/audit/reconciliation/latest")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "urn:xcpay:problem:no-reconciliation-yet"


def test_the_first_run_replays_and_the_next_resumes_from_its_checkpoint(api: Api, people: dict) -> None:
    first = run(api)
    assert first["verdict"] == "clean", first["discrepancies"]
    assert first["mode"] == "full" and first["resumed_from"] is None and first["notes"] == []
    assert checkpoint_block(api) == first["to_block"]
    r = api.post(
        "operator", "/v1/transfers", {"from": people["alice"], "to": people["bob"], "amount_fen": 700}
    )
    assert r.status_code == 200, r.text
    second = both(api)
    assert second["resumed_from"] == first["to_block"] and second["to_block"] > first["to_block"]
    assert second["verdict"] == "clean", second["discrepancies"]
    # Only the new blocks came from the node; the rest from the index, proved by the checkpoint.
    assert second["cost"]["blocks_read_from_node"] == second["to_block"] - first["to_block"]
    assert second["cost"]["events_read_from_index"] == first["counts"]["events"]
    assert second["counts"]["events"] > first["counts"]["events"]


def test_latest_answers_from_the_stored_verdict(api: Api, people: dict) -> None:
    done = run(api)
    latest = api.auditor.get("/v1/audit/reconciliation/latest")
    assert latest.status_code == 200, latest.text
    body = latest.json()
    assert body["to_block"] == done["to_block"] and body["verdict"] == done["verdict"]
    assert body["discrepancies"] == done["discrepancies"] and 0 <= body["age_s"] < 600
    assert api.operator.get("/v1/audit/reconciliation/latest").status_code == 403  # auditors only


def test_a_refresh_with_no_new_block_reads_no_block(api: Api, people: dict) -> None:
    before = run(api)
    again = run(api)
    assert again["to_block"] == before["to_block"] and again["mode"] == "incremental"
    assert again["cost"]["blocks_read_from_node"] == 0 and again["cost"]["events_read_from_node"] == 0
    assert verdict(again) == verdict(before)
    # Nothing written since the checkpoint's run began: its report stands, read from no index row.
    assert again["cost"]["unchanged_since_checkpoint"] is True
    assert again["cost"]["events_read_from_index"] == 0


def test_a_record_changed_with_no_new_block_is_still_caught(api: Api, people: dict) -> None:
    """The no-new-block answer rests on the count of writes the database's triggers keep: a
    record changed by hand (no service code involved) since the checkpoint is checked again."""
    db = api.app.state.ctx.db
    assert run(api)["verdict"] == "clean"
    assert run(api)["cost"].get("unchanged_since_checkpoint") is True
    with db.session() as s:
        op = s.scalars(
            select(Operation).where(Operation.kind == "cash.issue", Operation.status == "confirmed")
        ).first()
        assert op is not None
        op_id, saved = op.id, dict(op.request)
        op.request = {**saved, "amount_fen": saved["amount_fen"] + 1}
        s.commit()
    try:
        report = run(api)
    finally:
        with db.session() as s:
            s.get(Operation, op_id).request = saved
            s.commit()
    assert report["mode"] == "incremental" and "unchanged_since_checkpoint" not in report["cost"]
    assert [d["kind"] for d in report["discrepancies"]] == ["request-differs"]
    with twin_of(api, op_id):  # an inserted row, no new block either
        report = run(api)
    assert "unchanged_since_checkpoint" not in report["cost"]
    assert report["verdict"] == "discrepancies"
    again = run(api)
    assert again["verdict"] == "clean" and "unchanged_since_checkpoint" not in again["cost"]
    assert run(api)["cost"]["unchanged_since_checkpoint"] is True


@contextmanager
def twin_of(api: Api, op_id: str) -> Iterator[None]:
    """A second operation carrying an operation's transaction (what a double count leaves)."""
    db = api.app.state.ctx.db
    with db.session() as s:
        row = s.get(Operation, op_id)
        twin = {c.name: getattr(row, c.name) for c in Operation.__table__.columns}
        twin.update(id=str(uuid.uuid4()), idempotency_key=str(uuid.uuid4()))
        s.add(Operation(**twin))
        s.commit()
    try:
        yield
    finally:
        with db.session() as s:
            s.delete(s.get(Operation, twin["id"]))
            s.commit()


@contextmanager
def payment_by(api: Api, payment_id: int, **values: Any) -> Iterator[None]:
    db = api.app.state.ctx.db
    with db.session() as s:
        row = s.get(CodePayment, payment_id)
        saved = {k: getattr(row, k) for k in values}
        for k, v in values.items():
            setattr(row, k, v)
        s.commit()
    try:
        yield
    finally:
        with db.session() as s:
            row = s.get(CodePayment, payment_id)
            for k, v in saved.items():
                setattr(row, k, v)
            s.commit()


def _payment_row(api: Api, tx_hash: str) -> int:
    with api.app.state.ctx.db.session() as s:
        return int(s.scalar(select(CodePayment.id).where(CodePayment.tx_hash == tx_hash)))


def test_money_rules_broken_after_the_checkpoint_are_caught_incrementally(api: Api, people: dict) -> None:
    """The checkpoint comes first, with what the rules need from before it (carol frozen, bob
    registered as a personal wallet); then a code payment in new blocks, whose records are made to
    break each rule in turn. The incremental run names each breach as the full replay does."""
    carol = api.new_wallet(tier=2, name="carol")
    r = api.post("regulator", "/v1/regulator/freeze", {"address": carol})
    assert r.status_code == 200, r.text
    assert run(api)["verdict"] == "clean"
    cp = checkpoint_block(api)

    bill = _pay_code(api, people["canteen"], 1_500, f"bill-{uuid.uuid4().hex[:6]}")
    paid = bill["payments"][0]
    tx_hash = paid["tx_hash"]
    row = _payment_row(api, tx_hash)

    with twin_of(api, paid["operation_id"]):
        report = both(api)
    assert report["resumed_from"] >= cp
    assert [(d["kind"], d["tx_hash"]) for d in report["discrepancies"]] == [
        ("transaction-counted-twice", tx_hash)
    ]

    with payment_by(api, row, payer=carol):  # the records say frozen carol paid (since before the checkpoint)
        report = both(api)
    assert [(d["kind"], d["tx_hash"]) for d in report["discrepancies"]] == [
        ("paid-for-frozen-owner", tx_hash)
    ]
    assert carol in report["discrepancies"][0]["detail"]

    other = _pay_code(api, people["canteen"], 900, f"bill-{uuid.uuid4().hex[:6]}")
    with _same_reference(api, bill["id"], other["id"]):
        report = both(api)
    assert [d["kind"] for d in report["discrepancies"]] == ["reference-paid-twice"]

    with _code_merchant(api, bill["id"], people["bob"]):  # bob registered before the checkpoint
        report = both(api)
    assert [(d["kind"], d["tx_hash"]) for d in report["discrepancies"]] == [("payee-not-a-merchant", tx_hash)]
    assert "a personal wallet" in report["discrepancies"][0]["detail"]

    assert both(api)["verdict"] == "clean"
    r = api.post("regulator", "/v1/regulator/unfreeze", {"address": carol})
    assert r.status_code == 200, r.text


@contextmanager
def _same_reference(api: Api, first_code: str, second_code: str) -> Iterator[None]:
    from services.common.models import PaymentCode

    db = api.app.state.ctx.db
    with db.session() as s:
        a, b = s.get(PaymentCode, first_code), s.get(PaymentCode, second_code)
        saved = (b.reference, b.held_reference)
        b.reference, b.held_reference = a.reference, None
        s.commit()
    try:
        yield
    finally:
        with db.session() as s:
            b = s.get(PaymentCode, second_code)
            b.reference, b.held_reference = saved
            s.commit()


@contextmanager
def _code_merchant(api: Api, code_id: str, merchant: str) -> Iterator[None]:
    from services.common.models import PaymentCode

    db = api.app.state.ctx.db
    with db.session() as s:
        row = s.get(PaymentCode, code_id)
        saved, row.merchant = row.merchant, merchant
        s.commit()
    try:
        yield
    finally:
        with db.session() as s:
            s.get(PaymentCode, code_id).merchant = saved
            s.commit()


def test_a_transaction_a_service_key_sent_without_an_operation_after_the_checkpoint_is_caught(
    api: Api, people: dict
) -> None:
    """A chain-side breach in the new blocks: a custodial wallet's key moved cash with no operation."""
    assert run(api)["verdict"] == "clean"
    ctx = api.app.state.ctx
    sent = ctx.cash.transfer(ctx.custodial(people["alice"]), people["bob"], 11)
    report = both(api)
    assert [(d["kind"], d["tx_hash"]) for d in report["discrepancies"]] == [
        ("transaction-without-operation", sent.tx_hash)
    ]
    # It stays named on every later run (the sender is remembered, not asked again).
    again = both(api)
    assert again["discrepancies"] == report["discrepancies"]
    assert again["cost"]["node_round_trips"] <= report["cost"]["node_round_trips"]
    # Give it its operation so the rest of the module starts clean: record it as a transfer.
    with ctx.db.session() as s:
        op = s.scalars(select(Operation).where(Operation.kind == "cash.transfer")).first()
        twin = {c.name: getattr(op, c.name) for c in Operation.__table__.columns}
        twin.update(
            id=str(uuid.uuid4()),
            idempotency_key=str(uuid.uuid4()),
            tx_hash=sent.tx_hash,
            request={"sender": people["alice"], "to": people["bob"], "amount_fen": 11},
            result={
                "events": [
                    {"contract": e.contract, "name": e.name, "args": jsonable(e.args)} for e in sent.events
                ]
            },
        )
        s.add(Operation(**twin))
        s.commit()
    assert both(api)["verdict"] == "clean"


def test_a_changed_index_row_is_caught_after_and_before_the_checkpoint(api: Api, people: dict) -> None:
    db = api.app.state.ctx.db
    assert run(api)["verdict"] == "clean"
    cp = checkpoint_block(api)
    r = api.post("operator", "/v1/transfers", {"from": people["alice"], "to": people["bob"], "amount_fen": 5})
    assert r.status_code == 200, r.text
    api.app.state.indexer.catch_up()

    def tamper(newer: bool) -> tuple[int, dict[str, Any]]:
        with db.session() as s:
            where = ChainEvent.block_number > cp if newer else ChainEvent.block_number <= cp
            row = s.scalars(select(ChainEvent).where(where, ChainEvent.name == "Transfer")).first()
            saved = dict(row.args)
            row.args = {**saved, "value": saved["value"] + 1}
            s.commit()
            return row.id, saved

    def restore(row_id: int, args: dict[str, Any]) -> None:
        with db.session() as s:
            s.get(ChainEvent, row_id).args = args
            s.commit()

    row_id, saved = tamper(newer=True)  # in the blocks the run reads from the node: row by row
    try:
        report = run(api)
        full = run(api, full=True)
    finally:
        restore(row_id, saved)
    assert report["mode"] == "incremental"
    assert [d["kind"] for d in report["discrepancies"]] == ["index-differs"]
    assert verdict(report) == verdict(full)
    assert run(api)["verdict"] == "clean"

    cp = checkpoint_block(api)
    row_id, saved = tamper(newer=False)  # below the checkpoint: its digest no longer matches
    try:
        report = run(api)
        full = run(api, full=True)
    finally:
        restore(row_id, saved)
    assert report["mode"] == "full" and report["resumed_from"] is None
    assert report["notes"] == [
        f"the event index up to block {cp} changed since it was checked: replayed from deployment"
    ]
    assert [d["kind"] for d in report["discrepancies"]] == ["index-differs"]
    assert verdict(report) == verdict(full)
    assert both(api)["verdict"] == "clean"


def test_a_reorganisation_under_the_checkpoint_starts_over_with_the_same_verdict(
    api: Api, people: dict
) -> None:
    """The chain the checkpoint saw is replaced (eth-tester's snapshot and revert: what a reorg or
    a node reset does) by another of the same height and more: the incremental run notices the
    checkpoint's block hash is gone, says so, replays from deployment, and agrees with a full run."""
    w3 = api.w3
    tester = w3.provider.ethereum_tester  # type: ignore[attr-defined]
    spender = w3.eth.accounts[9]
    assert run(api)["verdict"] == "clean"
    snapshot = tester.take_snapshot()
    for _ in range(3):  # blocks without events of ours
        w3.eth.send_transaction({"from": spender, "to": Account.create().address, "value": 1})
    seen = run(api)
    assert seen["mode"] == "incremental"
    cp = checkpoint_block(api)
    tester.revert_to_snapshot(snapshot)
    for _ in range(5):  # another branch, longer than the one the checkpoint saw
        w3.eth.send_transaction({"from": spender, "to": Account.create().address, "value": 2})
    assert w3.eth.block_number > cp
    report = run(api)
    assert report["mode"] == "full" and report["resumed_from"] is None
    assert report["notes"] == [
        f"the checkpoint at block {cp} is no longer on the node's chain (a reorganisation or a "
        "reset node): replayed from deployment"
    ]
    assert report["verdict"] == "clean", report["discrepancies"]
    assert verdict(report) == verdict(run(api, full=True))
    assert both(api)["verdict"] == "clean"


def test_a_cli_style_full_run_stores_its_checkpoint_too(api: Api, people: dict) -> None:
    from services.operator.reconciliation import reconcile

    ctx = api.app.state.ctx
    report = reconcile(ctx, full=True)
    assert report.mode == "full"
    with ctx.db.session() as s:
        row = s.get(ReconciliationCheckpoint, reconcile_state.NAME)
        assert row.block_number == report.to_block and row.mode == "full" and row.verdict == report.verdict
    assert reconcile(ctx).mode == "incremental"


def test_the_background_refresh_keeps_the_latest_verdict_current(api: Api, people: dict) -> None:
    """Off unless asked: on with XCPAY_RECONCILIATION_REFRESH_S, it follows new blocks by itself."""
    from services.operator.app import create_app
    from services.operator.settings import OperatorSettings

    ctx = api.app.state.ctx
    assert OperatorSettings(profile="local").reconciliation_refresh == 0
    settings = OperatorSettings(
        database_url=ctx.settings.database_url,
        manifest=ctx.settings.manifest,
        rpc_url="in-process",
        admin_api_key=ADMIN_KEY,
        reconciliation_refresh_s=0.2,
        reconcile_interval_s=60,
        index_interval_s=60,
    )
    start = checkpoint_block(api)
    app = create_app(settings, w3=api.w3, background=True)
    with TestClient(app):
        r = api.post("operator", "/v1/issuance", {"to": people["bob"], "amount_fen": 10})
        assert r.status_code == 200, r.text
        head = api.w3.eth.block_number
        deadline = time.monotonic() + 60
        while checkpoint_block(api) < head:
            assert time.monotonic() < deadline, "the background refresh did not reach the new block"
            time.sleep(0.1)
    latest = api.auditor.get("/v1/audit/reconciliation/latest").json()
    assert latest["to_block"] >= head > start and latest["verdict"] == "clean", latest["discrepancies"]
    assert latest["mode"] == "incremental"
