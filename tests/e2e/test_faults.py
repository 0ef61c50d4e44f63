"""Faults around the operator service, each followed by the auditor's reconciliation: a SQLite
database that refuses writes, PostgreSQL connections killed under load, the chain node stopped in
the middle of a payroll, the chain's clock jumping between acceptance and mining, and the
service's own wall clock jumping past the reconciler's grace period.

After every fault: no operation lost, none executed twice, the chain and the records agree.
(The node down before a request and the service killed around a send are in
``test_operator_processes.py``.)
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from sqlalchemy import create_engine, select, text, update
from web3 import Web3

from chain.accounts import dev_account
from chain.backends import http, in_process
from chain.compiler import CompileResult
from chain.deploy import deploy_all
from chain.manifest import Manifest
from chain.processes import anvil_cmd, free_port, running, wait_for_rpc
from services.common.db import upgrade
from services.common.keys import Role, create_key
from services.common.models import Operation
from services.common.operations import perform
from services.operator.app import create_app
from services.operator.reconciliation import reconcile
from services.operator.settings import OperatorSettings
from tests.databases import fresh_database, postgres_admin_url
from tests.e2e.test_operator_processes import Client, deploy, operator_service, service_env

DAY = 86_400
ZERO = "0x0000000000000000000000000000000000000000"


# -- helpers -----------------------------------------------------------------------------------


@dataclass
class Node:
    """An anvil process whose state survives a restart (``--state``)."""

    rpc: str
    cmd: list[str]
    proc: Any = None
    manifest: Manifest = field(init=False)

    @property
    def w3(self) -> Web3:
        return http(self.rpc)

    def rpc_call(self, method: str, *params: Any) -> Any:
        response = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        assert "error" not in response, response
        return response.get("result")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The contracts deployed once on anvil, whose state is saved: each test starts its own node
    from a copy (the same chain, its own future) instead of deploying again."""
    tmp = tmp_path_factory.mktemp("deployed")
    port = free_port()
    with running(anvil_cmd(port, state=tmp / "anvil-state")) as proc:
        wait_for_rpc(f"http://127.0.0.1:{port}", proc)
        deploy(f"http://127.0.0.1:{port}", tmp)
    assert (tmp / "anvil-state").exists()  # anvil writes its state when it stops
    return tmp


@contextmanager
def anvil_with_contracts(tmp: Path, deployed: Path) -> Iterator[Node]:
    """anvil with ``--state`` (a copy of the deployed chain) on a free port; stopped at the end."""
    for name in ("anvil-state", "manifest.json"):
        shutil.copy(deployed / name, tmp / name)
    port = free_port()
    node = Node(f"http://127.0.0.1:{port}", anvil_cmd(port, state=tmp / "anvil-state"))
    with running(node.cmd) as proc:
        node.proc = proc
        wait_for_rpc(node.rpc, proc)
        node.manifest = Manifest.load(tmp / "manifest.json")
        yield node


def chain_balance(w3: Web3, manifest: Manifest, address: str) -> int:
    """Straight from the token contract, not through the service under test."""
    return int(manifest.contract(w3, "DigitalCash").functions.balanceOf(address).call())


def register_on_chain(w3: Web3, manifest: Manifest, addresses: list[str]) -> None:
    """Register personal tier-2 wallets as the deployer (registry admin), not through the service:
    hundreds of payroll recipients in seconds. The reconciliation counts the deployer's
    transactions as deployment, so they are no discrepancy."""
    deployer = dev_account(0)
    registry = manifest.contract(w3, "WalletRegistry")
    calls = [registry.functions.grantRole(registry.functions.REGISTRAR_ROLE().call(), deployer.address)]
    # One person each: the registry allows an identity a wallet or two, not hundreds.
    calls += [registry.functions.register(a, 1, 2, 0, Web3.keccak(text=a)) for a in addresses]
    nonce = w3.eth.get_transaction_count(deployer.address, "pending")
    fee = w3.eth.gas_price * 2
    hashes = []
    for i, fn in enumerate(calls):
        tx = fn.build_transaction(
            {
                "from": deployer.address,
                "nonce": nonce + i,
                "gas": 300_000,
                "gasPrice": fee,
                "chainId": w3.eth.chain_id,
            }
        )
        hashes.append(w3.eth.send_raw_transaction(deployer.sign_transaction(tx).raw_transaction))
    for h in hashes:
        assert w3.eth.wait_for_transaction_receipt(h, timeout=60)["status"] == 1


