"""Allowances as operations: a builder's ``Call.allowance`` is granted by a ``cash.approve``
operation of its own (child of the operation that needs it), recorded, signed, stored and
finished like any other, so that the reconciliation finds a row for every approval; a restart
never approves twice. Real chain (in-process), real database (SQLite, PostgreSQL when present),
the operator API over real HTTP for the wallets and the reconciliation."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
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


def _redeem_over_http(api: Api, wallet: str, amount: int) -> httpx.Response:
    return api.post("operator", "/v1/redemptions", {"from": wallet, "amount_fen": amount})


def test_concurrent_pulls_from_one_wallet_each_find_their_allowance(api: Api) -> None:
    """Red team: one allowance per wallet and spender, shared by every pull. Left at 700 by an
    earlier redemption while the wallet has since been paid 2,000, it covered each of four
    redemptions of 500 at once but not all four: each skipped approving and three were refused
    (422 insufficient-allowance) although the wallet held the money. Now the pulls from one
    wallet take turns, each finding (or granting) its allowance after the previous one was mined."""
    wallet = _funded(api, 1_000)
    assert _redeem_over_http(api, wallet, 300).status_code == 200
    assert api.post("operator", "/v1/issuance", {"to": wallet, "amount_fen": 2_000}).status_code == 200
    ctx = api.app.state.ctx
    assert ctx.cash.allowance(wallet, ctx.operator.address) == 700
    start = threading.Barrier(4)

    def one(_: int) -> httpx.Response:
        start.wait()
        return _redeem_over_http(api, wallet, 500)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(one, range(4)))
    assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers if r.status_code != 200]
    assert ctx.cash.balance_of(wallet) == 700
    assert api.app.state.ops._owner_locks == {}  # no turn left behind
    assert api.auditor.get("/v1/audit/reconciliation").json()["verdict"] == "clean"


class _PulledMeanwhile(Operations):
    """Operations, but once, right after an allowance is made sure of and before the call is
    estimated, ``meanwhile`` runs: another process's pull from the same wallet (the gateway has
    turns of its own)."""

    def __init__(self, ctx: ServiceContext, meanwhile: Callable[[], None]) -> None:
        super().__init__(ctx, {KIND: _redeem})
        self.meanwhile = meanwhile

    def _allow(self, parent: Operation, allowance: Allowance) -> None:
        super()._allow(parent, allowance)
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()


def test_an_allowance_taken_by_another_process_before_signing_is_granted_again(
    api: Api, ops: Operations, key: ApiKey
) -> None:
    """A turn is per process: the operator and the gateway both pull from custodial wallets
    (QuickPay, refunds). The other one's pull took the allowance this operation had just been
    granted; the estimate finds it short, the parent's second allowance operation grants it
    again, and the pull goes through (it was a 422 insufficient-allowance)."""
    wallet = _funded(api, 1_000)

    def other_process_pulls() -> None:
        assert api.post("operator", "/v1/issuance", {"to": wallet, "amount_fen": 2_000}).status_code == 200
        other = Operations(api.app.state.ctx, {KIND: _redeem})  # its own turns
        done, _ = perform(other, KIND, key, str(uuid.uuid4()), {"holder": wallet, "amount_fen": 800})
        assert done.status == "confirmed"

    racing = _PulledMeanwhile(api.app.state.ctx, other_process_pulls)
    op, _ = perform(racing, KIND, key, str(uuid.uuid4()), {"holder": wallet, "amount_fen": 400})
    assert op.status == "confirmed"
    children = _children(api, op.id)
    assert [(c.idempotency_key, c.status) for c in children] == [
        (allowance_key(op.id, 1), "confirmed"),
        (allowance_key(op.id, 2), "confirmed"),
    ]
    assert racing.ctx.cash.balance_of(wallet) == 1_000 + 2_000 - 800 - 400


def test_the_reconciler_waits_for_the_wallets_turn(api: Api, ops: Operations, key: ApiKey) -> None:
    """A request of the wallet holds its turn: the reconciler's run of another pending pull from
    it waits (holding that operation's claim only: nothing it waits for waits for it) and then
    finishes it; nothing is left locked."""
    wallet = _funded(api, 1_000)
    parent, _ = ops.begin(KIND, key, str(uuid.uuid4()), {"holder": wallet, "amount_fen": 300})
    _age(api, parent.id)
    with ops._owner_turn(wallet):
        reconciler = threading.Thread(target=ops.reconcile)
        reconciler.start()
        reconciler.join(0.5)
        assert ops.get(parent.id).raw_tx is None and _children(api, parent.id) == []
    reconciler.join(60)
    assert not reconciler.is_alive()
    assert ops.get(parent.id).status == "confirmed"
    assert ops.ctx.cash.balance_of(wallet) == 700
    assert ops._owner_locks == {}
