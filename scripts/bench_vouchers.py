"""Benchmark voucher programmes against one token transfer per voucher, in one run.

1. **Gas** (receipt ``gasUsed``, in-process chain), beside a ``DigitalCash`` transfer to a fresh
   registered wallet measured on the same chain: a grant per holder in batches of 1, 50 and 200
   (``MAX_BATCH``); a Merkle claim from a 100,000-grant campaign (a 17-sibling proof); a spend
   (the voucher pays 20 of a 120 bill, the holder's wallet the rest, in one transaction) and the
   same spend signed by the holder and submitted by someone else.
2. **Through the operator API** (its own process, SQLite) on anvil: a ``--holders``-grant campaign
   (default 100,000) sent as one ``POST /v1/voucher-programs/{id}/campaign`` request (rows
   validated, the tree built, every proof stored, the root committed in one transaction): vouchers
   granted per second. The baseline, in the same run on the same service: grants by list
   (``POST /grants``, batches of 200 per transaction) to ``--listed`` registered holders.

    .venv/bin/python scripts/bench_vouchers.py [--holders N] [--listed N]

Prints tables and writes ``bench-results/bench_vouchers.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from eth_account import Account  # noqa: E402
from web3 import Web3  # noqa: E402

from chain.accounts import dev_account  # noqa: E402
from chain.backends import http, in_process  # noqa: E402
from chain.clients.token import CashClient, Kind  # noqa: E402
from chain.clients.vouchers import MAX_BATCH, Grant, Mode, Terms, VoucherClient, merkle_tree, programme_name  # noqa: E402
from chain.deploy import deploy_all  # noqa: E402
from chain.manifest import Manifest  # noqa: E402
from chain.processes import anvil_node, free_port  # noqa: E402
from scripts.bench_disburse import register_many  # noqa: E402
from scripts.benchlib import environment, table  # noqa: E402
from scripts.stack import database, deploy, operator_service, service_env  # noqa: E402

OUT_FILE = ROOT / "bench-results" / "bench_vouchers.json"
OPERATOR, ISSUER, SENDER, KEEPER = dev_account(1), dev_account(8), dev_account(7), dev_account(3)
ADMIN_KEY = "xcp_bench_admin_" + uuid.uuid4().hex
DAY = 86_400


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _terms(w3: Web3, name: str, budget: int, cap: int, **rule: int) -> Terms:
    now = int(w3.eth.get_block("latest")["timestamp"])
    return Terms(programme_name(name), Mode.GRANT_LIST, now, now + 30 * DAY, budget, cap, **rule)


def gas_figures() -> dict[str, Any]:
    w3 = in_process()
    manifest = deploy_all(w3)
    cash = CashClient(w3, manifest)
    v = VoucherClient(w3, manifest, cash.tx)
    for account, kind in ((ISSUER, Kind.INSTITUTION), (SENDER, Kind.INSTITUTION)):
        cash.register(OPERATOR, account.address, kind, 1, 0, Web3.keccak(text=account.address))
        cash.mint(OPERATOR, account.address, 10**12)
    shop = Account.create().address
    cash.register(OPERATOR, shop, Kind.MERCHANT, 1, 5411, Web3.keccak(text="shop"))
    people = [Account.create() for _ in range(1 + 10 + 1 + 50 + MAX_BATCH + 2 + 10)]  # as used below
    register_many(cash, [p.address for p in people], "vouchers")
    pool = iter(people)
    cash.transfer(SENDER, next(pool).address, 1_00)  # warms the sender's daily slot
    baseline = [cash.transfer(SENDER, next(pool).address, 1_00).gas_used for _ in range(10)]
    out: dict[str, Any] = {"baseline_digitalcash_transfer": sum(baseline) / len(baseline), "grant_batch": []}
    pid, _ = v.create(
        ISSUER, _terms(w3, "bench", 10**10, 10**6, min_bill=100_00, discount_per_spend=20_00), [5411]
    )
    for n in (1, 50, MAX_BATCH):
        grants = [Grant(next(pool).address, 50_00) for _ in range(n)]
        out["grant_batch"].append({"holders": n, "per_holder": v.grant(ISSUER, pid, grants).gas_used / n})
    spender, signer = next(pool), next(pool)
    for holder in (spender, signer):
        v.grant(ISSUER, pid, [Grant(holder.address, 50_00)])
        cash.mint(OPERATOR, holder.address, 1_000_00)
        cash.tx.send_value(SENDER, holder.address, 10**17)  # gas money for its own approval
        v.approve_cash(holder, 1_000_00)
    v.spend(spender, pid, shop, 120_00)  # first spend warms the merchant's balance
    out["spend"] = v.spend(spender, pid, shop, 120_00).gas_used
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 3_600
    v.spend_with_signature(
        KEEPER, pid, signer.address, shop, 120_00, deadline, v.sign_spend(signer, pid, shop, 120_00, deadline)
    )
    second = v.sign_spend(signer, pid, shop, 120_00, deadline)
    out["spend_signed"] = v.spend_with_signature(
        KEEPER, pid, signer.address, shop, 120_00, deadline, second
    ).gas_used
    campaign, _ = v.create(ISSUER, _terms(w3, "campaign", 100_000 * 50_00, 50_00), [5411])
    claimers = [next(pool).address for _ in range(10)]
    leaves = [Grant(claimers[i] if i < len(claimers) else people[0].address, 50_00) for i in range(100_000)]
    tree = merkle_tree(campaign, leaves)
    out["campaign_root"] = v.set_grant_root(ISSUER, campaign, tree.root, len(leaves)).gas_used
    claims = [v.claim(KEEPER, campaign, i, leaves[i], tree.proof(i)).gas_used for i in range(len(claimers))]
    out["merkle_claim"] = sum(claims) / len(claims)
    return out


def api_figures(holders: int, listed: int, tmp: Path) -> dict[str, Any]:
    with anvil_node() as rpc:
        manifest_path = tmp / "manifest.json"
        deploy(rpc, manifest_path)
        cash = CashClient(http(rpc), Manifest.load(manifest_path))
        listed_people = [Account.create().address for _ in range(listed)]
        _log(f"  registering {listed} holders for the list baseline")
        register_many(cash, listed_people, "listed")
        with database(None, tmp) as db_url:
            env = service_env(rpc, manifest_path, db_url, free_port(), ADMIN_KEY)
            # One request carries the whole campaign (~75 bytes a row): above ~14,000 rows that is
            # more than the default JSON body limit (1 MiB), so the bench raises it, as an operator
            # sending such a campaign would (XCPAY_MAX_BODY_BYTES, README "Configuration").
            env["XCPAY_MAX_BODY_BYTES"] = str(max(1 << 20, holders * 100))
            with operator_service(env, tmp / "operator.log") as url:
                return _through_api(url, holders, listed_people)


def _through_api(url: str, holders: int, listed_people: list[str]) -> dict[str, Any]:
    admin = httpx.Client(base_url=url, headers={"X-API-Key": ADMIN_KEY}, timeout=1_800)
    key = admin.post("/v1/api-keys", json={"role": "operator"}).json()["key"]
    op = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=1_800)

    def post(path: str, body: Any) -> dict[str, Any]:
        r = op.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        if r.status_code >= 300:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:500]}")
        return r.json()

    wallet = {"kind": "institution", "tier": 1, "display_name": "office", "identity": "bench-office"}
    issuer = post("/v1/wallets", wallet)["request"]["address"]
    budget = (holders + len(listed_people)) * 50_00 * 2
    post("/v1/issuance", {"to": issuer, "amount_fen": budget})
    now = datetime.now(UTC)
    body = {
        "issuer": issuer,
        "mode": "grant-list",
        "per_person_cap_fen": 50_00,
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "expires_at": (now + timedelta(days=30)).isoformat(),
        "categories": [5411],
    }

    def programme(name: str, fen: int) -> int:
        created = post("/v1/voucher-programs", {**body, "name": name, "budget_fen": fen})
        return next(
            int(e["args"]["id"]) for e in created["result"]["events"] if e["name"] == "ProgrammeCreated"
        )

    listed_id = programme("listed", len(listed_people) * 50_00)
    rows = [{"recipient": p, "amount": 50_00} for p in listed_people]
    started = time.perf_counter()
    result = post(f"/v1/voucher-programs/{listed_id}/grants", {"unit": "fen", "rows": rows})
    list_s = time.perf_counter() - started
    if any(o["status"] != "confirmed" for o in result["operations"]):
        raise RuntimeError("a list batch did not confirm")
    campaign_id = programme("campaign", holders * 50_00)
    rows = [{"recipient": Account.create().address, "amount": 50_00} for _ in range(holders)]
    started = time.perf_counter()
    done = post(f"/v1/voucher-programs/{campaign_id}/campaign", {"unit": "fen", "rows": rows})
    campaign_s = time.perf_counter() - started
    if done["status"] != "confirmed":
        raise RuntimeError(f"the campaign did not confirm: {done}")
    leaf = op.get(f"/v1/voucher-programs/{campaign_id}/campaign/{holders - 1}").json()
    if leaf["holder"] != rows[-1]["recipient"]:
        raise RuntimeError("the last campaign leaf is not the last row")
    return {
        "campaign_holders": holders,
        "campaign_s": campaign_s,
        "campaign_per_s": holders / campaign_s,
        "listed_holders": len(listed_people),
        "listed_s": list_s,
        "listed_per_s": len(listed_people) / list_s,
        "listed_transactions": len(result["operations"]),
    }


def render(gas: dict[str, Any], api: dict[str, Any]) -> str:
    dc = gas["baseline_digitalcash_transfer"]
    rows = [["baseline: DigitalCash transfer", f"{dc:,.0f}", "1.00"]]
    for g in gas["grant_batch"]:
        rows.append(
            [
                f"grant, batch of {g['holders']} (per holder)",
                f"{g['per_holder']:,.0f}",
                f"{g['per_holder'] / dc:.2f}",
            ]
        )
    for label, key in (
        ("campaign root (100,000 grants, 1 tx)", "campaign_root"),
        ("Merkle claim (proof of 17)", "merkle_claim"),
        ("spend: 20 off a 120 bill, rest from the wallet", "spend"),
        ("spend signed by the holder, submitted by another", "spend_signed"),
    ):
        rows.append([label, f"{gas[key]:,.0f}", f"{gas[key] / dc:.2f}"])
    lines = ["== gas (in-process chain) ==", table(["", "gas", "x DigitalCash transfer"], rows)]
    lines.append("\n== granting through the operator API (anvil) ==")
    lines.append(
        table(
            ["", "holders", "seconds", "vouchers granted/s"],
            [
                [
                    "Merkle campaign, one request",
                    f"{api['campaign_holders']:,}",
                    f"{api['campaign_s']:.1f}",
                    f"{api['campaign_per_s']:,.0f}",
                ],
                [
                    f"baseline: list grants ({api['listed_transactions']} transactions)",
                    f"{api['listed_holders']:,}",
                    f"{api['listed_s']:.1f}",
                    f"{api['listed_per_s']:,.0f}",
                ],
            ],
        )
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--holders", type=int, default=100_000)
    parser.add_argument("--listed", type=int, default=1_000)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    _log("gas figures (in-process chain)")
    gas = gas_figures()
    _log(f"a {args.holders:,}-grant campaign through the API (anvil)")
    with tempfile.TemporaryDirectory(prefix="xcpay-bench-") as tmp:
        api = api_figures(args.holders, args.listed, Path(tmp))
    print(render(gas, api))
    OUT_FILE.parent.mkdir(exist_ok=True)
    doc = {
        "benchmark": "bench_vouchers",
        "measured_at": datetime.now(UTC).isoformat(),
        "environment": environment(whole_run_s=time.perf_counter() - started),
        "results": {"gas": gas, "api": api},
    }
    OUT_FILE.write_text(json.dumps(doc, indent=2))
    print(f"written: {OUT_FILE.relative_to(ROOT)} (whole run {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
