"""Benchmark the auditor's reconciliation: the full replay against the incremental refresh.

One run, on anvil (the node of `make run`), started and deployed here, with the operator service in
its own process (scripts/stack.py) and a SQLite database (``--database`` for PostgreSQL):

1. a payroll of ``--ops`` recipients (default 1,000; ``--ops 10000`` for the issue's scale) through
   the operator API: create, approve by a checker key, execute, poll until paid. The recipients are
   registered straight through ``chain/`` by the deployer beforehand (a deployment-side transaction:
   counted by the reconciliation, not blamed), as a payroll's people already exist;
2. the event index catches up (timed apart: every reconciliation lets it catch up first);
3. **full replay** (``reconcile(full=True)``, what ``?full=true`` and ``reconcile --full`` run):
   every block read from the node again; it leaves the checkpoint;
4. **incremental, no new block**: what the background refresh costs when nothing happened;
5. 100 new operations (``POST /v1/transfers``), the index catches up, then **incremental after 100
   operations** and a full replay of the same chain, whose verdicts must agree (exit 1 otherwise);
6. with ``--legacy-tree DIR`` (a checkout of the code before the incremental reconciliation, e.g.
   an untouched main), that tree's reconciliation on the same chain and database, in a subprocess.

Each figure is in seconds, beside the node round trips it made. Rows for ``bench/results.json``
(``{"name", "value", "baseline", "ratio", "goal"}``, ratio = value / baseline: the incremental
refresh's time as a fraction of the full replay's, measured in the same run) go to stdout after the
table and to ``bench-results/reconcile.json`` (with the raw figures and the environment).

    .venv/bin/python scripts/bench_reconcile.py [--ops N] [--database URL] [--legacy-tree DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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
from chain.clients.token import CashClient, Kind  # noqa: E402
from chain.manifest import Manifest  # noqa: E402
from chain.processes import free_port  # noqa: E402
from scripts.benchlib import Target, environment, table  # noqa: E402
from scripts.stack import database, deploy, local_node, operator_service, service_env  # noqa: E402

OUT_FILE = ROOT / "bench-results" / "reconcile.json"
DEPLOYER = dev_account(0)
ADMIN_KEY = "xcp_bench_admin_" + uuid.uuid4().hex
REGISTER_GAS = 200_000
NEW_OPS = 100
DAY = 86_400
# A refresh is worth running often only if it costs a small part of the full replay.
GOAL_NO_NEW_BLOCK = 0.05
GOAL_AFTER_100 = 0.25


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def register(cash: CashClient, addresses: list[str]) -> None:
    """Register fresh personal tier-2 wallets as the deployer (registry admin, registrar for this),
    sending without waiting for each receipt."""
    registry = cash.registry.functions
    role = registry.REGISTRAR_ROLE().call()
    cash.tx.transact(DEPLOYER, registry.grantRole(role, DEPLOYER.address))
    sent = None
    for i, address in enumerate(addresses):
        fn = registry.register(address, int(Kind.PERSONAL), 2, 0, Web3.keccak(text=f"bench:{address}"))
        sent = cash.tx.send(DEPLOYER, fn, gas=REGISTER_GAS)
        if i and i % 500 == 0:  # let the node keep up
            cash.tx.wait(sent.tx_hash)
    if sent is not None:
        cash.tx.wait(sent.tx_hash)


class Api:
    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = httpx.Client(base_url=url, headers={"X-API-Key": ADMIN_KEY}, timeout=600)

    def key(self, role: str, wallet: str | None = None) -> httpx.Client:
        body: dict[str, Any] = {"role": role} | ({"wallet": wallet} if wallet else {})
        r = self.admin.post("/v1/api-keys", json=body)
        r.raise_for_status()
        return httpx.Client(base_url=self.url, headers={"X-API-Key": r.json()["key"]}, timeout=600)

    @staticmethod
    def post(client: httpx.Client, path: str, body: Any) -> dict[str, Any]:
        r = client.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        if r.status_code >= 300:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:500]}")
        return dict(r.json())


def payroll(api: Api, w3: Web3, recipients: list[str]) -> tuple[httpx.Client, str, float]:
    """A payroll of ``recipients`` through the API; returns the operator client, the payer, seconds."""
    operator = api.key("operator")
    wallet = {"kind": "institution", "tier": 1, "display_name": "payer", "identity": "bench-payer"}
    payer = api.post(operator, "/v1/wallets", wallet)["request"]["address"]
    checker_wallet = api.post(
        operator, "/v1/wallets", {**wallet, "display_name": "checker", "identity": "chk"}
    )
    checker_address = checker_wallet["request"]["address"]
    checker = api.key("checker", checker_address)
    api.post(
        operator,
        f"/v1/disbursements/payers/{payer}/officers",
        {"account": checker_address, "role": "checker"},
    )
    api.post(operator, "/v1/issuance", {"to": payer, "amount_fen": 100 * (len(recipients) + NEW_OPS) * 2})
    started = time.perf_counter()
    ends = datetime.fromtimestamp(int(w3.eth.get_block("latest")["timestamp"]) + 30 * DAY, UTC)
    body = {
        "reference": "bench-reconcile",
        "payer": payer,
        "purpose": "salary",
        "ends_at": ends.isoformat(),
        "unit": "fen",
        "rows": [{"recipient": r, "amount": 100} for r in recipients],
    }
    api.post(operator, "/v1/disbursements", body)
    api.post(checker, "/v1/disbursements/bench-reconcile/approve", None)
    r = operator.post("/v1/disbursements/bench-reconcile/execute", json={})
    if r.status_code != 202:
        raise RuntimeError(f"execute: {r.status_code} {r.text[:500]}")
    while (status := operator.get("/v1/disbursements/bench-reconcile").json())["status"] == "executing":
        time.sleep(0.5)
    if status["status"] != "executed" or status["rows_by_status"] != {"paid": len(recipients)}:
        raise RuntimeError(f"the payroll did not complete: {status}")
    return operator, payer, time.perf_counter() - started


def timed(label: str, fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - started
    _log(f"  {label}: {seconds:.2f} s")
    return out, seconds


def legacy(tree: Path, env: dict[str, str]) -> float:
    """The reconciliation of another checkout (no checkpoint: it replays), on this chain and database."""
    code = (
        "import json, time\n"
        "import services.operator.routes\n"
        "from services.common.context import ServiceContext\n"
        "from services.common.settings import Settings\n"
        "from services.operator.reconciliation import reconcile\n"
        "ctx = ServiceContext.build(Settings())\n"
        "t = time.perf_counter(); r = reconcile(ctx); s = time.perf_counter() - t\n"
        "print(json.dumps({'seconds': s, 'verdict': r.verdict}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tree,
        env={**env, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the legacy reconciliation failed:\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    _log(f"  legacy reconciliation ({tree}): {out['seconds']:.2f} s, {out['verdict']}")
    return float(out["seconds"])


def run(ops: int, database_url: str | None, legacy_tree: Path | None) -> dict[str, Any]:
    from services.common.context import ServiceContext
    from services.common.indexer import Indexer
    from services.common.settings import Settings
    from services.operator.reconciliation import reconcile

    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as d, local_node(Path(d)) as rpc:
        tmp = Path(d)
        manifest_path = tmp / "manifest.json"
        deploy(rpc, manifest_path)
        w3 = http(rpc)
        cash = CashClient(w3, Manifest.load(manifest_path))
        recipients = [Account.create().address for _ in range(ops)]
        _log(f"registering {ops} recipients through chain/")
        register(cash, recipients)
        with database(database_url, tmp) as db_url:
            env = service_env(rpc, manifest_path, db_url, free_port(), ADMIN_KEY)
            env["XCPAY_KEYSTORE_COST"] = "test"
            with operator_service(env, tmp / "operator.log") as url:
                api = Api(url)
                _log(f"a payroll of {ops} through the API")
                operator, payer, payroll_s = payroll(api, w3, recipients)
                settings = Settings(
                    database_url=db_url, rpc_url=rpc, manifest=manifest_path, admin_api_key=ADMIN_KEY
                )
                ctx = ServiceContext.build(settings)
                indexer = Indexer(ctx)
                _, index_s = timed("index catch-up", indexer.run_once)
                legacy_s = legacy(legacy_tree, env) if legacy_tree else None
                full, full_s = timed("full replay", lambda: reconcile(ctx, full=True))
                noop, noop_s = timed("incremental, no new block", lambda: reconcile(ctx))
                _log(f"{NEW_OPS} new operations")
                for r in recipients[:NEW_OPS]:
                    api.post(operator, "/v1/transfers", {"from": payer, "to": r, "amount_fen": 1})
                _, index100_s = timed("index catch-up", indexer.run_once)
                inc, inc_s = timed(f"incremental after {NEW_OPS} operations", lambda: reconcile(ctx))
                full2, full2_s = timed("full replay of the same chain", lambda: reconcile(ctx, full=True))
        agree = {k: v for k, v in inc.as_dict().items() if k not in RUN_FIELDS} == {
            k: v for k, v in full2.as_dict().items() if k not in RUN_FIELDS
        }
        return {
            "ops": ops,
            "new_ops": NEW_OPS,
            "payroll_s": payroll_s,
            "events": full.counts["events"],
            "blocks": full.to_block,
            "index_catch_up_s": index_s,
            "index_catch_up_after_new_ops_s": index100_s,
            "legacy_s": legacy_s,
            "full_s": full_s,
            "full_round_trips": full.cost["node_round_trips"],
            "full_verdict": full.verdict,
            "incremental_no_new_block_s": noop_s,
            "incremental_no_new_block_round_trips": noop.cost["node_round_trips"],
            "incremental_after_new_ops_s": inc_s,
            "incremental_after_new_ops_round_trips": inc.cost["node_round_trips"],
            "full_after_new_ops_s": full2_s,
            "full_after_new_ops_round_trips": full2.cost["node_round_trips"],
            "verdicts_agree": agree,
            "verdict": inc.verdict,
            "discrepancies": len(inc.discrepancies),
        }


RUN_FIELDS = {"generated_at", "mode", "resumed_from", "notes", "cost"}


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    n = r["ops"]

    def row(name: str, value: float, baseline: float | None, goal: str | None, note: str) -> dict[str, Any]:
        # The same row as every other benchmark's (scripts/benchlib.Target), so bench_all judges
        # ``met`` the same way: the goal applies to the ratio when there is a baseline.
        return Target(name, value, baseline, goal, unit="s", note=note).as_json()

    out = [
        row(
            f"reconcile_full_after_{n}_ops_s",
            r["full_s"],
            r["legacy_s"],
            None,
            "baseline: the replay before issue 19 on the same chain (--legacy-tree), when measured",
        ),
        row(
            f"reconcile_incremental_no_new_block_after_{n}_ops_s",
            r["incremental_no_new_block_s"],
            r["full_s"],
            f"<= {GOAL_NO_NEW_BLOCK}",
            "baseline: the full replay, same run",
        ),
        row(
            f"reconcile_incremental_after_{r['new_ops']}_new_ops_on_{n}_s",
            r["incremental_after_new_ops_s"],
            r["full_after_new_ops_s"],
            f"<= {GOAL_AFTER_100}",
            "baseline: the full replay of the same chain, same run",
        ),
    ]
    return out


def render(r: dict[str, Any]) -> str:
    def s(key: str) -> str:
        return "-" if r.get(key) is None else f"{r[key]:.2f}"

    body = [
        ["legacy replay (before issue 19)", s("legacy_s"), "-"],
        ["full replay", s("full_s"), str(r["full_round_trips"])],
        [
            "incremental, no new block",
            s("incremental_no_new_block_s"),
            str(r["incremental_no_new_block_round_trips"]),
        ],
        [
            f"incremental after {r['new_ops']} new operations",
            s("incremental_after_new_ops_s"),
            str(r["incremental_after_new_ops_round_trips"]),
        ],
        [
            f"full replay after {r['new_ops']} new operations",
            s("full_after_new_ops_s"),
            str(r["full_after_new_ops_round_trips"]),
        ],
    ]
    head = (
        f"Reconciliation after a payroll of {r['ops']} through the API ({r['events']} events, "
        f"{r['blocks']} blocks; payroll {r['payroll_s']:.1f} s; index catch-up {r['index_catch_up_s']:.2f} s "
        f"before, not included)"
    )
    tail = (
        f"verdict {r['verdict']} ({r['discrepancies']} discrepancies); "
        f"incremental and full agree: {r['verdicts_agree']}"
    )
    return "\n".join([head, table(["run", "seconds", "node round trips"], body), tail])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=1_000, help="payroll recipients before measuring (1000)")
    parser.add_argument(
        "--database", help="PostgreSQL URL (a throwaway database is made there); SQLite if unset"
    )
    parser.add_argument("--legacy-tree", type=Path, help="a checkout whose reconciliation is the baseline")
    args = parser.parse_args(argv)
    os.environ.setdefault("XCPAY_KEYSTORE_COST", "test")
    results = run(args.ops, args.database, args.legacy_tree)
    print(render(results))
    out_rows = rows(results)
    print(json.dumps(out_rows, indent=2))
    OUT_FILE.parent.mkdir(exist_ok=True)
    OUT_FILE.write_text(
        json.dumps({"rows": out_rows, "figures": results, "environment": environment(node="anvil")}, indent=2)
    )
    return 0 if results["verdicts_agree"] and results["verdict"] == "clean" else 1


if __name__ == "__main__":
    sys.exit(main())
