"""The auditor's reconciliation: the chain against the operator's records.

Every event the contracts emitted since deployment is checked against what the operator recorded.
A full run (``full=True``) reads them all from the node again; the default, incremental run reads
from the node only the blocks after its checkpoint and takes the earlier ones from the event index,
once the checkpoint proves that the node still has the chain it checked and that the index still
holds exactly the events it checked (services/operator/reconcile_state.py). Both give the same
verdict. The checks:

- every confirmed operation's transaction is on chain with the events stored for it, and what
  the operation asked for (who, how much) is what the events say happened;
- every transaction sent by a key the service holds (its operator and regulator keys, custodial
  wallets) has its operation (a family's allowance is an operation of its own, ``cash.approve``);
  transactions of others (self-custody wallets, keepers, the deployer) are counted, not blamed;
- the service's event index holds exactly these events with these arguments;
- each family's conservation invariant holds on chain, and the token's supply equals the sum of
  the balances rebuilt from every Transfer event, each equal to ``balanceOf`` (an incremental run
  reads those the new blocks moved, and those found wrong before). A family contract
  holding more than its own books say (someone sent it cash directly) is a *surplus*, listed with
  who sent it; it is not a broken invariant unless those direct transfers do not explain it. A
  contract holding less is a broken invariant;
- the money rules, from the chain's events and the operator's records: a transaction is counted
  by one payment (one operation, one code payment); a merchant's bill reference is paid once; no
  family paid on behalf of a holder who was frozen at that block, or to a payee frozen then; and
  where the scene needs a merchant (card settlements, prepaid releases, quick-pay pulls, voucher
  spends, payment codes) the payee is a merchant wallet. Each rule is one function over
  :class:`HolderPayment` records, which :func:`holder_payments` reads from the family events that
  name a holder (and from the token's ``PaidFor`` where the contracts emit it).

The report totals movements by family, by disbursement purpose and by merchant category, and
lists every surplus and every discrepancy (none expected). ``render_html`` makes a self-contained
HTML page of it.
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from web3 import Web3

from chain.batch import BatchReader
from chain.clients.token import Kind
from chain.events import Event
from chain.families import FAMILIES, Expected, backings, expected_events, family_of_contract, holdings
from services.common import humanize, i18n
from services.common.context import ServiceContext
from services.common.indexer import CHUNK
from services.common.indexer import CURSOR as INDEX_CURSOR
from services.common.models import ChainEvent, CodePayment, Cursor, Operation, PaymentCode, Wallet
from services.common.problems import jsonable
from services.operator import reconcile_state
from services.operator.reconcile_state import Checkpoint, Facts, event_line, new_digest

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
class Surplus:
    """Cash a family contract holds beyond its own books, and the direct transfers that sent it."""

    family: str
    contract: str
    address: str
    surplus_fen: int
    direct_transfers: list[dict[str, Any]] = field(default_factory=list)  # from, value_fen, tx_hash


@dataclass
class Report:
    chain_id: int
    from_block: int
    to_block: int
    generated_at: str
    verdict: str = "clean"
    counts: dict[str, int] = field(default_factory=dict)
    invariants: list[Check] = field(default_factory=list)
    surpluses: list[Surplus] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    discrepancies: list[Discrepancy] = field(default_factory=list)
    # "full": every block read from the node; "incremental": from the checkpoint at block
    # ``resumed_from`` on. ``notes`` says why a run did not resume (or stopped short of the head).
    mode: str = "full"
    resumed_from: int | None = None
    notes: list[str] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)  # seconds, node round trips, what was read

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """A report as :meth:`as_dict` stored it."""
        return cls(
            **{
                **data,
                "invariants": [Check(**c) for c in data.get("invariants", [])],
                "surpluses": [Surplus(**x) for x in data.get("surpluses", [])],
                "discrepancies": [Discrepancy(**d) for d in data.get("discrepancies", [])],
            }
        )


# The code whose rules make a report: a checkpoint made by other rules (an upgrade) is checked again.
_RULES_SOURCES = (
    Path(__file__),
    Path(reconcile_state.__file__),
    Path(__file__).resolve().parent.parent.parent / "chain" / "families.py",
)
_RULES = hashlib.sha256(b"".join(p.read_bytes() for p in _RULES_SOURCES)).hexdigest()


def _basis(ctx: ServiceContext, changes: tuple[int, int] | None) -> str | None:
    """What a report rests on besides the chain up to its block: the record changes counted when
    its run began, the rules (this code) and the deployment and keys it checked against."""
    if changes is None:
        return None
    keys = [ctx.operator.address, ctx.regulator.address, ctx.manifest.roles.get("gateway")]
    if ctx.second_regulator is not None:
        keys.append(ctx.second_regulator.address)
    m = ctx.manifest
    setting = json.dumps(
        [_RULES, m.chain_id, m.block, m.deployer, m.contracts, keys], sort_keys=True, default=str
    )
    return f"{changes[0]}:{hashlib.sha256(setting.encode()).hexdigest()[:32]}"


# What an operation asked for, as (event name, expected arguments) its transaction must contain:
# each family's (chain/families.py), and the payment codes' (a family with no contract of its own).
EXPECTED: dict[str, Expected] = {
    **expected_events(),
    "code.pay": lambda r, _: (
        [("Spent", {"holder": r["payer"], "merchant": r["merchant"], "bill": r["amount_fen"]})]
        if r["form"] == "voucher"
        else []  # a card payment's settlement event says what happened; nothing to expect of it
        if r["form"] == "card"
        else [("Transfer", {"from": r["payer"], "to": r["merchant"], "value": r["amount_fen"]})]
    ),
}


def _same(stored: Any, actual: Any) -> bool:
    return jsonable(stored) == jsonable(actual)


def _chain_events(ctx: ServiceContext, reader: BatchReader, start: int, end: int) -> list[Event]:
    """The contracts' events of blocks ``start``..``end`` from the node, their arguments in JSON
    form (as the index keeps them), so that events from the node and from the index are alike."""
    if start > end:
        return []
    logs = reader.logs(ctx.tx.events.addresses(), start, end, CHUNK)
    return [replace(e, args=jsonable(e.args)) for e in ctx.tx.events.decode_logs(logs)]


@dataclass
class _Index:
    """The event index up to the reconciled block: the rows below the checkpoint as events (when
    they still reproduce its digest), and the rows after it, to compare with the node's."""

    before: list[Event]
    after: dict[tuple[str, int], ChainEvent]
    digest: Any
    matches: bool


