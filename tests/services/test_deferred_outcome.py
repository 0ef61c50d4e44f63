"""An operation's outcome is committed without a disk flush of its own (issue 19; see
``Operations._record_outcome``): the chain is its record. These tests undo an outcome as a power
loss would (the row back to ``pending`` with its signed bytes and hash, its index rows, webhook
deliveries and audit row gone) and check that the reconciler, or a replay of the request, records
the very same outcome again; and that an operation's webhook events keep their ids when queued
again, so a receiver deduplicates them."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update

from services.common import webhooks
from services.common.models import ApiKey, AuditEntry, ChainEvent, Operation, WebhookDelivery, WebhookEndpoint
from tests.services.conftest import Api


def _recorded(api: Api, op_id: str) -> dict[str, Any]:
    """Everything recording ``op_id``'s outcome wrote, less the moments and row numbers."""
    with api.app.state.ctx.db.session() as s:
        op = s.get(Operation, op_id)
        assert op is not None
        events = s.scalars(
            select(ChainEvent).where(ChainEvent.tx_hash == op.tx_hash).order_by(ChainEvent.log_index)
        ).all()
        audits = s.scalars(select(AuditEntry).where(AuditEntry.operation_id == op_id)).all()
        return {
            "operation": (op.status, op.block_number, op.tx_hash, op.result, op.error),
            "events": [(e.block_number, e.log_index, e.contract, e.name, e.args, e.subject) for e in events],
            "audit": [(a.api_key_id, a.role, a.action, a.target, a.outcome) for a in audits],
        }


def _power_loss(api: Api, op_id: str) -> None:
    """What the outcome's deferred commit wrote, undone: the row as the durable commit of its
    signed bytes left it."""
    with api.app.state.ctx.db.session() as s:
        op = s.get(Operation, op_id)
        assert op is not None and op.raw_tx is not None
        s.execute(
            update(Operation)
            .where(Operation.id == op_id)
            .values(status="pending", result=None, error=None, block_number=None)
        )
        s.execute(delete(ChainEvent).where(ChainEvent.tx_hash == op.tx_hash))
        s.execute(delete(AuditEntry).where(AuditEntry.operation_id == op_id))
        s.commit()


def _issue(api: Api, wallet: str, key: str) -> dict[str, Any]:
    r = api.post("operator", "/v1/issuance", {"to": wallet, "amount_fen": 250}, key=key)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _same(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer less ``updated_at`` (the moment the outcome was recorded: the second time, later)."""
    return {k: v for k, v in answer.items() if k != "updated_at"}


def test_the_reconciler_records_a_lost_outcome_again_exactly(api: Api) -> None:
    wallet = api.new_wallet(tier=3)
    key = str(uuid.uuid4())
    first = _issue(api, wallet, key)
    before = _recorded(api, first["id"])
    assert before["operation"][0] == "confirmed" and before["events"] and len(before["audit"]) == 1
    _power_loss(api, first["id"])
    assert _recorded(api, first["id"])["operation"][0] == "pending"

    counts = api.app.state.ops.reconcile()

    assert counts["confirmed"] >= 1 and counts["pending"] == 0, counts
    assert _recorded(api, first["id"]) == before
    assert _same(_issue(api, wallet, key)) == _same(first)  # the replay: the same answer
    assert _recorded(api, first["id"]) == before  # and nothing recorded twice


def test_a_replay_records_a_lost_outcome_again_exactly(api: Api) -> None:
    wallet = api.new_wallet(tier=3)
    key = str(uuid.uuid4())
    first = _issue(api, wallet, key)
    before = _recorded(api, first["id"])
    _power_loss(api, first["id"])

    again = _issue(api, wallet, key)  # before any reconciler round

    assert _same(again) == _same(first)
    assert _recorded(api, first["id"]) == before
    api.app.state.ops.reconcile()
    assert _recorded(api, first["id"]) == before


def test_an_operations_webhook_events_keep_their_ids_when_queued_again(api: Api) -> None:
    """The deliveries queued with an outcome, lost with it and queued again by the reconciler,
    carry the same event ids (receivers deduplicate by them: delivery is at least once)."""
    card = "0x" + "ab" * 20
    op_id = str(uuid.uuid4())
    db = api.app.state.ctx.db
    with db.session() as s:
        operator = s.scalar(select(ApiKey).where(ApiKey.role == "operator", ApiKey.revoked.is_(False)))
        assert operator is not None
        endpoint = WebhookEndpoint(
            url="https://receiver.example/hook",
            events=["card.blocked"],
            secret="sealed",
            created_by=operator.id,
        )
        s.add(endpoint)
        s.commit()
        endpoint_id = endpoint.id
    op = Operation(
        id=op_id,
        kind="cards.settle",
        api_key_id=operator.id,
        idempotency_key=op_id,
        request_hash="0" * 64,
        request={},
        status="confirmed",
        tx_hash="0x" + "cd" * 32,
        block_number=7,
        result={"events": [{"name": "CardBlocked", "args": {"card": card, "shortfall": 5}}]},
    )
    ids = []
    try:
        for _ in range(2):  # recorded, lost, recorded again
            with db.session() as s:
                webhooks.from_operation(s, op)
                s.flush()
                rows = s.scalars(
                    select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
                ).all()
                assert len(rows) == 1
                ids.append((rows[0].event_id, webhooks.body_of(rows[0])))
                s.rollback()
    finally:
        with db.session() as s:
            s.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
            s.commit()
    assert ids[0][0] == ids[1][0]
    assert ids[0][0] == webhooks.operation_event_id(op_id, "card.blocked", 0)
    assert b'"id":"' + ids[0][0].encode() in ids[0][1].replace(b" ", b"")