def assert_reconciled_clean(api: Client) -> dict[str, Any]:
    """The auditor's reconciliation over HTTP: no discrepancy of any kind. It replays the chain
    from the deployment block (after a 300-row payroll, over a minute on a loaded machine)."""
    r = api.get("auditor", "/v1/audit/reconciliation", timeout_s=600)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["discrepancies"] == [], report["discrepancies"]
    assert report["verdict"] == "clean" and all(c["holds"] for c in report["invariants"])
    return report


def assert_problem(r: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["type"] == f"urn:xcpay:problem:{slug}", problem
    return problem


def issued_to(api: Client, address: str) -> list[dict[str, Any]]:
    """Every mint into ``address`` the chain recorded (through the auditor's event index)."""
    page = api.get("auditor", "/v1/audit/events?name=Transfer&limit=500").json()
    return [e for e in page["items"] if e["args"]["from"] == ZERO and e["args"]["to"] == address]


# -- a) SQLite refuses writes ------------------------------------------------------------------


@pytest.mark.slow
def test_a_read_only_sqlite_database_gives_503_and_moves_no_money(tmp_path: Path, deployed: Path) -> None:
    """The database file becomes read-only (a remount, a full volume): every request that writes
    is refused with a retryable 503 before anything is signed; reads still answer. Once writable
    again, the caller's retry with the same key runs the operation once, and the books agree."""
    api_port = free_port()
    db_file = tmp_path / "operator.db"
    with anvil_with_contracts(tmp_path, deployed) as node:
        env = service_env(tmp_path, node.rpc, api_port)
        api = Client(f"http://127.0.0.1:{api_port}")
        with operator_service(env):
            alice, bob = api.wallet(), api.wallet()
            for role in ("operator", "auditor"):
                api.key(role)
            assert api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 1_000}).status_code == 200
        blocks_before = node.w3.eth.block_number

        read_only = dict(env, XCPAY_DATABASE_URL=f"sqlite:///file:{db_file}?mode=ro&uri=true")
        with operator_service(read_only):
            assert api.balance(alice) == 1_000  # reads still work
            refused = [
                api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 555}, key="ro-issue"),
                api.post(
                    "operator", "/v1/transfers", {"from": alice, "to": bob, "amount_fen": 100}, key="ro-tx"
                ),
                api.post(
                    "operator",
                    "/v1/wallets",
                    {"kind": "personal", "tier": 3, "display_name": "c", "identity": "ro-carol"},
                    key="ro-wallet",
                ),
            ]
            for r in refused:
                problem = assert_problem(r, 503, "database-unavailable")
                assert r.headers["retry-after"] == "1" and "Idempotency-Key" in problem["detail"]
            # Nothing was signed for a request whose intent could not be recorded.
            assert node.w3.eth.block_number == blocks_before
            assert chain_balance(node.w3, node.manifest, alice) == 1_000
            assert chain_balance(node.w3, node.manifest, bob) == 0

        with operator_service(env):  # writable again: the callers retry with their keys
            r = api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 555}, key="ro-issue")
            assert r.status_code == 200, r.text
            again = api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 555}, key="ro-issue")
            assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
            body = {"from": alice, "to": bob, "amount_fen": 100}
            assert api.post("operator", "/v1/transfers", body, key="ro-tx").status_code == 200
            assert chain_balance(node.w3, node.manifest, alice) == 1_000 + 555 - 100
            assert chain_balance(node.w3, node.manifest, bob) == 100
            assert sorted(e["args"]["value"] for e in issued_to(api, alice)) == [555, 1_000]
            assert_reconciled_clean(api)


