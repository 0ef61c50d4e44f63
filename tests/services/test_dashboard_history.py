"""The dashboard's first read does not grow with the history it reads (issue 19).

After a 10,000-person payroll the first ``GET /dashboard/data`` of the service took ~10 minutes
in one benchmark run: the chart of cash paid to merchants asked the node for the registry record
of every distinct payee (``walletOf`` and ``policyOf``, 20,000 ``eth_call`` for the payroll), to
learn which were merchants. These tests read the dashboard as a service that has just started
(its caches empty), over real HTTP, on SQLite and PostgreSQL, and count what the read asks of the
node and of the database: the same before and after a payroll to many new wallets. No clock."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event
from web3 import Web3
from web3.middleware import Web3Middleware

from chain.clients.token import Kind, Registration
from tests.services.conftest import Api

DAY = 86_400
GROCERY, RESTAURANT = 5411, 5812
PAYROLL = 24  # new personal wallets paid: the old code asked the node twice for each


def _ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


@dataclass
class Cost:
    """What one dashboard read asked for: node requests by method, SQL statements."""

    node: Counter[str]
    sql: int
    data: dict[str, Any]


@contextmanager
def counting(api: Api) -> Iterator[Cost]:
    """Count the node requests (a web3 middleware on the service's own ``Web3``) and the SQL
    statements (the engine's ``before_cursor_execute``) made inside the block."""
    ctx = api.app.state.ctx
    cost = Cost(Counter(), 0, {})

    class CountRequests(Web3Middleware):
        def wrap_make_request(self, make_request: Callable[..., Any]) -> Callable[..., Any]:
            def middleware(method: str, params: Any) -> Any:
                cost.node[str(method)] += 1
                return make_request(method, params)

            return middleware

    def statement(*_: Any) -> None:
        cost.sql += 1

    ctx.w3.middleware_onion.add(CountRequests, "count-requests")
    event.listen(ctx.db.engine, "before_cursor_execute", statement)
    try:
        yield cost
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", statement)
        ctx.w3.middleware_onion.remove("count-requests")


def first_read(api: Api) -> Cost:
    """``/dashboard/data`` as the first read of a service just started: the dashboard's caches
    (its tally, blocks, sections) are dropped. The event index is caught up before (an audit read
    does it), so the read's own catch-up is one ``eth_blockNumber`` whatever came before."""
    _ok(api.auditor.get("/v1/audit/events", params={"limit": 1}))
    api.app.state.dashboard_tally = None
    with counting(api) as cost:
        cost.data = _ok(api.auditor.get("/dashboard/data"))
    return cost


def paid(d: dict[str, Any]) -> dict[int, int]:
    s = d["spending_by_category"]
    return dict(zip(s["categories"], s["merchant_payments_fen"], strict=True))


def payroll(api: Api, payer: str, checker: str, workers: list[str]) -> None:
    """A payroll through the API: one row of 1.00 yuan per worker, approved and executed."""
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    batch = {
        "reference": f"hist-{uuid.uuid4().hex[:8]}",
        "payer": payer,
        "purpose": "salary",
        "ends_at": datetime.fromtimestamp(now + 30 * DAY, UTC).isoformat(),
        "unit": "fen",
        "rows": [{"recipient": w, "amount": 1_00} for w in workers],
    }
    ref = _ok(api.post("operator", "/v1/disbursements", batch), 201)["reference"]
    headers = {"X-API-Key": checker, "Idempotency-Key": str(uuid.uuid4())}
    _ok(api.admin.post(f"/v1/disbursements/{ref}/approve", headers=headers))
    _ok(api.operator.post(f"/v1/disbursements/{ref}/execute", json={"push": "all"}), 202)
    deadline = time.monotonic() + 120
    while (status := api.operator.get(f"/v1/disbursements/{ref}").json())["status"] == "executing":
        assert time.monotonic() < deadline, "the batch did not finish"
        time.sleep(0.1)
    assert status["rows_by_status"] == {"paid": len(workers)}, status


@pytest.fixture(scope="module")
def scene(api: Api) -> dict[str, Any]:
    """A grocer paid once, and an employer with a checker key, ready to pay a payroll."""
    grocer = api.new_wallet(kind="merchant", tier=2, category=GROCERY, name="Grocer")
    alice = api.new_wallet(tier=3, name="alice")
    _ok(api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 1_000_00}))
    _ok(api.post("operator", "/v1/transfers", {"from": alice, "to": grocer, "amount_fen": 12_34}))
    employer = api.new_wallet(kind="institution", tier=1, name="Town clinic")
    _ok(api.post("operator", "/v1/issuance", {"to": employer, "amount_fen": 10_000_00}))
    officer = api.new_wallet(tier=2, name="finance officer")
    key = _ok(api.admin.post("/v1/api-keys", json={"role": "checker", "wallet": officer}), 201)["key"]
    _ok(
        api.post(
            "operator",
            f"/v1/disbursements/payers/{employer}/officers",
            {"account": officer, "role": "checker"},
        )
    )
    return {"grocer": grocer, "alice": alice, "employer": employer, "checker": key}


