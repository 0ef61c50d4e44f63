"""The payroll runner sends chunks ahead of their receipts (consecutive nonces, up to WINDOW in
flight), and still pays every row exactly once, recording outcomes in chunk order."""

from __future__ import annotations

import pytest

from services.common import operations
from services.operator.families.disburse import runner
from tests.services.conftest import Api
from tests.services.test_disbursement_api import Payroll, approve, balance, create, execute_and_wait
from tests.services.test_disbursement_api import payroll as payroll


def test_chunks_are_sent_before_the_earlier_receipts_are_collected_and_each_row_is_paid_once(
    api: Api, payroll: Payroll, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = payroll
    settings = api.app.state.ctx.settings
    monkeypatch.setattr(settings, "disburse_chunk_rows", 1)  # 4 rows: 4 chunks, 4 operations
    journal: list[tuple[str, int]] = []
    submit, result = runner.submit, operations.Submitted.result

    def sending(*args: object, **kwargs: object) -> operations.Submitted:
        sent = submit(*args, **kwargs)  # type: ignore[arg-type]
        journal.append(("sent", int(args[4]["chunk"])))  # type: ignore[index]
        return sent

    def collecting(self: operations.Submitted) -> tuple[object, bool]:
        if self.kind == "disburse.pay_chunk":
            journal.append(("collected", int(self.op.request["chunk"])))
        return result(self)

    monkeypatch.setattr(runner, "submit", sending)
    monkeypatch.setattr(operations.Submitted, "result", collecting)
    rows = [{"recipient": w, "amount": 100 + i} for i, w in enumerate(p.workers[:4])]
    before = {w: balance(api, w) for w in p.workers[:4]}
    r = create(api, p, rows)
    assert r.status_code == 201, r.text
    ref = r.json()["reference"]
    assert approve(api, p, ref).status_code == 200
    journal.clear()
    done = execute_and_wait(api, ref)
    assert done["status"] == "executed" and done["rows_by_status"] == {"paid": 4}
    assert journal.index(("sent", 1)) < journal.index(("collected", 0))  # not one receipt at a time
    assert [c for what, c in journal if what == "collected"] == [0, 1, 2, 3]
    assert [balance(api, w) - before[w] for w in p.workers[:4]] == [100, 101, 102, 103]
    again = execute_and_wait(api, ref)  # executing again pays nothing twice
    assert again["chain"]["paid_fen"] == done["chain"]["paid_fen"] == 406


def test_a_payrolls_events_in_the_index_and_its_results_are_the_chains_logs(
    api: Api, payroll: Payroll, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index is fed from each chunk operation's own decoded events, in bulk: every log of
    every chunk's receipt is in it once, with the arguments web3's own decoder reads from the
    chain, and each operation's stored result lists the same events."""
    from eth_utils import event_abi_to_log_topic
    from sqlalchemy import select

    from chain.events import web3_event
    from services.common.models import ChainEvent, Operation
    from services.common.problems import jsonable

    p = payroll
    ctx = api.app.state.ctx
    monkeypatch.setattr(ctx.settings, "disburse_chunk_rows", 3)  # 4 rows: 2 chunks
    rows = [{"recipient": w, "amount": 200 + i} for i, w in enumerate(p.workers[:4])]
    r = create(api, p, rows)
    assert r.status_code == 201, r.text
    ref = r.json()["reference"]
    assert approve(api, p, ref).status_code == 200
    done = execute_and_wait(api, ref)
    assert done["status"] == "executed" and done["rows_by_status"] == {"paid": 4}
    with ctx.db.session() as s:
        ops = [
            o
            for o in s.scalars(select(Operation).where(Operation.kind == "disburse.pay_chunk"))
            if o.request["ref"] == ref
        ]
        assert sorted(o.request["chunk"] for o in ops) == [0, 1]
        hashes = [o.tx_hash for o in ops]
        indexed = s.execute(
            select(
                ChainEvent.tx_hash,
                ChainEvent.log_index,
                ChainEvent.contract,
                ChainEvent.name,
                ChainEvent.args,
            )
            .where(ChainEvent.tx_hash.in_(hashes))
            .order_by(ChainEvent.block_number, ChainEvent.log_index)
        ).all()
    names = {d.address: (n, d.abi) for n, d in ctx.manifest.contracts.items()}
    from_chain = []
    for tx in sorted(hashes, key=lambda h: api.w3.eth.get_transaction_receipt(h)["blockNumber"]):
        for log in api.w3.eth.get_transaction_receipt(tx)["logs"]:
            contract, abi = names[log["address"]]
            spec = next(
                e for e in abi if e.get("type") == "event" and event_abi_to_log_topic(e) == log["topics"][0]
            )
            args = dict(web3_event(api.w3, spec).process_log(log)["args"])
            from_chain.append((tx, log["logIndex"], contract, spec["name"], jsonable(args)))
    assert [tuple(r) for r in indexed] == from_chain
    assert len(from_chain) >= 2 * 4  # a Paid and a token Transfer per row at least
    results = {o.tx_hash: o.result["events"] for o in ops}
    for tx in hashes:
        assert [(e["contract"], e["name"], e["args"]) for e in results[tx]] == [
            (c, n, a) for t, _, c, n, a in from_chain if t == tx
        ]
