"""Allowances as operations: a builder's ``Call.allowance`` is granted by a ``cash.approve``
operation of its own (child of the operation that needs it), recorded, signed, stored and
finished like any other, so that the reconciliation finds a row for every approval; a restart
never approves twice. Real chain (in-process), real database (SQLite, PostgreSQL when present),
the operator API over real HTTP for the wallets and the reconciliation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.common.context import ServiceContext
from services.common.models import ApiKey, Operation
from services.common.operations import (
    ALLOWANCE_KIND,
    UNSIGNED_GRACE_S,
    Allowance,
    Call,
    Operations,
    allowance_key,
    perform,
)
from services.common.problems import Problem
from tests.services.conftest import Api

KIND = "test.redeem"


def _redeem(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The issuer burns from a wallet: it needs the wallet's allowance, stated as data."""
    holder, amount = req["holder"], int(req["amount_fen"])
    return Call(
        ctx.operator,
        ctx.cash.cash.functions.redeem(holder, amount),
        allowance=Allowance(holder, ctx.operator.address, amount),
    )


@pytest.fixture(scope="module")
def ops(api: Api) -> Operations:
    return Operations(api.app.state.ctx, {KIND: _redeem})


@pytest.fixture(scope="module")
def key(api: Api) -> ApiKey:
    with api.app.state.ctx.db.session() as s:
        found = s.scalar(select(ApiKey).where(ApiKey.role == "operator", ApiKey.label == "test operator"))
    assert found is not None
    return found


def _funded(api: Api, amount: int) -> str:
    wallet = api.new_wallet(tier=2, name="allowance")
    r = api.post("operator", "/v1/issuance", {"to": wallet, "amount_fen": amount})
    assert r.status_code == 200, r.text
    return wallet


def _children(api: Api, parent_id: str) -> list[Operation]:
    with api.app.state.ctx.db.session() as s:
        return list(
            s.scalars(
                select(Operation)
                .where(Operation.idempotency_key.startswith(f"allowance:{parent_id}:"))
                .order_by(Operation.idempotency_key)
            ).all()
        )


def _approvals(api: Api, owner: str, since: int) -> list[str]:
    """The hashes of the transactions since block ``since`` that emitted an Approval by ``owner``."""
    cash = api.app.state.ctx.cash.cash
    logs = cash.events.Approval().get_logs(from_block=since, argument_filters={"owner": owner})
    return ["0x" + bytes(e["transactionHash"]).hex() for e in logs]


def _age(api: Api, op_id: str) -> None:
    """Make an operation look older than the reconciler's grace for unsigned ones."""
    with api.app.state.ctx.db.session() as s:
        row = s.get(Operation, op_id)
        assert row is not None
        row.created_at = datetime.now(UTC) - timedelta(seconds=UNSIGNED_GRACE_S + 5)
        s.commit()


def test_an_allowance_is_an_operation_of_its_own(api: Api, ops: Operations, key: ApiKey) -> None:
    wallet = _funded(api, 1_000)
    start = api.w3.eth.block_number
    op, replayed = perform(ops, KIND, key, str(uuid.uuid4()), {"holder": wallet, "amount_fen": 300})
    assert op.status == "confirmed" and not replayed
    [child] = _children(api, op.id)
    assert child.kind == ALLOWANCE_KIND and child.status == "confirmed"
    assert child.idempotency_key == allowance_key(op.id, 1) and child.api_key_id == key.id
    assert child.request == {
        "parent": op.id,
        "owner": wallet,
        "spender": ops.ctx.operator.address,
        "amount_fen": 300,
    }
    assert child.sender == wallet and child.raw_tx is not None
    assert [e["name"] for e in child.result["events"]] == ["Approval"]
    # the wallet approved what it held, so the next pull of the same wallet needs no approval
    assert _approvals(api, wallet, start) == [child.tx_hash]
    op2, _ = perform(ops, KIND, key, str(uuid.uuid4()), {"holder": wallet, "amount_fen": 200})
    assert op2.status == "confirmed" and _children(api, op2.id) == []
    assert ops.ctx.cash.balance_of(wallet) == 500
    # every approval has its operation: the reconciliation needs no exception for it
    r = api.auditor.get("/v1/audit/reconciliation")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["verdict"] == "clean", report["discrepancies"]
    assert "allowance_transactions" not in report["counts"]  # counted as operations instead


def test_the_reconciler_does_not_approve_twice_when_the_approval_landed(
    api: Api, ops: Operations, key: ApiKey
) -> None:
    """The process stopped after the approval was mined and before the parent was signed: the
    reconciler runs the parent again, finds the allowance on chain and approves nothing more."""
    wallet = _funded(api, 1_000)
    start = api.w3.eth.block_number
    parent, new = ops.begin(KIND, key, str(uuid.uuid4()), {"holder": wallet, "amount_fen": 400})
    assert new
    ops._allow(parent, Allowance(wallet, ops.ctx.operator.address, 400))
    [child] = _children(api, parent.id)
    assert child.status == "confirmed" and ops.get(parent.id).raw_tx is None
    _age(api, parent.id)
    ops.reconcile()
    assert ops.get(parent.id).status == "confirmed"
    assert [c.id for c in _children(api, parent.id)] == [child.id]
    assert _approvals(api, wallet, start) == [child.tx_hash]
    assert ops.ctx.cash.balance_of(wallet) == 600


def test_an_allowance_left_unsigned_is_finished_by_its_parent_once(
    api: Api, ops: Operations, key: ApiKey
) -> None:
    """The process stopped after recording the allowance's intent: the reconciler leaves the
    child to its parent (only the process owning the parent's kind signs it), and the parent's
    run signs it once, then the parent."""
    wallet = _funded(api, 1_000)
    start = api.w3.eth.block_number
    parent, _ = ops.begin(KIND, key, str(uuid.uuid4()), {"holder": wallet, "amount_fen": 100})
    child = ops._allowance_child(parent, Allowance(wallet, ops.ctx.operator.address, 100))
    _age(api, child.id)
    ops.reconcile()  # the parent is young: nothing moves, the child neither
    assert ops.get(child.id).status == "pending" and ops.get(child.id).raw_tx is None
    assert ops._allowance_child(parent, Allowance(wallet, ops.ctx.operator.address, 100)).id == child.id
    _age(api, parent.id)
    ops.reconcile()
    assert ops.get(parent.id).status == "confirmed"
    assert [(c.id, c.status) for c in _children(api, parent.id)] == [(child.id, "confirmed")]
    assert _approvals(api, wallet, start) == [ops.get(child.id).tx_hash]


def test_a_refused_allowance_fails_its_parent_with_the_same_problem(
    api: Api, ops: Operations, key: ApiKey
) -> None:
    """An owner whose key the service does not hold cannot approve: the allowance operation
    fails, and the parent with it (its own id in the problem); nothing reached the chain."""
    outsider = api.w3.eth.accounts[9]
    block = api.w3.eth.block_number
    idem = str(uuid.uuid4())
    with pytest.raises(Problem) as info:
        perform(ops, KIND, key, idem, {"holder": outsider, "amount_fen": 1})
    with api.app.state.ctx.db.session() as s:
        parent = s.scalar(select(Operation).where(Operation.idempotency_key == idem))
    assert parent is not None and parent.status == "failed"
    assert info.value.slug == "not-custodial" and info.value.extra["operation_id"] == parent.id
    [child] = _children(api, parent.id)
    assert child.status == "failed" and child.error["slug"] == "not-custodial" and child.raw_tx is None
    assert api.w3.eth.block_number == block
