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
