"""The auditor's reconciliation: the chain against the operator's records.

Every event the contracts emitted since deployment is read again from the node (not from the
service's own index) and checked against what the operator recorded:

- every confirmed operation's transaction is on chain with the events stored for it, and what
  the operation asked for (who, how much) is what the events say happened;
- every transaction sent by a key the service holds (its operator and regulator keys, custodial
  wallets) has its operation, except an allowance a custodial wallet granted for an operation;
  transactions of others (self-custody wallets, keepers, the deployer) are counted, not blamed;
- the service's event index holds exactly these events with these arguments;
- each family's conservation invariant holds on chain, and the token's supply equals the sum of
  the balances rebuilt from every Transfer event, each equal to ``balanceOf``.

The report totals movements by family, by disbursement purpose and by merchant category, and
lists every discrepancy (none expected). ``render_html`` makes a self-contained HTML page of it.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from chain.clients.disburse import purpose_name
from chain.events import Event
from services.common.context import ServiceContext
from services.common.indexer import CHUNK
from services.common.models import ChainEvent, Operation, Wallet
from services.common.problems import jsonable

ZERO = "0x0000000000000000000000000000000000000000"


@dataclass
class Discrepancy:
    kind: str
    detail: str
    tx_hash: str | None = None
    operation_id: str | None = None


@dataclass
class Check:
    family: str
    name: str
    holds: bool
    detail: str


@dataclass
class Report:
    chain_id: int
    from_block: int
    to_block: int
    generated_at: str
    verdict: str = "clean"
    counts: dict[str, int] = field(default_factory=dict)
    invariants: list[Check] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    discrepancies: list[Discrepancy] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# What an operation asked for, as (event name, expected arguments) its transaction must contain.
Expected = Callable[[dict[str, Any], str], list[tuple[str, dict[str, Any]]]]
EXPECTED: dict[str, Expected] = {
    "cash.issue": lambda r, _: [("Transfer", {"from": ZERO, "to": r["to"], "value": r["amount_fen"]})],
    "cash.redeem": lambda r, _: [("Transfer", {"from": r["holder"], "to": ZERO, "value": r["amount_fen"]})],
    "cash.transfer": lambda r, _: [
        ("Transfer", {"from": r["sender"], "to": r["to"], "value": r["amount_fen"]})
    ],
    "code.pay": lambda r, _: (
        [("Spent", {"holder": r["payer"], "merchant": r["merchant"], "bill": r["amount_fen"]})]
        if r["form"] == "voucher"
        else []  # a card payment's settlement event says what happened; nothing to expect of it
        if r["form"] == "card"
        else [("Transfer", {"from": r["payer"], "to": r["merchant"], "value": r["amount_fen"]})]
    ),
    "disburse.create": lambda r, _: [("BatchCreated", {"payer": r["payer"], "total": r["total_fen"]})],
    "prepaid.prepay": lambda r, _: [
        (
            "PackagePrepaid",
            {"consumer": r["consumer"], "merchant": r["merchant"], "sessions": r["sessions"]},
        )
    ],
}


def _same(stored: Any, actual: Any) -> bool:
    return jsonable(stored) == jsonable(actual)


def _replay(ctx: ServiceContext, to_block: int) -> list[Event]:
    events: list[Event] = []
    addresses = ctx.tx.events.addresses()
    start = ctx.manifest.block
    while start <= to_block:
        end = min(start + CHUNK - 1, to_block)
        logs = ctx.w3.eth.get_logs({"fromBlock": start, "toBlock": end, "address": addresses})  # type: ignore[typeddict-item]
        events.extend(ctx.tx.events.decode_logs(logs))
        start = end + 1
    return events


def reconcile(ctx: ServiceContext) -> Report:
    """Reconcile up to the latest block. Let the event indexer catch up first (the routes and the
    command do), or events it has not reached yet count as missing from the index."""
    to_block = ctx.w3.eth.block_number
    report = Report(
        chain_id=ctx.manifest.chain_id,
        from_block=ctx.manifest.block,
        to_block=to_block,
        generated_at=datetime.now(UTC).isoformat(),
    )
    events = _replay(ctx, to_block)
    by_tx: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_tx[e.tx_hash].append(e)
    add = report.discrepancies.append

    with ctx.db.session() as s:
        ops = s.scalars(select(Operation).where(Operation.tx_hash.is_not(None))).all()
        custodial = set(s.scalars(select(Wallet.address).where(Wallet.custody == "custodial")))
        indexed = s.scalars(select(ChainEvent).where(ChainEvent.block_number <= to_block)).all()

    # 1. Every confirmed operation: its transaction, its stored events, what it asked for.
    ops_by_tx: dict[str, Operation] = {}
    checked = 0
    for op in ops:
        assert op.tx_hash is not None
        ops_by_tx[op.tx_hash.lower()] = op
        if op.status != "confirmed":
            continue
        checked += 1
        actual = by_tx.get(op.tx_hash.lower(), [])
        stored = (op.result or {}).get("events", [])
        receipt = ctx.tx.receipt(op.tx_hash)
        if receipt is None or receipt["status"] != 1:
            add(
                Discrepancy(
                    "operation-without-transaction",
                    f"{op.kind}: no successful transaction",
                    op.tx_hash,
                    op.id,
                )
            )
            continue
        ours = [e for e in stored if e.get("contract") in ctx.manifest.contracts]
        if [(e["name"], jsonable(e["args"])) for e in ours] != [(e.name, jsonable(e.args)) for e in actual]:
            add(
                Discrepancy(
                    "events-differ",
                    f"{op.kind}: the events stored for the operation are not the chain's",
                    op.tx_hash,
                    op.id,
                )
            )
        expect = EXPECTED.get(op.kind)
        if expect is not None:
            try:
                wanted = expect(op.request, op.kind)
            except KeyError as exc:
                add(Discrepancy("request-unreadable", f"{op.kind}: request lacks {exc}", op.tx_hash, op.id))
                continue
            for name, args in wanted:
                if not any(
                    e.name == name and all(_same(v, e.args.get(k)) for k, v in args.items()) for e in actual
                ):
                    add(
                        Discrepancy(
                            "request-differs",
                            f"{op.kind}: the chain has no {name} with {jsonable(args)}",
                            op.tx_hash,
                            op.id,
                        )
                    )

    # 2. Every transaction with events: its operation, or a known reason to have none.
    service_keys = {ctx.operator.address, ctx.regulator.address, ctx.manifest.roles.get("gateway")}
    kinds: Counter[str] = Counter()
    for tx_hash, tx_events in by_tx.items():
        if tx_hash in ops_by_tx:
            kinds["operation"] += 1
            continue
        sender = ctx.w3.eth.get_transaction(tx_hash)["from"]  # type: ignore[arg-type]
        if sender == ctx.manifest.deployer:
            kinds["deployment"] += 1
        elif sender in custodial and all(e.name == "Approval" for e in tx_events):
            kinds["allowance"] += 1
        elif sender in service_keys or sender in custodial:
            names = ", ".join(sorted({e.name for e in tx_events}))
            add(Discrepancy("transaction-without-operation", f"sent by {sender} ({names})", tx_hash))
        else:
            kinds["external"] += 1

    # 3. The service's event index: exactly the chain's events.
    chain_set = {(e.tx_hash, e.log_index): e for e in events}
    index_set = {(r.tx_hash, r.log_index): r for r in indexed}
    for k in sorted(chain_set.keys() - index_set.keys()):  # callers let the index catch up first
        e = chain_set[k]
        add(Discrepancy("index-missing-event", f"{e.contract}.{e.name} is not in the index", e.tx_hash))
    for k, row in index_set.items():
        e = chain_set.get(k)
        if e is None:
            add(
                Discrepancy(
                    "index-has-unknown-event", f"{row.contract}.{row.name} is not on chain", row.tx_hash
                )
            )
        elif row.name != e.name or row.args != jsonable(e.args):
            add(
                Discrepancy(
                    "index-differs", f"{row.contract}.{row.name} args differ from the chain's", row.tx_hash
                )
            )

    # 4. Invariants on chain and the token's supply rebuilt from every Transfer.
    report.invariants = _invariants(ctx, events)
    for c in report.invariants:
        if not c.holds:
            add(Discrepancy("invariant-broken", f"{c.family}: {c.name}: {c.detail}"))

    report.totals = _totals(ctx, events)
    report.counts = {
        "events": len(events),
        "transactions": len(by_tx),
        "operations_checked": checked,
        "indexed_events": len(index_set),
        **{f"{k}_transactions": v for k, v in sorted(kinds.items())},
    }
    report.verdict = "clean" if not report.discrepancies else "discrepancies"
    return report


HELD_TOTALS = [
    ("collective", "CollectiveFund", "totalBalance", "the fund holds the sum of the collectives' balances"),
    (
        "vouchers",
        "VoucherProgrammes",
        "totalHeld",
        "the contract holds every programme's outstanding + ungranted",
    ),
    ("hardwallet", "HardWalletSettlement", "totalReserve", "the contract holds exactly the cards' reserves"),
]


def _invariants(ctx: ServiceContext, events: list[Event]) -> list[Check]:
    checks: list[Check] = []
    cash = ctx.cash
    balances: dict[str, int] = defaultdict(int)
    for e in events:
        if e.contract == "DigitalCash" and e.name == "Transfer":
            balances[e.args["from"]] -= e.args["value"]
            balances[e.args["to"]] += e.args["value"]
    balances.pop(ZERO, None)
    supply = cash.total_supply()
    rebuilt = sum(balances.values())
    checks.append(
        Check("token", "supply equals the sum of balances", supply == rebuilt, f"{supply} vs {rebuilt}")
    )
    wrong = [a for a, v in balances.items() if cash.balance_of(a) != v]
    checks.append(
        Check(
            "token",
            "every balance equals its Transfer history",
            not wrong,
            f"{len(wrong)} differ: {wrong[:5]}",
        )
    )
    c = ctx.manifest.contracts
    if "PrepaidEscrow" in c:
        t = ctx.prepaid.totals()
        held = cash.balance_of(ctx.prepaid.escrow.address)
        ok = t["deposited"] == t["released"] + t["refunded"] + t["held"] and held == t["held"]
        checks.append(Check("prepaid", "deposited = released + refunded + held = escrow balance", ok, str(t)))
    if "Disbursement" in c:
        f = ctx.disburse.contract.functions
        funded, paid, reclaimed = f.totalFunded().call(), f.totalPaid().call(), f.totalReclaimed().call()
        held = cash.balance_of(ctx.disburse.contract.address)
        checks.append(
            Check(
                "disburse",
                "funded = paid + reclaimed + outstanding (the contract's balance)",
                funded - paid - reclaimed == held,
                f"funded {funded}, paid {paid}, reclaimed {reclaimed}, held {held}",
            )
        )
    # Contracts that hold cash for their family: the balance equals their own running total.
    for family, contract, total_fn, what in HELD_TOTALS:
        if contract in c:
            deployed = ctx.manifest.contract(ctx.w3, contract)
            total = deployed.functions[total_fn]().call()
            held = cash.balance_of(deployed.address)
            checks.append(Check(family, what, total == held, f"{total} vs {held}"))
    return checks


def _totals(ctx: ServiceContext, events: list[Event]) -> dict[str, Any]:
    by_family: dict[str, Counter[str]] = defaultdict(Counter)
    family_of = {name: f.name for f in _families() for name in f.contracts}
    purpose: Counter[str] = Counter()
    category: Counter[str] = Counter()
    categories: dict[str, int] = {}
    for e in events:
        by_family[family_of.get(e.contract, e.contract)][e.name] += 1
        if e.contract == "Disbursement" and e.name == "Paid":
            purpose[purpose_name(e.args["purpose"])] += e.args["amount"]
        if e.contract == "DigitalCash" and e.name == "Transfer" and e.args["to"] != ZERO:
            to = e.args["to"]
            if to not in categories:
                info = ctx.cash.wallet(to)
                categories[to] = info.category if info.kind == 2 else -1
            if categories[to] >= 0:
                category[str(categories[to])] += e.args["value"]
    return {
        "supply_fen": ctx.cash.total_supply(),
        "events_by_family": {k: dict(v) for k, v in sorted(by_family.items())},
        "disbursed_by_purpose_fen": dict(sorted(purpose.items())),
        "paid_to_merchants_by_category_fen": dict(sorted(category.items())),
    }


def _families() -> list[Any]:
    from chain.deploy import FAMILIES

    return FAMILIES


def render_html(report: Report) -> str:
    """A self-contained page: the verdict, the checks, the totals and every discrepancy."""
    e = html.escape
    ok = report.verdict == "clean"
    rows = "".join(
        f"<tr><td>{e(c.family)}</td><td>{e(c.name)}</td><td class={'ok' if c.holds else 'bad'}>"
        f"{'holds' if c.holds else 'BROKEN'}</td><td>{e(c.detail)}</td></tr>"
        for c in report.invariants
    )
    disc = (
        "".join(
            f"<tr><td>{e(d.kind)}</td><td>{e(d.detail)}</td><td><code>{e(d.tx_hash or '')}</code></td>"
            f"<td><code>{e(d.operation_id or '')}</code></td></tr>"
            for d in report.discrepancies
        )
        or "<tr><td colspan=4>none</td></tr>"
    )

    def table(title: str, data: dict[str, Any]) -> str:
        body = "".join(
            f"<tr><td>{e(str(k))}</td><td class=num>{e(str(v))}</td></tr>" for k, v in data.items()
        )
        return f"<h3>{e(title)}</h3><table>{body or '<tr><td>none</td></tr>'}</table>"

    verdict = "CLEAN: the chain and the records agree" if ok else f"{len(report.discrepancies)} DISCREPANCIES"
    totals = report.totals
    families = "".join(
        table(f"events: {fam}", counts) for fam, counts in totals.get("events_by_family", {}).items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>xcpay reconciliation</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222 }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px }}
.ok {{ color: #060 }} .bad {{ color: #b00; font-weight: bold }} .num {{ text-align: right }}
.verdict {{ font-size: 1.6em; padding: .4em .8em; display: inline-block;
  background: {"#e6f4e6" if ok else "#fbe3e3"}; border: 2px solid {"#060" if ok else "#b00"} }}
</style></head><body>
<h1>Reconciliation of chain {report.chain_id}</h1>
<p>Blocks {report.from_block} to {report.to_block}, generated {e(report.generated_at)}.</p>
<p class="verdict">{verdict}</p>
{table("counts", report.counts)}
<h2>Invariants</h2><table><tr><th>family</th><th>invariant</th><th></th><th>figures</th></tr>{rows}</table>
<h2>Totals</h2>
{table("supply (fen)", {"supply": totals.get("supply_fen", 0)})}
{table("disbursed by purpose (fen)", totals.get("disbursed_by_purpose_fen", {}))}
{table("paid to merchants by category (fen)", totals.get("paid_to_merchants_by_category_fen", {}))}
{families}
<h2>Discrepancies</h2>
<table><tr><th>kind</th><th>what</th><th>transaction</th><th>operation</th></tr>{disc}</table>
</body></html>
"""