# -- b) PostgreSQL connections killed mid-request ----------------------------------------------


@dataclass
class Outcome:
    confirmed: dict[str, str] = field(default_factory=dict)  # idempotency key -> operation id
    retryable: int = 0  # 503s (and dropped connections) that the client retried
    followed: int = 0  # accepted but still pending (202): the client followed the operation
    unexpected: list[str] = field(default_factory=list)


def issue_until_done(api: Client, key: str, body: dict[str, Any], out: Outcome) -> None:
    """What a well-behaved client does: retry with the same key until the operation is done."""
    op_id: str | None = None
    for _ in range(300):
        try:
            if op_id is None:
                r = api.post("operator", "/v1/issuance", body, key=key)
            else:
                r = api.get("auditor", f"/v1/operations/{op_id}")
        except httpx.HTTPError:
            out.retryable += 1
            time.sleep(0.1)
            continue
        if r.status_code == 503:
            assert r.headers["content-type"].startswith("application/problem+json"), r.text
            out.retryable += 1
            time.sleep(0.1)
            continue
        if r.status_code not in (200, 202):
            out.unexpected.append(f"{key}: {r.status_code} {r.text[:300]}")
            return
        op = r.json()
        if op["status"] == "confirmed":
            out.confirmed[key] = op["id"]
            return
        if op["status"] != "pending":
            out.unexpected.append(f"{key}: {op}")
            return
        if op_id is None:
            out.followed += 1
        op_id = op["id"]  # accepted, still pending: follow it
        time.sleep(0.2)
    out.unexpected.append(f"{key}: never finished")


@pytest.mark.slow
def test_postgres_connections_killed_under_load_lose_nothing_and_repeat_nothing(
    tmp_path: Path, deployed: Path
) -> None:
    """Every backend of the service is terminated again and again while two clients issue cash;
    clients retry with the same key on a 503. Each intended issuance happens exactly once."""
    admin_url = postgres_admin_url()
    if admin_url is None:
        pytest.skip("no PostgreSQL server (set XCPAY_TEST_POSTGRES_URL)")
    api_port = free_port()
    with anvil_with_contracts(tmp_path, deployed) as node, fresh_database("postgresql", tmp_path) as db_url:
        env = dict(
            service_env(tmp_path, node.rpc, api_port), XCPAY_DATABASE_URL=db_url, XCPAY_RECEIPT_TIMEOUT_S="3"
        )
        db_name = db_url.rsplit("/", 1)[-1]
        killer = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with operator_service(env):
            api = Client(f"http://127.0.0.1:{api_port}")
            alice = api.wallet(tier=2)
            for role in ("operator", "auditor"):
                api.key(role)
            out = Outcome()
            plan = {f"pg-{w}-{i}": 100 + 10 * w + i for w in range(2) for i in range(10)}

            def client(w: int) -> None:
                for key, amount in plan.items():
                    if key.startswith(f"pg-{w}-"):
                        issue_until_done(api, key, {"to": alice, "amount_fen": amount}, out)

            threads = [threading.Thread(target=client, args=(w,)) for w in range(2)]
            for t in threads:
                t.start()
            terminated = 0
            with killer.connect() as conn:
                while any(t.is_alive() for t in threads):
                    terminated += sum(
                        1
                        for (ok,) in conn.execute(
                            text(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = :db AND pid <> pg_backend_pid()"
                            ),
                            {"db": db_name},
                        )
                        if ok
                    )
                    time.sleep(0.3)
            for t in threads:
                t.join()
            killer.dispose()

            assert terminated > 0
            assert out.unexpected == []  # no 500, no lost or refused issuance
            assert set(out.confirmed) == set(plan)
            assert len(set(out.confirmed.values())) == len(plan)  # one operation per key
            assert chain_balance(node.w3, node.manifest, alice) == sum(plan.values())
            assert sorted(e["args"]["value"] for e in issued_to(api, alice)) == sorted(plan.values())
            assert_reconciled_clean(api)
            print(
                f"\n{terminated} backends terminated, {out.retryable} retries, {out.followed} followed,",
                f"{len(plan)} issuances once each",
            )