def _read_index(ctx: ServiceContext, checkpoint: int | None, to_block: int, digest_of: str | None) -> _Index:
    address = {name: ctx.manifest.address(name) for name in ctx.manifest.contracts}
    digest = new_digest()
    before: list[Event] = []
    after: dict[tuple[str, int], ChainEvent] = {}
    cols = (
        ChainEvent.block_number,
        ChainEvent.log_index,
        ChainEvent.tx_hash,
        ChainEvent.contract,
        ChainEvent.name,
        ChainEvent.args,
    )
    with ctx.db.session() as s:
        if checkpoint is not None:
            rows = s.execute(
                select(*cols)
                .where(ChainEvent.block_number <= checkpoint)
                .order_by(ChainEvent.block_number, ChainEvent.log_index)
            )
            for block, log_index, tx_hash, contract, name, args in rows:
                digest.update(event_line(block, log_index, tx_hash, contract, name, args))
                before.append(
                    Event(contract, name, args, address.get(contract, ""), block, log_index, tx_hash)
                )
        low = -1 if checkpoint is None else checkpoint
        for row in s.scalars(
            select(ChainEvent).where(ChainEvent.block_number > low, ChainEvent.block_number <= to_block)
        ):
            after[(row.tx_hash, row.log_index)] = row
    return _Index(before, after, digest, digest_of is None or digest.hexdigest() == digest_of)


_one_at_a_time = threading.Lock()


def reconcile(ctx: ServiceContext, *, full: bool = False) -> Report:
    """See :func:`_reconcile`; one run at a time in a process (a request waits for the background
    refresh and then resumes from its checkpoint, rather than doing the same work beside it)."""
    with _one_at_a_time:
        return _reconcile(ctx, full=full)


def _reconcile(ctx: ServiceContext, *, full: bool = False) -> Report:
    """Reconcile up to the latest block the event index has reached (let it catch up first: the
    routes, the command and the background refresh do).

    Incremental unless ``full``: the blocks up to the stored checkpoint come from the event index,
    once the checkpoint's block hash and event digest prove it still holds (else it starts over
    from deployment and says why in ``notes``); only the blocks after it are read from the node,
    and only the balances they moved. ``full`` reads everything from the node again, as an auditor
    would, and gives the same verdict. Either way the run ends by storing its checkpoint."""
    began = time.monotonic()
    # Counted before any record is read: a write that commits after this counts for the next run.
    changes = reconcile_state.record_changes(ctx.db)
    basis = _basis(ctx, changes)
    reader = BatchReader(ctx.w3)
    (latest,) = reader.request([("eth_blockNumber", [])])
    latest = int(latest, 16) if isinstance(latest, str) else int(latest)
    with ctx.db.session() as s:
        indexed_to = s.scalar(select(Cursor.position).where(Cursor.name == INDEX_CURSOR))
    to_block = latest if indexed_to is None else min(latest, indexed_to)
    notes: list[str] = []
    if to_block < latest:
        notes.append(f"the event index has reached block {to_block} of {latest}: reconciled up to it")
    cp = None if full else reconcile_state.load(ctx.db)
    if cp is not None and cp.block_number > to_block:
        notes.append(
            f"the checkpoint at block {cp.block_number} is beyond the chain or the index (block "
            f"{to_block}): replayed from deployment"
        )
        cp = None
    hashes = reader.block_hashes([to_block] if cp is None else [to_block, cp.block_number])
    if cp is not None and hashes[1] != cp.block_hash:
        notes.append(
            f"the checkpoint at block {cp.block_number} is no longer on the node's chain (a "
            "reorganisation or a reset node): replayed from deployment"
        )
        cp = None
    if (
        cp is not None
        and basis is not None
        and cp.basis == basis
        and cp.block_number == to_block
        and hashes[0] == cp.block_hash
    ):
        # No new block, the same block hash (no reorganisation) and not one write to any record
        # the run reads since the checkpoint's run began: that run's checks would find the same.
        return _unchanged(ctx, cp, notes, began, reader.round_trips + 1)
    index = _read_index(
        ctx, None if cp is None else cp.block_number, to_block, None if cp is None else cp.events_digest
    )
    if cp is not None and not index.matches:
        notes.append(
            f"the event index up to block {cp.block_number} changed since it was checked: "
            "replayed from deployment"
        )
        cp = None
        index = _read_index(ctx, None, to_block, None)
    start = ctx.manifest.block if cp is None else cp.block_number + 1
    fresh = _chain_events(ctx, reader, start, to_block)
    events = index.before + fresh
    digest = index.digest
    for e in fresh:
        digest.update(event_line(e.block_number, e.log_index, e.tx_hash, e.contract, e.name, e.args))
    facts = Facts() if cp is None else cp.facts
    report = Report(
        chain_id=ctx.manifest.chain_id,
        from_block=ctx.manifest.block,
        to_block=to_block,
        generated_at=datetime.now(UTC).isoformat(),
        mode="full" if cp is None else "incremental",
        resumed_from=None if cp is None else cp.block_number,
        notes=notes,
    )
    touched = None if cp is None else _moved(fresh)
    _check(ctx, reader, report, events, fresh, index.after, facts, touched, to_block)
    report.cost = {
        "seconds": round(time.monotonic() - began, 3),
        "node_round_trips": reader.round_trips + 1,  # and the block number
        "blocks_read_from_node": max(0, to_block - start + 1),
        "events_read_from_node": len(fresh),
        "events_read_from_index": len(index.before),
    }
    if hashes[0] is not None:
        reconcile_state.save(
            ctx.db,
            Checkpoint(
                block_number=to_block,
                block_hash=hashes[0],
                events_digest=digest.hexdigest(),
                event_count=len(events),
                facts=facts,
                verdict=report.verdict,
                mode=report.mode,
                report=report.as_dict(),
                checked_at=reconcile_state.now(),
                basis=basis,
            ),
        )
    if changes is not None:
        reconcile_state.fold_record_changes(ctx.db, changes[1])
    return report


