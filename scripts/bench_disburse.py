"""Benchmark payroll and subsidy disbursement against one token transfer per recipient.

What it measures, in one run, on anvil (the node of `make run`), started and deployed here:

1. **Gas per recipient** (``gasUsed`` of the receipts, so the 21,000 intrinsic gas and the calldata
   are in), every recipient a fresh registered wallet with a zero balance, as in a real payroll:

   - baselines measured on the same chain: one ``DigitalCash`` transfer per recipient (institution
     wallet to a fresh registered wallet) and one ``PlainERC20`` transfer (OpenZeppelin ERC20, no
     permission checks) to a fresh address;
   - **explicit batches** of 1, 10, 100 and 200 (``MAX_ROWS``) recipients: the whole life
     (``createBatch`` + ``addRows`` + ``approve`` + ``payChunk``) divided by the recipients, and
     ``payChunk`` alone;
   - **Merkle batches**: ``createBatch`` of a 100,000-leaf tree (one transaction whatever the size),
     a recipient's own ``claim`` (a 17-sibling proof), and ``pushClaims`` of 200 claims per recipient.

2. **End to end through the operator API** (``python -m services.operator serve``, SQLite, or
   PostgreSQL with ``--database URL``): a payroll of ``--people`` tier-2 persons (default 1,000;
   ``make bench`` runs 10,000), created as one JSON request, approved by a checker key, executed in
   the background and polled until done: recipients paid per second, creation to the last row paid.
   Two baselines on the same node in the same run, interleaved around the payroll (half before,
   half after):

   - **the node's limit**: ``BareBatch`` (contracts/mocks) paying fresh addresses plain ERC20
     transfers in chunks of ``MAX_ROWS`` (build, sign, send, mine; no checks, no records);
     issue 19's goal: the payroll at least 0.5 of it;
   - **the naive path**: sequential ``POST /v1/transfers`` of the same payer to other registered
     recipients (one API call and one transaction per person); the goal: the batch at least 10x it.

   The recipients are registered straight through ``chain/`` before the service starts, and the
   service's event indexer has caught up with those registrations (an audit read waits for it)
   before any clock starts, so no baseline is timed while the indexer is still busy.

3. **Dashboard and memory**: ``GET /dashboard/data`` latency before and after the payroll: the
   first read (timed: it fills the dashboard's caches, and after a 10,000-person payroll it once
   took ~10 minutes, issue 19), then the median of 9 more; and the resident memory of the stack
   (anvil + the operator service), before and after the payroll.

Read the figures beside the baselines: gas depends on the compiler and the EVM version, and
seconds on the machine and the node.

    .venv/bin/python scripts/bench_disburse.py [--people N] [--baseline N] [--merkle-leaves N]
        [--no-gas] [--database URL]

Prints tables and writes ``bench-results/bench_disburse.json`` (its ``rows`` go to ``bench/results.json``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from eth_account import Account  # noqa: E402
from web3 import Web3  # noqa: E402

from chain.accounts import dev_account  # noqa: E402
from chain.backends import http  # noqa: E402
from chain.clients.disburse import (  # noqa: E402
    MAX_ROWS,
    DisbursementClient,
    Officer,
    Row,
    batch_id,
    merkle_tree,
    purpose_tag,
)
from chain.clients.token import MAX_REGISTRATIONS, CashClient, Kind, Registration  # noqa: E402
from chain.compiler import compile_contracts  # noqa: E402
from chain.deploy import deploy_all  # noqa: E402
from chain.manifest import Manifest  # noqa: E402
from chain.processes import free_port  # noqa: E402
from scripts.benchlib import (  # noqa: E402
    BareBatchLimit,
    Target,
    cpu_s,
    render_rows,
    rss_mb,
    table,
    write_result,
)
from scripts.stack import (  # noqa: E402
    database,
    deploy,
    local_node,
    operator_service,
    service_env,
)

OPERATOR, PAYER, CHECKER, SENDER = dev_account(1), dev_account(8), dev_account(9), dev_account(7)
EXPLICIT_SIZES = [1, 10, 100, MAX_ROWS]
MERKLE_LEAVES = 10_000  # default; make bench: 100,000
ADMIN_KEY = "xcp_bench_admin_" + uuid.uuid4().hex
DAY = 86_400


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def register_many(cash: CashClient, addresses: list[str], label: str) -> None:
    """Register fresh personal tier-2 wallets, ``registerBatch`` of MAX_REGISTRATIONS at a time
    (not timed: one ``register`` each took minutes for 10,000 on a loaded machine)."""
    for start in range(0, len(addresses), MAX_REGISTRATIONS):
        rows = [
            Registration(a, Kind.PERSONAL, 2, 0, Web3.keccak(text=f"{label}:{a}"))
            for a in addresses[start : start + MAX_REGISTRATIONS]
        ]
        cash.register_batch(OPERATOR, rows)
        if start and start % 2_000 == 0:
            _log(f"  registered {start} of {len(addresses)}")


def fresh(n: int) -> list[str]:
    return [Account.create().address for _ in range(n)]


def now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


# -- 1. gas --------------------------------------------------------------------------------------------


def gas_figures(w3: Web3, merkle_leaves: int) -> dict[str, Any]:
    compiled = compile_contracts()
    manifest = deploy_all(w3, compiled=compiled)
    cash = CashClient(w3, manifest)
    d = DisbursementClient(w3, manifest, cash.tx)
    cash.register(OPERATOR, PAYER.address, Kind.INSTITUTION, 1, 0, Web3.keccak(text="payer"))
    cash.register(OPERATOR, SENDER.address, Kind.INSTITUTION, 1, 0, Web3.keccak(text="sender"))
    cash.mint(OPERATOR, PAYER.address, 10**13)
    cash.mint(OPERATOR, SENDER.address, 10**12)
    cash.approve(PAYER, d.contract.address, 2**255)
    d.set_officer(PAYER, CHECKER.address, Officer.CHECKER)
    art = compiled["PlainERC20"]
    plain_address = cash.tx.deploy(dev_account(0), art.abi, art.bytecode).receipt["contractAddress"]
    plain = w3.eth.contract(address=plain_address, abi=art.abi)
    cash.tx.transact(SENDER, plain.functions.mint(SENDER.address, 10**12))

    people = fresh(sum(EXPLICIT_SIZES) + 10 + 10 + MAX_ROWS + 1)
    register_many(cash, people, "gas")
    pool = iter(people)

    def take(n: int) -> list[str]:
        return [next(pool) for _ in range(n)]

    cash.transfer(SENDER, next(pool), 1_00)  # the first transfer warms the sender's daily slot
    dc = [cash.transfer(SENDER, r, 1_00).gas_used for r in take(10)]
    pe = [cash.tx.transact(SENDER, plain.functions.transfer(r, 1_00)).gas_used for r in fresh(10)]
    out: dict[str, Any] = {
        "baseline_digitalcash_transfer": sum(dc) / len(dc),
        "baseline_plain_erc20_transfer": sum(pe) / len(pe),
        "explicit": [],
    }
    for n in EXPLICIT_SIZES:
        rows = [Row(r, 1_00) for r in take(n)]
        ref = f"gas-explicit-{n}"
        bid = batch_id(PAYER.address, ref)
        create = d.create_explicit(PAYER, ref, PAYER.address, purpose_tag("salary"), now(w3) + DAY, n * 1_00)
        add = d.add_rows(PAYER, bid, rows)
        approve = d.approve(CHECKER, bid)
        pay = d.pay_chunk(OPERATOR, bid, 0, rows)
        whole = create.gas_used + add.gas_used + approve.gas_used + pay.gas_used
        out["explicit"].append(
            {"recipients": n, "whole_per_recipient": whole / n, "pay_per_recipient": pay.gas_used / n}
        )

    claimers = take(10) + take(MAX_ROWS)
    # Leaves 0..209 are real registered people; the rest stand in for the other recipients.
    leaves = [Row(claimers[i] if i < len(claimers) else people[-1], 1_00) for i in range(merkle_leaves)]
    bid = batch_id(PAYER.address, "gas-merkle")
    started = time.perf_counter()
    tree = merkle_tree(bid, leaves)
    tree_s = time.perf_counter() - started
    total = merkle_leaves * 1_00
    create = d.create_merkle(
        PAYER,
        "gas-merkle",
        PAYER.address,
        purpose_tag("subsidy"),
        now(w3) + DAY,
        total,
        tree.root,
        merkle_leaves,
    )
    d.approve(CHECKER, bid)
    claims = [d.claim(OPERATOR, bid, i, leaves[i], tree.proof(i)).gas_used for i in range(10)]
    push = d.push_claims(OPERATOR, bid, [(i, leaves[i], tree.proof(i)) for i in range(10, 10 + MAX_ROWS)])
    out["merkle"] = {
        "leaves": merkle_leaves,
        "create_gas": create.gas_used,
        "tree_build_s": tree_s,
        "proof_length": len(tree.proof(0)),
        "claim_per_recipient": sum(claims) / len(claims),
        "push_per_recipient": push.gas_used / MAX_ROWS,
    }
    return out


# -- 2. through the API --------------------------------------------------------------------------------


def api_figures(people: int, baseline_n: int, tmp: Path, database_url: str | None = None) -> dict[str, Any]:
    pids: list[int] = []
    with local_node(tmp, pids) as rpc:
        manifest_path = tmp / "manifest.json"
        deploy(rpc, manifest_path)
        w3 = http(rpc)
        manifest = Manifest.load(manifest_path)
        cash = CashClient(w3, manifest)
        bare = BareBatchLimit(w3, cash.tx)
        recipients = fresh(people + baseline_n)
        _log(f"  registering {len(recipients)} tier-2 recipients straight through chain/")
        register_many(cash, recipients, "api")
        with database(database_url, tmp) as db_url:
            env = service_env(rpc, manifest_path, db_url, free_port(), ADMIN_KEY)
            with operator_service(env, tmp / "operator.log", pids) as url:
                return _through_api(url, w3, cash, bare, recipients[:people], recipients[people:], pids)


def _through_api(
    url: str,
    w3: Web3,
    cash: CashClient,
    bare: BareBatchLimit,
    payroll: list[str],
    singles: list[str],
    pids: list[int],
) -> dict[str, Any]:
    admin = httpx.Client(base_url=url, headers={"X-API-Key": ADMIN_KEY}, timeout=600)

    def key(role: str, wallet: str | None = None) -> httpx.Client:
        body: dict[str, Any] = {"role": role}
        if wallet:
            body["wallet"] = wallet
        r = admin.post("/v1/api-keys", json=body)
        r.raise_for_status()
        return httpx.Client(base_url=url, headers={"X-API-Key": r.json()["key"]}, timeout=600)

    def post(client: httpx.Client, path: str, body: Any) -> dict[str, Any]:
        r = client.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        if r.status_code >= 300:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:500]}")
        return r.json()

    operator = key("operator")
    wallet = {"kind": "institution", "tier": 1, "display_name": "platform", "identity": "bench-payer"}
    payer = post(operator, "/v1/wallets", wallet)["request"]["address"]
    checker_wallet = post(
        operator, "/v1/wallets", {**wallet, "display_name": "checker", "identity": "bench-checker"}
    )
    checker_address = checker_wallet["request"]["address"]
    checker = key("checker", checker_address)
    post(
        operator,
        f"/v1/disbursements/payers/{payer}/officers",
        {"account": checker_address, "role": "checker"},
    )
    amount = 1_00
    post(operator, "/v1/issuance", {"to": payer, "amount_fen": amount * (len(payroll) + len(singles)) * 2})
    auditor = key("auditor")

    def caught_up() -> float:
        """Wait for the indexer to reach the head (an audit read indexes up to it first)."""
        t0 = time.perf_counter()
        auditor.get("/v1/audit/events", params={"name": "Issued", "limit": 1}).raise_for_status()
        return time.perf_counter() - t0

    def dashboard_ms() -> tuple[float, float]:
        """The first read of the dashboard's data (ms; it fills the caches: what a page opened
        right after the payroll waits for), then the median of 9 more (a poll's cost)."""
        t0 = time.perf_counter()
        auditor.get("/dashboard/data").raise_for_status()
        first = (time.perf_counter() - t0) * 1000
        times = []
        for _ in range(9):
            t0 = time.perf_counter()
            auditor.get("/dashboard/data").raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
        return first, statistics.median(times)

    half_people, half_singles = len(payroll) // 2, len(singles) // 2
    single_s = 0.0
    bare_rates: list[float] = []

    def naive(batch: list[str]) -> None:
        nonlocal single_s
        started = time.perf_counter()
        for r in batch:
            post(operator, "/v1/transfers", {"from": payer, "to": r, "amount_fen": amount})
        single_s += time.perf_counter() - started

    catch_up_s = caught_up()
    _log(f"  indexer caught up with the registrations in {catch_up_s:.1f} s (not timed)")
    dashboard_first_before, dashboard_before = dashboard_ms()
    memory_before = rss_mb(pids)
    node_before, service_before = rss_mb(pids[:1]), rss_mb(pids[1:])
    _log(f"  bare batch: {half_people} recipients; naive: {half_singles} single API transfers")
    me = [os.getpid()]
    bare_cpu = -cpu_s(me) - cpu_s(pids[:1])
    bare_rates.append(bare.run(half_people, MAX_ROWS))
    bare_cpu += cpu_s(me) + cpu_s(pids[:1])
    naive(singles[:half_singles])
    caught_up()

    body = {
        "reference": "bench-payroll",
        "payer": payer,
        "purpose": "salary",
        "ends_at": datetime.fromtimestamp(now(w3) + 30 * DAY, UTC).isoformat(),
        "unit": "fen",
        "rows": [{"recipient": r, "amount": amount} for r in payroll],
    }
    payroll_cpu = -cpu_s(pids)
    t0 = time.perf_counter()
    created = post(operator, "/v1/disbursements", body)
    t1 = time.perf_counter()
    post(checker, "/v1/disbursements/bench-payroll/approve", None)
    t2 = time.perf_counter()
    r = operator.post("/v1/disbursements/bench-payroll/execute", json={})
    if r.status_code != 202:
        raise RuntimeError(f"execute: {r.status_code} {r.text[:500]}")
    while True:
        status = operator.get("/v1/disbursements/bench-payroll").json()
        if status["status"] != "executing":
            break
        time.sleep(0.5)
    t3 = time.perf_counter()
    payroll_cpu += cpu_s(pids)
    if status["status"] != "executed" or status["rows_by_status"] != {"paid": len(payroll)}:
        raise RuntimeError(f"the payroll did not complete: {status}")
    caught_up()
    memory_after = rss_mb(pids)
    node_after, service_after = rss_mb(pids[:1]), rss_mb(pids[1:])
    dashboard_first_after, dashboard_after = dashboard_ms()
    _log(f"  dashboard after the payroll: first read {dashboard_first_after:,.0f} ms")
    _log(f"  naive: {len(singles) - half_singles} single API transfers; bare batch: {half_people} recipients")
    naive(singles[half_singles:])
    bare_cpu -= cpu_s(me) + cpu_s(pids[:1])
    bare_rates.append(bare.run(len(payroll) - half_people, MAX_ROWS))
    bare_cpu += cpu_s(me) + cpu_s(pids[:1])
    if status["chain"]["paid_fen"] != amount * len(payroll) or created["total_fen"] != amount * len(payroll):
        raise RuntimeError(f"paid {status['chain']['paid_fen']}, expected {amount * len(payroll)}")
    sample = payroll[:: max(1, len(payroll) // 100)] + singles
    wrong = [a for a in sample if cash.balance_of(a) != amount]
    if wrong:
        raise RuntimeError(f"{len(wrong)} sampled recipients do not hold {amount} fen")
    return {
        "people": len(payroll),
        "create_s": t1 - t0,
        "approve_s": t2 - t1,
        "execute_s": t3 - t2,
        "total_s": t3 - t0,
        "paid_per_s": len(payroll) / (t3 - t0),
        "paid_per_s_execution": len(payroll) / (t3 - t2),
        "baseline_transfers": len(singles),
        "baseline_transfers_per_s": len(singles) / single_s,
        "bare_batch_per_s": statistics.fmean(bare_rates),
        "bare_batch_per_s_halves": bare_rates,
        "indexer_catch_up_s": catch_up_s,
        "dashboard_first_ms_before": dashboard_first_before,
        "dashboard_first_ms_after": dashboard_first_after,
        "dashboard_ms_before": dashboard_before,
        "dashboard_ms_after": dashboard_after,
        # CPU seconds per 1,000 recipients: the payroll's (operator + anvil, creation to the last
        # row paid, the client's polls included) and the bare batch's (this client + anvil).
        "payroll_cpu_s_per_1000": payroll_cpu * 1000 / len(payroll),
        "bare_batch_cpu_s_per_1000": bare_cpu * 1000 / len(payroll),
        "stack_rss_mb_before": memory_before,
        "stack_rss_mb_after": memory_after,
        "node_rss_mb_before": node_before,
        "node_rss_mb_after": node_after,
        "operator_rss_mb_before": service_before,
        "operator_rss_mb_after": service_after,
        "sampled_balances_checked": len(sample),
    }


# -- report --------------------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    lines = []
    for backend, r in results.items():
        g = r["gas"]
        dc, pe = g["baseline_digitalcash_transfer"], g["baseline_plain_erc20_transfer"]
        rows = [
            ["baseline: DigitalCash transfer", f"{dc:,.0f}", "1.00", f"{dc / pe:.2f}"],
            ["baseline: PlainERC20 transfer", f"{pe:,.0f}", f"{pe / dc:.2f}", "1.00"],
        ]
        for e in g["explicit"]:
            for what, key in (("whole life", "whole_per_recipient"), ("payChunk", "pay_per_recipient")):
                v = e[key]
                rows.append(
                    [f"explicit x{e['recipients']}: {what}", f"{v:,.0f}", f"{v / dc:.2f}", f"{v / pe:.2f}"]
                )
        m = g["merkle"]
        for what, v in (
            (f"Merkle create ({m['leaves']:,} leaves, 1 tx)", m["create_gas"]),
            (f"Merkle claim (proof of {m['proof_length']})", m["claim_per_recipient"]),
            (f"Merkle pushClaims x{MAX_ROWS}", m["push_per_recipient"]),
        ):
            rows.append([what, f"{v:,.0f}", f"{v / dc:.2f}", f"{v / pe:.2f}"])
        lines.append(f"== {backend}: gas per recipient ==")
        lines.append(table(["", "gas", "x DigitalCash transfer", "x PlainERC20 transfer"], rows))
        a = r["api"]
        lines.append(f"\n== {backend}: a {a['people']:,}-person payroll through the operator API ==")
        lines.append(
            table(
                ["", "seconds", "recipients/s"],
                [
                    ["create (JSON, validated, rows on chain)", f"{a['create_s']:.1f}", ""],
                    ["approve (checker key)", f"{a['approve_s']:.1f}", ""],
                    [
                        "execute (background, polled)",
                        f"{a['execute_s']:.1f}",
                        f"{a['paid_per_s_execution']:.1f}",
                    ],
                    ["whole batch", f"{a['total_s']:.1f}", f"{a['paid_per_s']:.1f}"],
                    [
                        f"baseline: {a['baseline_transfers']} single API transfers",
                        "",
                        f"{a['baseline_transfers_per_s']:.1f}",
                    ],
                    [
                        f"baseline: bare batch, chunks of {MAX_ROWS} (node's limit)",
                        "",
                        f"{a['bare_batch_per_s']:.1f}",
                    ],
                ],
            )
        )
        lines.append(
            f"batch / single transfers: {a['paid_per_s'] / a['baseline_transfers_per_s']:.1f}x; "
            f"batch / bare batch: {a['paid_per_s'] / a['bare_batch_per_s']:.2f} "
            f"(Merkle tree of {m['leaves']:,} leaves built in {m['tree_build_s']:.1f} s)\n"
        )
    return "\n".join(lines)


def rows_of(a: dict[str, Any]) -> list[Target]:
    n = f"{a['people']:,}"
    return [
        Target(f"payroll of {n} via the API vs the bare-batch limit", a["paid_per_s"], a["bare_batch_per_s"],
            ">= 0.5", "recipients/s"),
        Target(f"payroll of {n}: CPU s per 1,000 paid (operator + anvil) vs the bare batch (client + anvil)",
            a["payroll_cpu_s_per_1000"], a["bare_batch_cpu_s_per_1000"], None, "CPU s"),
        Target(f"payroll of {n}: batch vs one API call per person", a["paid_per_s"],
            a["baseline_transfers_per_s"], ">= 10", "recipients/s"),
        Target(f"dashboard data: first read after the payroll of {n} (baseline: first read before it)",
            a["dashboard_first_ms_after"], a["dashboard_first_ms_before"], None, "ms"),
        Target(f"dashboard data latency after the payroll of {n} (baseline: before it)",
            a["dashboard_ms_after"], a["dashboard_ms_before"], None, "ms"),
        Target(f"stack memory (anvil + operator) after the payroll of {n} (baseline: before it)",
            a["stack_rss_mb_after"], a["stack_rss_mb_before"], None, "MB"),
        Target(f"operator service memory after the payroll of {n} (baseline: before it)",
            a["operator_rss_mb_after"], a["operator_rss_mb_before"], None, "MB"),
        Target(f"node (anvil) memory after the payroll of {n} (baseline: before it)",
            a["node_rss_mb_after"], a["node_rss_mb_before"], None, "MB"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=1_000, help="payroll size through the API (1,000)")
    parser.add_argument("--baseline", type=int, default=40, help="single API transfers for the baseline (40)")
    parser.add_argument("--merkle-leaves", type=int, default=MERKLE_LEAVES, help="leaves of the Merkle batch")
    parser.add_argument("--no-gas", action="store_true", help="skip the gas figures (section 1)")
    parser.add_argument(
        "--database",
        default=None,
        help="the service's database: SQLite in the run's directory by default, or a "
        "PostgreSQL server URL (a throwaway database is created on it and dropped)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xcpay-bench-") as tmp_name:
        tmp = Path(tmp_name)
        gas: dict[str, Any] | None = None
        if not args.no_gas:
            _log("anvil: gas figures")
            with local_node(tmp) as rpc:
                gas = gas_figures(http(rpc), args.merkle_leaves)
        _log(f"anvil: {args.people}-person payroll through the API")
        api = api_figures(args.people, args.baseline, tmp, args.database)
    results = {"anvil": {"gas": gas, "api": api}}
    if gas is not None:
        print(render(results))
    rows = rows_of(api)
    print(render_rows(rows))
    scale = {"people": args.people, "baseline_transfers": args.baseline, "merkle_leaves": args.merkle_leaves}
    scale["database"] = "postgresql" if args.database and args.database.startswith("postgresql") else "sqlite"
    out = write_result(
        "bench_disburse", rows, scale, whole_run_s=time.perf_counter() - started, results=results
    )
    print(f"written: {out.relative_to(ROOT)} (whole run {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