def register_workers(api: Api, n: int) -> list[str]:
    """``n`` new personal wallets, registered in one batch straight through the chain client (as
    bench_disburse registers its recipients): the service learns of them from the event index."""
    from eth_account import Account

    ctx = api.app.state.ctx
    workers = [Account.create().address for _ in range(n)]
    rows = [Registration(w, Kind.PERSONAL, 2, 0, Web3.keccak(text=f"hist:{w}")) for w in workers]
    ctx.cash.register_batch(ctx.operator, rows)
    return workers


class TestFirstReadAfterAPayroll:
    def test_asks_the_node_and_the_database_the_same_whatever_the_payees(
        self, api: Api, scene: dict[str, Any]
    ) -> None:
        before = first_read(api)
        assert paid(before.data).get(GROCERY) == 12_34

        payroll(api, scene["employer"], scene["checker"], register_workers(api, PAYROLL))
        after = first_read(api)

        # The payroll's 24 payees are no merchants: the chart is unchanged, and learning that
        # cost no request (the old code: a walletOf and a policyOf per payee, 48 more eth_call).
        # One more eth_call: the new batch's figures (the disbursements section shows at most
        # its 10 latest batches).
        assert paid(after.data) == paid(before.data)
        assert after.node["eth_call"] <= before.node["eth_call"] + 1, (before.node, after.node)
        # The rest is bounded by what the page shows: its 8 blocks and the 15 latest events'.
        for cost in (before, after):
            assert cost.node["eth_blockNumber"] <= 2 and cost.node["eth_getBlockByNumber"] <= 8 + 15, (
                cost.node
            )
            assert set(cost.node) <= {"eth_call", "eth_chainId", "eth_blockNumber", "eth_getBlockByNumber"}
        assert after.sql == before.sql, (before.sql, after.sql)

    def test_a_merchant_registered_and_paid_since_is_counted_from_the_index(
        self, api: Api, scene: dict[str, Any]
    ) -> None:
        """The merchants come from the index's ``WalletRegistered`` events, in the same read as
        the payments: a merchant registered after the last read, and paid, shows at once, under
        its category, on a warm tally and on a cold one alike."""
        warm_before = paid(_ok(api.auditor.get("/dashboard/data")))
        canteen = api.new_wallet(kind="merchant", tier=2, category=RESTAURANT, name="Canteen")
        _ok(
            api.post("operator", "/v1/transfers", {"from": scene["alice"], "to": canteen, "amount_fen": 5_55})
        )
        warm = paid(_ok(api.auditor.get("/dashboard/data")))
        assert warm == {**warm_before, RESTAURANT: warm_before.get(RESTAURANT, 0) + 5_55}
        assert paid(first_read(api).data) == warm


class TestAPoll:
    def test_reads_only_the_new_blocks_of_the_event_index_through_its_indexes(
        self, api: Api, scene: dict[str, Any], db_kind: str
    ) -> None:
        """A poll after a payment reads the event index by block range (the blocks indexed since
        the last poll) or a bounded page (``LIMIT``), never all of it: SQLite's plan of every
        statement the poll sends that reads ``chain_events``. (PostgreSQL's planner reads tables
        this small sequentially whatever the indexes, so its plans say nothing here.)"""
        if db_kind != "sqlite":
            pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL plans small tables as sequential scans")
        engine = api.app.state.ctx.db.engine
        _ok(api.auditor.get("/dashboard/data"))  # the tally is up to date
        _ok(
            api.post(
                "operator", "/v1/transfers", {"from": scene["alice"], "to": scene["grocer"], "amount_fen": 1}
            )
        )
        _ok(api.auditor.get("/v1/audit/events", params={"limit": 1}))  # indexed: the poll has news
        seen: list[tuple[str, Any]] = []

        def statement(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
            if "chain_events" in sql and sql.lstrip().upper().startswith("SELECT"):
                seen.append((sql, params))

        event.listen(engine, "before_cursor_execute", statement)
        try:
            d = _ok(api.auditor.get("/dashboard/data"))
        finally:
            event.remove(engine, "before_cursor_execute", statement)
        assert d["events"]["total"] > 0 and paid(d)[GROCERY] >= 12_34 + 1
        assert seen, "the poll read nothing from the event index"
        with engine.connect() as conn:
            for sql, params in seen:
                plan = [str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
                for line in plan:
                    if "chain_events" not in line:
                        continue
                    by_blocks = line.startswith("SEARCH") and "block_number>" in line
                    assert by_blocks or "LIMIT" in sql.upper(), (line, sql)