def _unchanged(ctx: ServiceContext, cp: Checkpoint, notes: list[str], began: float, trips: int) -> Report:
    """The report of an incremental run that found nothing new since checkpoint ``cp``: its
    verdict, as of now, and what this run cost."""
    report = replace(
        Report.from_dict(cp.report),
        generated_at=datetime.now(UTC).isoformat(),
        mode="incremental",
        resumed_from=cp.block_number,
        notes=notes,
    )
    report.cost = {
        "seconds": round(time.monotonic() - began, 3),
        "node_round_trips": trips,
        "blocks_read_from_node": 0,
        "events_read_from_node": 0,
        "events_read_from_index": 0,
        "unchanged_since_checkpoint": True,
    }
    reconcile_state.restamp(ctx.db, cp, report.as_dict(), reconcile_state.now())
    return report


def _moved(events: list[Event]) -> set[str]:
    """The addresses whose token balance the events moved."""
    return {
        a
        for e in events
        if e.contract == "DigitalCash" and e.name == "Transfer"
        for a in (e.args["from"], e.args["to"])
    }


def _check(
    ctx: ServiceContext,
    reader: BatchReader,
    report: Report,
    events: list[Event],
    fresh: list[Event],
    indexed_after: dict[tuple[str, int], ChainEvent],
    facts: Facts,
    touched: set[str] | None,
    to_block: int,
) -> None:
    """Every check of the report over ``events`` (all of them up to ``to_block``, ``fresh`` the
    ones read from the node this time), reading the chain's state at ``to_block``."""
    by_tx: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_tx[e.tx_hash].append(e)
    add = report.discrepancies.append

    with ctx.db.session() as s:
        ops = s.scalars(select(Operation).where(Operation.tx_hash.is_not(None))).all()
        custodial = set(s.scalars(select(Wallet.address).where(Wallet.custody == "custodial")))
        codes = {c.id: c for c in s.scalars(select(PaymentCode))}
        code_payments = s.scalars(select(CodePayment).order_by(CodePayment.id)).all()

    # 1. Every confirmed operation: its transaction, its stored events, what it asked for. A
    # transaction with events succeeded (a reverted one leaves no logs); the others' receipts are
    # asked for, once while the checkpoint stands.
    ops_by_tx: dict[str, Operation] = {}
    confirmed = []
    for op in ops:
        assert op.tx_hash is not None
        ops_by_tx[op.tx_hash.lower()] = op
        if op.status == "confirmed" and (op.block_number is None or op.block_number <= to_block):
            confirmed.append(op)
    known_ok = set(facts.receipts)
    ask = sorted({h for op in confirmed if (h := op.tx_hash.lower()) not in by_tx and h not in known_ok})  # type: ignore[union-attr]
    status = dict(zip(ask, reader.receipt_status(ask), strict=True))
    facts.receipts = sorted(known_ok | {h for h, st in status.items() if st == 1})
    succeeded = set(by_tx) | set(facts.receipts)
    for op in confirmed:
        tx_hash = op.tx_hash.lower()  # type: ignore[union-attr]
        actual = by_tx.get(tx_hash, [])
        stored = (op.result or {}).get("events", [])
        if tx_hash not in succeeded:
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
        if [(e["name"], jsonable(e["args"])) for e in ours] != [(e.name, e.args) for e in actual]:
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
    if ctx.second_regulator is not None:  # the second regulator key (court orders' checker)
        service_keys.add(ctx.second_regulator.address)
    # The operator institutions' keys (two tiers): their transactions are operations too.
    service_keys |= set(_institution_keys(ctx))
    kinds: Counter[str] = Counter()
    unknown = sorted(h for h in by_tx if h not in ops_by_tx and h not in facts.senders)
    for h, sender in zip(unknown, reader.senders(unknown), strict=True):
        if sender is not None:
            facts.senders[h] = sender
    for tx_hash, tx_events in by_tx.items():
        if tx_hash in ops_by_tx:
            kinds["operation"] += 1
            continue
        sender = facts.senders.get(tx_hash)
        if sender == ctx.manifest.deployer:
            kinds["deployment"] += 1
        elif sender in service_keys or sender in custodial:
            names = ", ".join(sorted({e.name for e in tx_events}))
            add(Discrepancy("transaction-without-operation", f"sent by {sender} ({names})", tx_hash))
        else:
            kinds["external"] += 1

    # 3. The service's event index: exactly the chain's events (below the checkpoint its digest
    # proved it; after it, row by row).
    chain_set = {(e.tx_hash, e.log_index): e for e in fresh}
    for k in sorted(chain_set.keys() - indexed_after.keys()):  # callers let the index catch up first
        e = chain_set[k]
        add(Discrepancy("index-missing-event", f"{e.contract}.{e.name} is not in the index", e.tx_hash))
    for k, row in indexed_after.items():
        found = chain_set.get(k)
        if found is None:
            add(
                Discrepancy(
                    "index-has-unknown-event", f"{row.contract}.{row.name} is not on chain", row.tx_hash
                )
            )
        elif row.name != found.name or row.args != found.args:
            add(
                Discrepancy(
                    "index-differs", f"{row.contract}.{row.name} args differ from the chain's", row.tx_hash
                )
            )

    # 4. Invariants on chain and the token's supply rebuilt from every Transfer; surpluses.
    state = _ChainState.read(ctx, reader, events, facts, touched, to_block)
    report.invariants, report.surpluses, unexplained = _invariants(ctx, events, state)
    for c in report.invariants:
        if not c.holds:
            add(Discrepancy("invariant-broken", f"{c.family}: {c.name}: {c.detail}"))
    report.discrepancies.extend(unexplained)

    # 5. The money rules: one payment per transaction and per bill; no payment for a frozen
    # owner or to a frozen payee; a merchant where the scene needs one.
    paid = holder_payments(events) + code_payment_records(codes, code_payments, by_tx, events)
    wallet_kind = wallet_kinds(events)
    for found_rules in (
        check_transaction_counted_once(ops, code_payments),
        check_reference_paid_once(codes, code_payments),
        check_frozen_parties(paid, events),
        check_merchant_payees(paid, wallet_kind),
        check_purse_parts_not_refunded_as_cash(events, ctx.manifest.chain_id, code_payments),
    ):
        report.discrepancies.extend(found_rules)

    report.totals = _totals(events, state.supply)
    report.counts = {
        "events": len(events),
        "transactions": len(by_tx),
        "operations_checked": len(confirmed),
        "indexed_events": len(events) - len(fresh) + len(indexed_after),
        **{f"{k}_transactions": v for k, v in sorted(kinds.items())},
    }
    report.verdict = "clean" if not report.discrepancies else "discrepancies"