# -- c) the chain node stopped in the middle of a payroll --------------------------------------


def setup_payer(api: Client, total_fen: int) -> tuple[str, httpx.Client]:
    """An institution that pays (custodial, funded) and a checker key with its own wallet."""
    employer = _institution(api)
    r = api.post("operator", "/v1/issuance", {"to": employer, "amount_fen": total_fen})
    assert r.status_code == 200, r.text
    checker_wallet = api.wallet(tier=2)
    r = api.admin.post("/v1/api-keys", json={"role": "checker", "wallet": checker_wallet})
    assert r.status_code == 201, r.text
    checker = httpx.Client(base_url=api.url, headers={"X-API-Key": r.json()["key"]}, timeout=60)
    body = {"account": checker_wallet, "role": "checker"}
    r = api.post("operator", f"/v1/disbursements/payers/{employer}/officers", body)
    assert r.status_code == 200, r.text
    return employer, checker


def _institution(api: Client) -> str:
    body = {"kind": "institution", "tier": 1, "display_name": "Gig platform", "identity": str(uuid.uuid4())}
    r = api.post("operator", "/v1/wallets", body)
    assert r.status_code == 201, r.text
    return str(r.json()["request"]["address"])


def create_and_approve(
    api: Client, node: Node, employer: str, checker: httpx.Client, rows: list[dict[str, Any]], days: int
) -> str:
    ref = f"fault-{uuid.uuid4().hex[:10]}"
    now = int(node.w3.eth.get_block("latest")["timestamp"])
    body = {
        "reference": ref,
        "payer": employer,
        "purpose": "salary",
        "mode": "explicit",
        "ends_at": datetime.fromtimestamp(now + days * DAY, UTC).isoformat(),
        "unit": "fen",
        "rows": rows,
    }
    r = api.post("operator", "/v1/disbursements", body)
    assert r.status_code == 201, r.text
    r = checker.post(f"/v1/disbursements/{ref}/approve", headers={"Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 200, r.text
    return ref


def wait_batch(api: Client, ref: str, until: Any, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        r = api.get("operator", f"/v1/disbursements/{ref}")
        if r.status_code == 200 and until(r.json()):
            return r.json()
        assert time.monotonic() < deadline, f"batch {ref}: {r.text}"
        time.sleep(0.02)


@pytest.mark.slow
def test_the_node_stopped_mid_payroll_every_recipient_is_paid_exactly_once(
    tmp_path: Path, deployed: Path
) -> None:
    """A payroll of 300 rows in chunks of 5 (60 transactions); the node stops after the first
    chunks and comes back with its state. The batch completes: each row paid once, no chunk twice."""
    api_port = free_port()
    with anvil_with_contracts(tmp_path, deployed) as node:
        env = service_env(tmp_path, node.rpc, api_port, XCPAY_DISBURSE_CHUNK_ROWS="5")
        with operator_service(env):
            api = Client(f"http://127.0.0.1:{api_port}")
            api.key("auditor")
            workers = [Account.create().address for _ in range(300)]
            register_on_chain(node.w3, node.manifest, workers)
            amounts = {w: 1_000 + i for i, w in enumerate(workers)}
            employer, checker = setup_payer(api, sum(amounts.values()))
            ref = create_and_approve(
                api, node, employer, checker, [{"recipient": w, "amount": a} for w, a in amounts.items()], 30
            )

            r = api.post("operator", f"/v1/disbursements/{ref}/execute", {"push": "all"})
            assert r.status_code == 202, r.text
            during = wait_batch(api, ref, lambda b: b["rows_done"] > 0)
            # Mining stops first: anvil can lose a block it mines while writing its state on
            # SIGTERM (seen here: a chunk paid on chain whose block and events were gone after the
            # restart). Transactions sent from now on wait in its pool and die with the process;
            # the service must send them again.
            node.rpc_call("evm_setAutomine", False)
            time.sleep(0.5)
            node.proc.send_signal(signal.SIGTERM)  # anvil writes its state and exits
            node.proc.wait(timeout=30)
            stopped_at = api.get("operator", f"/v1/disbursements/{ref}").json()
            assert stopped_at["status"] == "executing" and stopped_at["rows_done"] < 300, stopped_at
            time.sleep(1.5)  # the runner and the reconciler meet the outage
            with running(node.cmd) as again:  # the same chain comes back
                wait_for_rpc(node.rpc, again)
                done = wait_batch(api, ref, lambda b: b["status"] != "executing", timeout_s=150)
                assert done["status"] == "executed", done
                assert done["rows_by_status"] == {"paid": 300}
                assert done["chain"]["paid_fen"] == sum(amounts.values())
                assert done["chain"]["outstanding_fen"] == 0
                for w, a in amounts.items():
                    assert chain_balance(node.w3, node.manifest, w) == a
                paid = (
                    node.manifest.contract(node.w3, "Disbursement")
                    .events.Paid()
                    .get_logs(from_block=node.manifest.block)
                )
                assert sorted(int(e["args"]["index"]) for e in paid) == list(range(300))  # each once
                ops = api.get("auditor", "/v1/audit/events?name=Paid&limit=1").json()
                assert ops["total"] == 300
                assert_reconciled_clean(api)
            print(
                f"\nnode stopped with {stopped_at['rows_done']} of 300 rows done",
                f"(first seen {during['rows_done']})",
            )


# -- d) the chain's clock jumps between acceptance and mining; the service's wall clock jumps --


@pytest.mark.slow
def test_a_clock_jump_past_the_end_date_before_mining_is_refused_with_the_contracts_error(
    tmp_path: Path, deployed: Path
) -> None:
    """A retry of a payout exception is accepted (its simulation passes) and sent; before it is
    mined the chain's clock moves past the batch's end date. The transaction reverts: the caller
    gets the contract's ``DisburseBatchEnded`` as problem+json, the operation is recorded failed,
    nothing is paid, and the payer reclaims the money."""
    api_port = free_port()
    with anvil_with_contracts(tmp_path, deployed) as node:
        env = service_env(tmp_path, node.rpc, api_port)
        with operator_service(env):
            api = Client(f"http://127.0.0.1:{api_port}")
            api.key("auditor")
            worker, late = Account.create().address, Account.create().address
            register_on_chain(node.w3, node.manifest, [worker])  # `late` is not registered yet
            employer, checker = setup_payer(api, 700 + 300)
            rows = [{"recipient": worker, "amount": 700}, {"recipient": late, "amount": 300}]
            ref = create_and_approve(api, node, employer, checker, rows, days=1)
            assert (
                api.post("operator", f"/v1/disbursements/{ref}/execute", {"push": "all"}).status_code == 202
            )
            done = wait_batch(api, ref, lambda b: b["status"] != "executing")
            assert done["rows_by_status"] == {"paid": 1, "exception": 1}
            register_on_chain(node.w3, node.manifest, [late])  # the cause is resolved: retry may pay
            payer_before = chain_balance(node.w3, node.manifest, employer)

            node.rpc_call("evm_setAutomine", False)
            answer: dict[str, httpx.Response] = {}
            retry = threading.Thread(
                target=lambda: answer.update(
                    r=api.post("operator", f"/v1/disbursements/{ref}/exceptions/1/retry", key="late-1")
                )
            )
            retry.start()
            try:
                deadline = time.monotonic() + 30
                while int(node.rpc_call("txpool_status")["pending"], 16) == 0:  # accepted and sent
                    assert time.monotonic() < deadline and retry.is_alive(), answer
                    time.sleep(0.05)
                node.rpc_call("evm_increaseTime", 2 * DAY)  # past the end date, before it is mined
                node.rpc_call("evm_mine")
            finally:
                node.rpc_call("evm_setAutomine", True)
                retry.join(timeout=60)

            problem = assert_problem(answer["r"], 409, "batch-ended")
            assert problem["error"]["name"] == "DisburseBatchEnded"
            op = api.get("auditor", f"/v1/operations/{problem['operation_id']}").json()
            assert op["status"] == "failed" and op["tx_hash"] is not None
            receipt = node.w3.eth.get_transaction_receipt(op["tx_hash"])
            assert receipt["status"] == 0  # it was mined, and reverted: nothing moved
            assert chain_balance(node.w3, node.manifest, late) == 0
            # The same key gives the same refusal; nothing is sent again.
            blocks = node.w3.eth.block_number
            replay = api.post("operator", f"/v1/disbursements/{ref}/exceptions/1/retry", key="late-1")
            assert assert_problem(replay, 409, "batch-ended")["operation_id"] == problem["operation_id"]
            assert node.w3.eth.block_number == blocks

            r = api.post("operator", f"/v1/disbursements/{ref}/reclaim")
            assert r.status_code == 200, r.text
            assert chain_balance(node.w3, node.manifest, employer) == payer_before + 300
            assert_reconciled_clean(api)


def in_process_service(compiled: CompileResult, tmp: Path) -> tuple[Web3, Manifest, Any, Any, str]:
    """The operator app without a server (its background reconciler off) on an in-process chain
    and SQLite, an operator key, and a registered wallet: for driving ``Operations`` directly."""
    w3 = in_process()
    manifest = deploy_all(w3, compiled=compiled)
    manifest.save(tmp / "manifest.json")
    db_url = f"sqlite:///{tmp / 'operator.db'}"
    upgrade(db_url)
    settings = OperatorSettings(
        database_url=db_url,
        manifest=tmp / "manifest.json",
        rpc_url="in-process",
        admin_api_key="xcp_fault_admin_key_0123456789abcdef",
        receipt_timeout_s=10,
    )
    app = create_app(settings, w3=w3, background=False)
    alice = Account.create().address
    register_on_chain(w3, manifest, [alice])
    with app.state.ctx.db.session() as s:
        key, _ = create_key(s, Role.OPERATOR, "clock test")
        s.commit()
    return w3, manifest, app, key, alice


def test_the_reconciler_and_a_request_never_both_sign_when_the_wall_clock_jumps(
    compiled: CompileResult, tmp_path: Path
) -> None:
    """The reconciler leaves an unsigned operation to its request for UNSIGNED_GRACE_S, measured
    on this host's wall clock. If that clock jumps forward while a request is between recording
    its intent and executing it, the reconciler executes the operation first; the request must
    then finish that transaction, not sign a second one (a second mint)."""
    w3, manifest, app, key, alice = in_process_service(compiled, tmp_path)
    ctx, ops = app.state.ctx, app.state.ops

    op, new = ops.begin("cash.issue", key, "clock-1", {"to": alice, "amount_fen": 500})
    assert new
    # The wall clock jumps an hour ahead while the request is about to execute: to the
    # reconciler the intent now looks abandoned.
    with ctx.db.session() as s:
        s.execute(
            update(Operation)
            .where(Operation.id == op.id)
            .values(created_at=datetime.now(UTC) - timedelta(hours=1))
        )
        s.commit()
    assert ops.reconcile()["confirmed"] == 1
    by_reconciler = ops.get(op.id).tx_hash

    done = ops.execute(op)  # the request carries on
    assert done.status == "confirmed" and done.tx_hash == by_reconciler
    assert chain_balance(w3, manifest, alice) == 500  # minted once
    app.state.indexer.catch_up()
    report = reconcile(ctx)
    assert [d.kind for d in report.discrepancies] == []


def test_the_reconciler_leaves_an_operation_alone_while_its_request_prepares_it(
    compiled: CompileResult, tmp_path: Path
) -> None:
    """A request's ``prepare`` step (a new wallet's key, a batch's rows) may outlast
    UNSIGNED_GRACE_S. The reconciler of the same process must not execute the operation in the
    meantime (it would run without what ``prepare`` adds); the request signs it, once."""
    w3, manifest, app, key, alice = in_process_service(compiled, tmp_path)
    ctx, ops = app.state.ctx, app.state.ops
    rounds: list[dict[str, int]] = []

    def slow_prepare() -> dict[str, Any]:
        with ctx.db.session() as s:  # the intent now looks an hour old to the reconciler
            s.execute(update(Operation).values(created_at=datetime.now(UTC) - timedelta(hours=1)))
            s.commit()
        rounds.append(ops.reconcile())  # a reconciler round while this request prepares
        return {"prepared": True}

    body = {"to": alice, "amount_fen": 700}
    op, replayed = perform(ops, "cash.issue", key, "prepare-1", body, prepare=slow_prepare)
    assert not replayed and op.status == "confirmed" and op.request["prepared"] is True
    assert rounds == [{"confirmed": 0, "failed": 0, "pending": 0}]  # it did not touch it
    assert chain_balance(w3, manifest, alice) == 700  # minted once
    app.state.indexer.catch_up()
    assert [d.kind for d in reconcile(ctx).discrepancies] == []


def test_an_operation_whose_request_stopped_while_preparing_is_abandoned_not_executed(
    compiled: CompileResult, tmp_path: Path
) -> None:
    """A request that dies inside its prepare step (its database connection lost, say) leaves an
    unsigned intent without what that step adds (a bill's hold, a new wallet's key). The reconciler
    must abandon it, never execute it; and a prepare step that raises fails its operation at once."""
    w3, manifest, app, key, alice = in_process_service(compiled, tmp_path)
    ctx, ops = app.state.ctx, app.state.ops
    body = {"to": alice, "amount_fen": 900}

    def broken_prepare() -> dict[str, Any]:
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        perform(ops, "cash.issue", key, "prepare-broken", body, prepare=broken_prepare)
    with ctx.db.session() as s:
        first = s.scalar(select(Operation).where(Operation.idempotency_key == "prepare-broken"))
    assert first is not None and first.status == "failed"
    assert first.error["slug"] == "operation-abandoned"

    # The process died before it could even mark it: only the intent (with its marker) is left.
    op, new = ops.begin("cash.issue", key, "prepare-died", body, preparing=True)
    assert new and op.request["_preparing"] is True
    with ctx.db.session() as s:
        s.execute(update(Operation).values(created_at=datetime.now(UTC) - timedelta(hours=1)))
        s.commit()
    assert ops.reconcile() == {"confirmed": 0, "failed": 1, "pending": 0}
    assert ops.get(op.id).status == "failed" and ops.get(op.id).raw_tx is None
    assert chain_balance(w3, manifest, alice) == 0  # nothing minted by either
    app.state.indexer.catch_up()
    assert [d.kind for d in reconcile(ctx).discrepancies] == []


def test_only_outages_of_the_database_are_answered_as_retryable(tmp_path: Path) -> None:
    """A read-only or locked database is an outage (503, retry with the same key); a missing table
    or bad SQL is a bug and must stay a 500, not 'retry later' for ever."""
    from sqlalchemy.exc import DBAPIError

    from services.common.problems import database_unavailable

    db = tmp_path / "x.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("create table t (x integer)"))
    engine.dispose()

    def error_of(url: str, sql: str) -> DBAPIError:
        eng = create_engine(url)
        try:
            with eng.begin() as conn:
                conn.execute(text(sql))
        except DBAPIError as exc:
            return exc
        finally:
            eng.dispose()
        raise AssertionError(f"{sql} did not fail")

    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"
    assert database_unavailable(error_of(read_only, "insert into t values (1)"))
    assert not database_unavailable(error_of(f"sqlite:///{db}", "insert into missing values (1)"))
    assert not database_unavailable(error_of(f"sqlite:///{db}", "selec nonsense"))
    admin = postgres_admin_url()
    if admin is not None:
        assert not database_unavailable(error_of(admin, "select * from no_such_table_here"))