@dataclass
class _ChainState:
    """What the reconciliation reads of the chain's state, all at one block, in a few batches:
    the supply, the balances rebuilt from the Transfer events (all of them on a full run, those the
    new blocks moved or found wrong before on an incremental one), each family contract's cash and
    its own running totals."""

    supply: int
    rebuilt: dict[str, int]
    wrong: list[str]
    views: dict[str, int]
    holdings: dict[str, int]

    @classmethod
    def read(
        cls,
        ctx: ServiceContext,
        reader: BatchReader,
        events: list[Event],
        facts: Facts,
        touched: set[str] | None,
        block: int,
    ) -> _ChainState:
        rebuilt: dict[str, int] = defaultdict(int)
        for e in events:
            if e.contract == "DigitalCash" and e.name == "Transfer":
                rebuilt[e.args["from"]] -= e.args["value"]
                rebuilt[e.args["to"]] += e.args["value"]
        rebuilt.pop(ZERO, None)
        check = list(rebuilt) if touched is None else sorted((touched | set(facts.wrong)) & rebuilt.keys())
        # Every view is a no-argument uint256 getter or balanceOf(address): encoded here, not
        # through web3's contract objects (2 ms a call, most of the time of 10k balances).
        views: list[tuple[str, str, str]] = [("supply", "DigitalCash", "totalSupply")]
        c = ctx.manifest.contracts
        # Each holding's views (chain/families.py), named "<contract>.<getter>".
        views += [
            (f"{h.contract}.{fn}", h.contract, fn)
            for _, h in holdings()
            if h.contract in c
            for _, fn in h.views
        ]
        # What backs the supply (the two tiers' reserves): "<contract>.<getter>" as well.
        views += [
            (f"{b.contract}.{fn}", b.contract, fn)
            for _, b in backings()
            if b.contract in c
            for _, fn in b.views
        ]
        holders = [ctx.manifest.address(name) for name in c]
        token = ctx.manifest.address("DigitalCash")
        balance_of = _selector("balanceOf(address)")
        calls = [(ctx.manifest.address(contract), _selector(f"{fn}()")) for _, contract, fn in views] + [
            (token, balance_of + bytes(12) + bytes.fromhex(a[2:])) for a in [*check, *holders]
        ]
        answers = reader.calls(calls, block)
        values = [int.from_bytes(a[:32], "big") for a in answers]
        read = dict(zip([name for name, _, _ in views], values, strict=False))
        balances = dict(zip([*check, *holders], values[len(views) :], strict=True))
        wrong = [a for a in check if balances[a] != rebuilt[a]]
        facts.wrong = wrong
        return cls(read.pop("supply"), rebuilt, wrong, read, balances)


def _institution_keys(ctx: ServiceContext) -> list[str]:
    """The signing keys of the operator institutions in the book (none before it is deployed)."""
    if "OperatorInstitutions" not in ctx.manifest.contracts:
        return []
    return [i.signer for i in ctx.institutions.institutions()]


def _selector(signature: str) -> bytes:
    return bytes(Web3.keccak(text=signature)[:4])


def _invariants(
    ctx: ServiceContext, events: list[Event], state: _ChainState
) -> tuple[list[Check], list[Surplus], list[Discrepancy]]:
    checks: list[Check] = []
    surpluses: list[Surplus] = []
    unexplained: list[Discrepancy] = []
    supply, rebuilt = state.supply, sum(state.rebuilt.values())
    checks.append(
        Check("token", "supply equals the sum of balances", supply == rebuilt, f"{supply} vs {rebuilt}")
    )
    wrong = state.wrong
    checks.append(
        Check(
            "token",
            "every balance equals its Transfer history",
            not wrong,
            f"{len(wrong)} differ: {wrong[:5]}",
        )
    )

    def held(family: str, contract: str, accounted: int, what: str, books: str = "") -> None:
        address = ctx.manifest.address(contract)
        check, surplus, problem = holding(
            family, contract, address, accounted, state.holdings[address], what, events
        )
        if books:
            check.detail = f"{books}; {check.detail}"
        checks.append(check)
        if surplus is not None:
            surpluses.append(surplus)
        if problem is not None:
            unexplained.append(problem)

    # Contracts that hold cash for their family: the balance equals their own books (and any
    # identity of their running totals holds), as each family's descriptor states.
    c = ctx.manifest.contracts
    for family, h in holdings():
        if h.contract not in c:
            continue
        v = {key: state.views[f"{h.contract}.{fn}"] for key, fn in h.views}
        if h.identity is not None:
            name, holds = h.identity
            checks.append(Check(family.name, name, holds(v), str(v)))
        held(family.name, h.contract, h.books(v), h.what, h.figures(v) if h.figures else "")
    # The supply against what backs it: the operator institutions' books and reserves.
    for family, b in backings():
        if b.contract not in c:
            continue
        backing = {key: state.views[f"{b.contract}.{fn}"] for key, fn in b.views}
        for what, rule in b.checks:
            checks.append(Check(family.name, what, rule(backing, supply), f"supply {supply}, {backing}"))
    return checks, surpluses, unexplained


def holding(
    family: str, contract: str, address: str, accounted: int, balance: int, what: str, events: list[Event]
) -> tuple[Check, Surplus | None, Discrepancy | None]:
    """A family contract's cash against its own books. Less than the books is a broken invariant
    (money is missing). More is a surplus: cash someone sent the contract directly (a plain token
    transfer, in a transaction where the contract itself did nothing), listed with its senders;
    money nobody can lose, so not a broken invariant, unless such transfers do not explain it all
    (then the books themselves are wrong, and that is a discrepancy)."""
    detail = f"books {accounted}, balance {balance}"
    if balance <= accounted:
        return Check(family, what, balance == accounted, detail), None, None
    direct = direct_transfers(events, contract, address)
    explained = sum(t["value_fen"] for t in direct)
    surplus = Surplus(family, contract, address, balance - accounted, direct)
    check = Check(family, what, True, f"{detail}: a surplus of {balance - accounted} sent directly")
    if explained >= balance - accounted:
        return check, surplus, None
    problem = Discrepancy(
        "surplus-unexplained",
        f"{family}: {contract} holds {balance - accounted} fen beyond its books, "
        f"direct transfers explain {explained}",
    )
    return check, surplus, problem


def direct_transfers(events: list[Event], contract: str, address: str) -> list[dict[str, Any]]:
    """Token transfers to ``address`` in transactions in which ``contract`` emitted nothing: cash
    sent to it directly rather than through one of its functions."""
    acted = {e.tx_hash for e in events if e.contract == contract}
    return [
        {"from": e.args["from"], "value_fen": e.args["value"], "tx_hash": e.tx_hash}
        for e in events
        if e.contract == "DigitalCash"
        and e.name == "Transfer"
        and e.args["to"] == address
        and e.tx_hash not in acted
    ]


# -- the money rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class HolderPayment:
    """Money paid on a holder's behalf, as the chain (or a code payment) records it.

    ``owner`` is the holder whose money it is, ``payee`` who received it, ``position`` the index
    of the recording event among all replayed events (chain order), ``merchant_only`` whether the
    scene requires the payee to be a merchant wallet."""

    source: str
    owner: str
    payee: str
    amount: int
    tx_hash: str
    position: int
    merchant_only: bool


def holder_payments(events: list[Event]) -> list[HolderPayment]:
    """Every payment a family contract made on a holder's behalf, from the events that name the
    holder (directly, or through the card, package or mandate registered earlier): card
    settlements (and the covered part of a shortfall), prepaid releases (consume and claim),
    quick-pay pulls, voucher spends; and the token's ``PaidFor(family, owner, to, amount)`` where
    the contracts emit it (the same payment seen twice is kept once; money going back to its own
    owner, a refund, is no payment)."""
    card_holder: dict[str, str] = {}
    package: dict[int, tuple[str, str]] = {}
    mandate: dict[int, str] = {}
    found: dict[tuple[str, str, str, int], HolderPayment] = {}

    def paid(e: Event, i: int, owner: str, payee: str, amount: int, merchant_only: bool) -> None:
        key = (e.tx_hash, owner, payee, amount)
        earlier = found.get(key)
        if earlier is None or (merchant_only and not earlier.merchant_only):
            source = earlier.source if earlier else f"{e.contract}.{e.name}"
            found[key] = HolderPayment(source, owner, payee, amount, e.tx_hash, i, merchant_only)

    for i, e in enumerate(events):
        a = e.args
        match (e.contract, e.name):
            case ("HardWalletSettlement", "CardRegistered"):
                card_holder[a["card"]] = a["holder"]
            # A recovery's moves: the card, package or mandate is its successor's from here on.
            case ("HardWalletSettlement", "CardRecovered"):
                card_holder[a["card"]] = a["successor"]
            case ("PrepaidEscrow", "PackageRecovered") if a["id"] in package:
                package[a["id"]] = (a["successor"], package[a["id"]][1])
            case ("QuickPay", "MandateRecovered"):
                mandate[a["id"]] = a["successor"]
            case ("HardWalletSettlement", "PaymentSettled"):
                paid(e, i, card_holder.get(a["card"], a["card"]), a["merchant"], a["amount"], True)
            case ("HardWalletSettlement", "PaymentShortfall") if a["covered"] > 0:
                paid(e, i, card_holder.get(a["card"], a["card"]), a["merchant"], a["covered"], True)
            case ("PrepaidEscrow", "PackagePrepaid"):
                package[a["id"]] = (a["consumer"], a["merchant"])
            case ("PrepaidEscrow", "SessionsConsumed") if a["id"] in package:
                consumer, merchant = package[a["id"]]
                paid(e, i, consumer, merchant, a["amount"], True)
            case ("QuickPay", "MandateGranted"):
                mandate[a["id"]] = a["holder"]
            case ("QuickPay", "MandatePulled") if a["id"] in mandate:
                paid(e, i, mandate[a["id"]], a["merchant"], a["amount"], True)
            case ("VoucherProgrammes", "Spent"):
                paid(e, i, a["holder"], a["merchant"], a["bill"], True)
            case ("DigitalCash", "PaidFor") if a["owner"] != a["to"]:  # not a refund to its owner
                paid(e, i, a["owner"], a["to"], a["amount"], False)
    return list(found.values())


def code_payment_records(
    codes: dict[str, PaymentCode],
    payments: Sequence[CodePayment],
    by_tx: dict[str, list[Event]],
    events: list[Event],
) -> list[HolderPayment]:
    """Confirmed payments of payment codes: the payer paid the code's merchant (a merchant scene)."""
    position = {id(e): i for i, e in enumerate(events)}
    out: list[HolderPayment] = []
    for p in payments:
        code = codes.get(p.code_id)
        tx_events = by_tx.get((p.tx_hash or "").lower())
        if code is None or p.status != "confirmed" or p.tx_hash is None or not tx_events:
            continue
        out.append(
            HolderPayment(
                "payment code",
                p.payer,
                code.merchant,
                p.amount_fen,
                p.tx_hash,
                position[id(tx_events[0])],
                True,
            )
        )
    return out


def wallet_kinds(events: list[Event]) -> dict[str, int]:
    """Each registered wallet's kind, from the registry's events."""
    return {
        e.args["wallet"]: int(e.args["kind"])
        for e in events
        if e.contract == "WalletRegistry" and e.name == "WalletRegistered"
    }


def check_transaction_counted_once(
    ops: Sequence[Operation], code_payments: Sequence[CodePayment]
) -> list[Discrepancy]:
    """One transaction is counted by one payment: no two live operations (pending or confirmed)
    and no two code payments carry the same transaction hash."""
    out: list[Discrepancy] = []
    by_hash: dict[str, list[str]] = defaultdict(list)
    for op in ops:
        if op.tx_hash and op.status != "failed":
            by_hash[op.tx_hash.lower()].append(op.id)
    for tx_hash, ids in by_hash.items():
        if len(ids) > 1:
            out.append(
                Discrepancy(
                    "transaction-counted-twice",
                    f"{len(ids)} operations count one transaction: {', '.join(sorted(ids))}",
                    tx_hash,
                    sorted(ids)[0],
                )
            )
    by_code: dict[str, list[CodePayment]] = defaultdict(list)
    for p in code_payments:
        if p.tx_hash and p.status != "failed":
            by_code[p.tx_hash.lower()].append(p)
    for tx_hash, rows in by_code.items():
        if len(rows) > 1:
            out.append(
                Discrepancy(
                    "transaction-counted-twice",
                    f"{len(rows)} code payments count one transaction: codes "
                    f"{', '.join(p.code_id for p in rows)}",
                    tx_hash,
                    rows[0].operation_id,
                )
            )
    return out


def check_reference_paid_once(
    codes: dict[str, PaymentCode], code_payments: Sequence[CodePayment]
) -> list[Discrepancy]:
    """A merchant's bill reference is paid once: at most one code with it has a confirmed payment
    (or a card shortfall, which paid part of it)."""
    paid_codes: dict[tuple[str, str], set[str]] = defaultdict(set)
    tx: dict[str, str | None] = {}
    for p in code_payments:
        code = codes.get(p.code_id)
        if code is not None and code.reference is not None and p.status in ("confirmed", "shortfall"):
            paid_codes[(code.merchant, code.reference)].add(code.id)
            tx.setdefault(code.id, p.tx_hash)
    return [
        Discrepancy(
            "reference-paid-twice",
            f"merchant {merchant}'s bill {reference!r} is paid by {len(ids)} codes: {', '.join(sorted(ids))}",
            tx[sorted(ids)[-1]],
        )
        for (merchant, reference), ids in paid_codes.items()
        if len(ids) > 1
    ]


def _b32(value: Any) -> bytes:
    return bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)


def check_purse_parts_not_refunded_as_cash(
    events: list[Event], chain_id: int, code_payments: Sequence[CodePayment]
) -> list[Discrepancy]:
    """What a card's earmarked purses paid of a bill never returns as the holder's cash: a card
    payment (or a code paid by a card) recorded for refunds (``PaymentRecorded``) whose purses of
    one funder paid must carry that part as its voucher part with the funder as payee; of several
    funders, only its cash part may be recorded as refundable (README, refunds)."""
    from chain.clients.refunds import payment_id

    funder = {
        int(e.args["programme"]): e.args["funder"]
        for e in events
        if e.contract == "HardWalletSettlement" and e.name == "PurseProgrammeCreated"
    }
    spent: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    spent_in: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    bill: dict[tuple[str, int], int] = {}  # what a card payment paid its merchant
    bill_in: dict[tuple[str, str], int] = {}  # the same, by transaction and card
    for e in events:
        if e.contract == "HardWalletSettlement" and e.name in ("PaymentSettled", "PaymentShortfall"):
            paid = e.args["amount"] if e.name == "PaymentSettled" else e.args["covered"]
            bill[(e.args["card"].lower(), int(e.args["counter"]))] = int(paid)
            bill_in[(e.tx_hash.lower(), e.args["card"].lower())] = int(paid)
        if e.contract == "HardWalletSettlement" and e.name == "PurseSpent":
            f = funder.get(int(e.args["programme"]), "?")
            spent[(e.args["card"].lower(), int(e.args["counter"]))][f] += int(e.args["amount"])
            spent_in[(e.tx_hash.lower(), e.args["card"].lower())][f] += int(e.args["amount"])
    if not spent:
        return []
    # The refund id of each purse-paid payment (the gateway binds a card's to its checksummed
    # address and counter, the operator a code's to its row and transaction).
    by_id: dict[bytes, tuple[str, dict[str, int], int | None]] = {}
    for (card, counter), parts in spent.items():
        ref = f"{Web3.to_checksum_address(card)}:{counter}"
        by_id[payment_id("card", chain_id, ref)] = (f"card {ref}", parts, bill.get((card, counter)))
    for p in code_payments:
        if p.form != "card" or p.status not in ("confirmed", "shortfall") or p.tx_hash is None:
            continue  # a shortfall's covered part is refundable too (README, payment codes)
        in_tx = spent_in.get((p.tx_hash.lower(), p.payer.lower()))
        if in_tx:
            key = payment_id("code", chain_id, f"{p.id}:{p.tx_hash}")
            paid_fen = bill_in.get((p.tx_hash.lower(), p.payer.lower()), p.amount_fen)
            by_id[key] = (f"code payment {p.id}", in_tx, paid_fen)
    out: list[Discrepancy] = []
    for e in events:
        if e.contract != "MerchantRefunds" or e.name != "PaymentRecorded":
            continue
        found = by_id.get(_b32(e.args["paymentId"]))
        if found is None:
            continue
        what, parts, total = found
        earmarked, voucher = sum(parts.values()), int(e.args["voucherPart"])
        if len(parts) == 1:
            (f,) = parts
            sound = voucher == earmarked and str(e.args["voucherPayee"]).lower() == f.lower()
        else:  # only the cash part is refundable
            sound = voucher == 0 and (total is None or int(e.args["paid"]) + earmarked <= total)
        if not sound:
            out.append(
                Discrepancy(
                    "purse-refundable-as-cash",
                    f"{what}: its purses paid {earmarked} fen (funders {sorted(parts)}), but it was "
                    f"recorded for refunds with voucher part {voucher} to {e.args['voucherPayee']}",
                    e.tx_hash,
                )
            )
    return out


def freeze_changes(events: list[Event]) -> dict[str, list[tuple[int, bool, int]]]:
    """Each wallet's freezes and unfreezes: (position among the events, frozen, block), in order."""
    changes: dict[str, list[tuple[int, bool, int]]] = defaultdict(list)
    for i, e in enumerate(events):
        if e.contract == "WalletRegistry" and e.name in ("Frozen", "Unfrozen"):
            changes[e.args["wallet"]].append((i, e.name == "Frozen", e.block_number))
        elif e.contract == "WalletRegistry" and e.name == "WalletRetiredTo":
            # Retired for good: nothing is paid for it or to it after (its family holdings are
            # moved to the successor first; the replay above follows them).
            changes[e.args["wallet"]].append((i, True, e.block_number))
    return changes


def _frozen_at(changes: list[tuple[int, bool, int]], position: int) -> int | None:
    """The block since which the wallet was frozen at ``position``, or None if it was not."""
    state: int | None = None
    for at, frozen, block in changes:
        if at >= position:
            break
        state = block if frozen else None
    return state


def check_frozen_parties(paid: list[HolderPayment], events: list[Event]) -> list[Discrepancy]:
    """No payment for an owner who was frozen when it was made, and none to a frozen payee."""
    changes = freeze_changes(events)
    out: list[Discrepancy] = []
    seen: set[tuple[str, str, str]] = set()
    for p in paid:
        for kind, party, role in (
            ("paid-for-frozen-owner", p.owner, "for"),
            ("paid-to-frozen-payee", p.payee, "to"),
        ):
            if role == "to" and p.amount == 0:
                continue  # nothing reached the payee
            since = _frozen_at(changes.get(party, []), p.position)
            if since is None or (kind, p.tx_hash, party) in seen:
                continue
            seen.add((kind, p.tx_hash, party))
            out.append(
                Discrepancy(
                    kind,
                    f"{p.source}: {p.amount} fen paid {role} {party}, frozen since block {since} "
                    f"({p.owner} to {p.payee})",
                    p.tx_hash,
                )
            )
    return out


KIND_NAMES: dict[int, str] = {
    Kind.NONE: "an unregistered",
    Kind.PERSONAL: "a personal",
    Kind.INSTITUTION: "an institution",
}


def check_merchant_payees(paid: list[HolderPayment], kinds: dict[str, int]) -> list[Discrepancy]:
    """Where the scene needs a merchant (cards, prepaid, quick pay, vouchers, payment codes), the
    payee is a registered merchant wallet."""
    out: list[Discrepancy] = []
    seen: set[tuple[str, str]] = set()
    for p in paid:
        kind = kinds.get(p.payee, Kind.NONE)
        if not p.merchant_only or kind == Kind.MERCHANT or (p.tx_hash, p.payee) in seen:
            continue
        seen.add((p.tx_hash, p.payee))
        out.append(
            Discrepancy(
                "payee-not-a-merchant",
                f"{p.source}: {p.amount} fen of {p.owner} paid to {p.payee}, "
                f"{KIND_NAMES.get(kind, f'a kind-{kind}')} wallet, where the scene needs a merchant",
                p.tx_hash,
            )
        )
    return out


def _totals(events: list[Event], supply: int) -> dict[str, Any]:
    """Events by family, each family's tallies (disbursements by purpose), payments to merchants by
    category (a merchant's category is fixed at its registration, so the registry's events tell it)."""
    by_family: dict[str, Counter[str]] = defaultdict(Counter)
    family_of = family_of_contract()
    tallies = [t for f in FAMILIES for t in f.tallies]
    tallied: dict[str, Counter[str]] = {t.report_key: Counter() for t in tallies}
    category: Counter[str] = Counter()
    categories: dict[str, int] = {}
    for e in events:
        by_family[family_of.get(e.contract, e.contract)][e.name] += 1
        if (
            e.contract == "WalletRegistry"
            and e.name == "WalletRegistered"
            and int(e.args["kind"]) == Kind.MERCHANT
        ):
            categories[e.args["wallet"]] = int(e.args["category"])
        for t in tallies:
            if e.contract == t.contract and e.name == t.event:
                tallied[t.report_key][t.key(e.args)] += e.args[t.amount]
        if e.contract == "DigitalCash" and e.name == "Transfer" and e.args["to"] in categories:
            category[str(categories[e.args["to"]])] += e.args["value"]
    return {
        "supply_fen": supply,
        "events_by_family": {k: dict(v) for k, v in sorted(by_family.items())},
        **{key: dict(sorted(counts.items())) for key, counts in tallied.items()},
        "paid_to_merchants_by_category_fen": dict(sorted(category.items())),
    }


def render_html(report: Report, lang: str = i18n.EN) -> str:
    """A self-contained page: the verdict, the checks, the totals and every discrepancy, in
    English or zh-CN (``lang``; the glossary's words, services/common/i18n.py); money in yuan with
    the fen beside it, the time in Beijing time. The report's own figures are unchanged."""
    e = html.escape

    def t(text: str) -> str:
        return e(i18n.ui(text, lang))

    def money(fen: Any) -> str:
        return e(humanize.money(int(fen), lang)) if isinstance(fen, int) else e(str(fen))

    ok = report.verdict == "clean"
    rows = "".join(
        f"<tr><td>{e(c.family)}</td><td>{e(c.name)}</td><td class={'ok' if c.holds else 'bad'}>"
        f"{t('holds') if c.holds else t('BROKEN')}</td><td>{e(c.detail)}</td></tr>"
        for c in report.invariants
    )
    disc = (
        "".join(
            f"<tr><td>{e(d.kind)}</td><td>{e(d.detail)}</td><td><code>{e(d.tx_hash or '')}</code></td>"
            f"<td><code>{e(d.operation_id or '')}</code></td></tr>"
            for d in report.discrepancies
        )
        or f"<tr><td colspan=4>{t('none')}</td></tr>"
    )

    none_row = f"<tr><td>{t('none')}</td></tr>"

    def table(title: str, data: dict[str, Any], fen: bool = False) -> str:
        body = "".join(
            f"<tr><td>{e(str(k))}</td><td class=num>{money(v) if fen else e(str(v))}</td></tr>"
            for k, v in data.items()
        )
        return f"<h3>{e(title)}</h3><table>{body or none_row}</table>"

    surplus_rows = (
        "".join(
            f"<tr><td>{e(x.family)}</td><td>{e(x.contract)}</td>"
            f"<td class=num>{money(x.surplus_fen)}</td><td>"
            + "<br>".join(
                f"{money(tr['value_fen'])} ← <code>{e(tr['from'])}</code>"
                f" (tx <code>{e(tr['tx_hash'])}</code>)"
                for tr in x.direct_transfers
            )
            + "</td></tr>"
            for x in report.surpluses
        )
        or f"<tr><td colspan=4>{t('none')}</td></tr>"
    )
    count = len(report.discrepancies)
    verdict = (
        t("CLEAN: the chain and the records agree")
        if ok
        else (f"{count} {t('DISCREPANCIES')}" if lang == i18n.ZH else f"{count} DISCREPANCIES")
    )
    totals = report.totals
    mode = report.mode
    if report.resumed_from is not None:
        mode += f" from the checkpoint at block {report.resumed_from}"
    try:
        generated = humanize.beijing(datetime.fromisoformat(report.generated_at))
    except ValueError:
        generated = report.generated_at
    families = "".join(
        table(f"{i18n.ui('events', lang)}: {fam}", counts)
        for fam, counts in totals.get("events_by_family", {}).items()
    )
    heading = f"{t('Reconciliation of chain')} {report.chain_id}"
    blocks = f"{t('Blocks')} {report.from_block} {t('to block')} {report.to_block}"
    blocks += f", {t('generated')} {e(generated)}"
    by_category = totals.get("paid_to_merchants_by_category_fen", {})
    swap = "en" if lang == i18n.ZH else "zh"
    swap_label = "English" if lang == i18n.ZH else "中文"
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{t("xcpay reconciliation")}</title>
<style>
body {{ font: 14px/1.4 system-ui, "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC",
  "Microsoft YaHei", sans-serif; margin: 2em; color: #222 }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px }}
.ok {{ color: #060 }} .bad {{ color: #b00; font-weight: bold }} .num {{ text-align: right }}
.verdict {{ font-size: 1.6em; padding: .4em .8em; display: inline-block;
  background: {"#e6f4e6" if ok else "#fbe3e3"}; border: 2px solid {"#060" if ok else "#b00"} }}
</style></head><body>
<p class="lang"><a href="?format=html&amp;lang={swap}" hreflang="{swap}">{swap_label}</a></p>
<h1>{heading}</h1>
<p>{blocks} ({e(mode)}).</p>
{"".join(f"<p>{e(n)}</p>" for n in report.notes)}
<p class="verdict">{verdict}</p>
{table(i18n.ui("counts", lang), report.counts)}
<h2>{t("Invariants")}</h2>
<table><tr><th>{t("family")}</th><th>{t("invariant")}</th><th></th><th>{t("figures")}</th></tr>{rows}</table>
<h2>{t("Surpluses")}</h2>
<p>{t("Cash sent straight to a family contract, beyond its books: no one's money is missing.")}</p>
<table><tr><th>{t("family")}</th><th>{t("contract")}</th><th>{t("surplus")}</th>
<th>{t("sent directly by")}</th></tr>
{surplus_rows}</table>
<h2>{t("Totals")}</h2>
{table(i18n.ui("supply", lang), {i18n.ui("supply", lang): totals.get("supply_fen", 0)}, fen=True)}
{table(i18n.ui("disbursed by purpose", lang), totals.get("disbursed_by_purpose_fen", {}), fen=True)}
{table(i18n.ui("paid to merchants by category", lang), by_category, fen=True)}
{families}
<h2>{t("Discrepancies")}</h2>
<table><tr><th>{t("kind")}</th><th>{t("what")}</th><th>{t("transaction")}</th><th>{t("operation")}</th></tr>
{disc}</table>
</body></html>
"""
