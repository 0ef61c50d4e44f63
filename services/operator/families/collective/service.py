"""Three-assets collective fund supervision (农村集体“三资”监管): the logic behind the routes.

Who signs what (one model, no exceptions):

- **The township is the regulator.** A ``regulator`` key creates collectives, opens fiscal years,
  amends budgets, changes officers and approval rules, freezes and unfreezes. The service signs
  these with its regulator account, which holds ``TOWNSHIP_ROLE`` and is made the supervisor of
  every collective created here. The same key gives the township approval (tiers with
  ``township``) and may reject proposals.
- **Village officers act with their own key.** An ``officer`` key is bound, when created, to the
  officer's custodial wallet; proposals, approvals, rejections, cancellations, payments and asset
  registrations are signed with that wallet's key, so the chain itself records which officer did
  what and enforces the four-eyes rules (no self-approval, treasurers never approve, an officer
  approves once).
- **Income** is paid in by a custodial payer wallet (a lessee, a subsidy account) through an
  ``operator`` key, like a prepayment: the payer approves the fund, ``recordIncome`` pulls.

Hashes: every text the service puts on chain as a hash (the collective's name, a proposal's
purpose, reasons, memos, asset descriptions) is the **SHA-256** of its UTF-8 bytes; the text stays
in the operation's stored request and is shown beside its hash. Evidence documents (invoices,
contracts) are hashed by the caller (``evidence_sha256``) and never pass through the service.
Budget line names are stored on chain as UTF-8 in a ``bytes32`` (at most 32 bytes).

Reads come from the chain's views (the typed client ``ctx.collective``); who approved when, and
every proposal's history, come from the event index (``ChainEvent`` rows), with times from the
blocks' timestamps. Each write here stores its request and performs its operation, whose builder
(``builders.py``) turns it into the call.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select

from chain.clients.collective import ProposalState
from chain.exceptions import ContractError
from services.common.context import ServiceContext
from services.common.keys import Role
from services.common.models import ApiKey, ChainEvent, Operation
from services.common.operations import Operations, perform
from services.common.paging import Page, Paging, paginate, paginate_list
from services.common.problems import Problem
from services.common.schemas import event_arg
from services.common.scope import check_operator_scope, check_read_any, read_filter, reads_scoped
from services.operator.families.collective.schemas import (
    ApprovalOut,
    AssetIn,
    AssetOut,
    BudgetIn,
    CollectiveIn,
    CollectiveItem,
    CollectiveOut,
    IncomeIn,
    IncomeOut,
    LineOut,
    LineTotal,
    OfficerChangeIn,
    ProposalIn,
    ProposalOut,
    ProposalPage,
    ReasonIn,
    RulesIn,
    TierOut,
    YearIn,
)

CONTRACT = "CollectiveFund"
PROPOSAL_EVENTS = (
    "ProposalCreated",
    "ProposalTerms",
    "ProposalApproved",
    "ProposalReady",
    "ProposalRejected",
    "ProposalCancelled",
    "ProposalExecuted",
)
OPEN_STATES = (ProposalState.PENDING, ProposalState.TIMELOCKED, ProposalState.EXECUTABLE)
# Events that name the collective (their subject) and those that name only their proposal.
COLLECTIVE_LEVEL = ("BudgetLineSet", "ProposalCreated", "ProposalExecuted")
PROPOSAL_LEVEL = tuple(n for n in PROPOSAL_EVENTS if n not in COLLECTIVE_LEVEL)


# -- helpers -----------------------------------------------------------------------------------


def sha256_hex(text: str) -> str:
    return "0x" + hashlib.sha256(text.encode()).hexdigest()


def text_hash(text: str) -> str | None:
    """SHA-256 of a non-empty text; None (the zero hash on chain) for none."""
    return sha256_hex(text) if text else None


def _normal(hex_: str | None) -> str | None:
    """A caller's hex hash as ``0x`` + lower case."""
    return "0x" + hex_.removeprefix("0x").lower() if hex_ else None


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _line_name(raw: bytes) -> str:
    return bytes(raw).rstrip(b"\0").decode("utf-8", errors="replace")


def check_collective(ctx: ServiceContext, cid: int) -> None:
    ctx.collective.collective(cid)  # CollectiveUnknown: 404 before anything is recorded


def check_proposal(ctx: ServiceContext, cid: int, pid: int) -> None:
    if ctx.collective.proposal(pid).collective_id != cid:  # CollectiveUnknownProposal: 404
        raise Problem(
            404, "proposal-not-found", "Proposal not found", f"collective {cid} has no proposal {pid}"
        )


def officer_wallet(ctx: ServiceContext, key: ApiKey) -> str:
    if key.wallet is None:
        raise Problem(
            422,
            "officer-without-wallet",
            "This officer key has no wallet",
            "create officer keys with a wallet",
        )
    ctx.custodial(key.wallet)  # 422 when the service does not hold its key
    return key.wallet


def _signer_of(ctx: ServiceContext, key: ApiKey) -> str:
    """What signs for an approver key: "township" (the regulator account) or the officer's wallet."""
    return "township" if key.role == Role.REGULATOR else officer_wallet(ctx, key)


def readable(ctx: ServiceContext, key: ApiKey, cid: int) -> None:
    """Officer keys read and act on only the collectives they are an officer of; one that does not
    exist is the same 403 (collective ids are sequential: a 404 would tell which exist). The write
    routes call this before they look anything up, so that neither a 404 nor the contract's
    decoded error tells an outsider what exists."""
    if key.role != Role.OFFICER:
        return
    if key.wallet not in _officers(ctx, cid):
        raise Problem(403, "not-your-collective", "Not an officer of this collective", f"collective {cid}")


def read_scoped(ctx: ServiceContext, key: ApiKey, cid: int) -> None:
    """The reads (not the writes: an income's payer may be anyone's customer): a key bound to an
    institution reads the collectives one of whose officers its institution serves (403
    ``institution-scope``); an unknown collective is left to the read's 404."""
    if not reads_scoped(key):
        return
    check_read_any(ctx, key, *_officers(ctx, cid))  # none (unknown): nothing to check


def _officers(ctx: ServiceContext, cid: int) -> dict[str, Any]:
    """Collective ``cid``'s officers, none when it does not exist (``CollectiveUnknown``)."""
    try:
        return ctx.collective.officers(cid)
    except ContractError as exc:
        if exc.name != "CollectiveUnknown":
            raise
        return {}


def _perform(
    ops: Operations, kind: str, key: ApiKey, idem: str, request: dict[str, Any], target: str
) -> Operation:
    op, _ = perform(ops, kind, key, idem, request, target=target)
    return op


# -- township (the regulator key, signed by the regulator account) ------------------------------


def create(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, body: CollectiveIn
) -> tuple[Operation, int | None, Operation | None]:
    """Create the collective, then (once its id is known) open its first year under
    ``<idem>#year``. Returns (creation, collective id or None while pending, year operation)."""
    request = {
        "name": body.name,
        "name_sha256": sha256_hex(body.name),
        "supervisor": ctx.regulator.address,
        "officers": [o.model_dump() for o in body.officers],
        "tiers": [t.model_dump() for t in body.tiers],
        "proposal_lifetime_s": body.proposal_lifetime_s,
        "year": body.year,  # for the idempotency check; the year is opened by the second operation
        "lines": [ln.model_dump() for ln in body.lines],
    }
    op = _perform(ops, "collective.create", key, idem, request, target=body.name)
    cid = event_arg(op, "CollectiveCreated", "collectiveId")
    if cid is None:
        return op, None, None
    year_request = {"collective_id": cid, "year": body.year, "lines": request["lines"]}
    year_op = _perform(ops, "collective.open_year", key, f"{idem}#year", year_request, target=str(cid))
    return op, cid, year_op


def open_year(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, cid: int, body: YearIn
) -> Operation:
    check_collective(ctx, cid)
    request = {"collective_id": cid, **body.model_dump()}
    return _perform(ops, "collective.open_year", key, idem, request, str(cid))


def amend_budget(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, cid: int, body: BudgetIn
) -> Operation:
    check_collective(ctx, cid)
    request = {"collective_id": cid, **body.model_dump()}
    return _perform(ops, "collective.amend_budget", key, idem, request, str(cid))


def set_officer(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, cid: int, body: OfficerChangeIn
) -> Operation:
    check_collective(ctx, cid)
    request = {"collective_id": cid, **body.model_dump()}
    return _perform(ops, "collective.set_officer", key, idem, request, f"{cid}:{body.account}")


def set_rules(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, cid: int, body: RulesIn
) -> Operation:
    check_collective(ctx, cid)
    request = {"collective_id": cid, **body.model_dump()}
    return _perform(ops, "collective.set_rules", key, idem, request, str(cid))


def set_split_window(ops: Operations, key: ApiKey, idem: str, days: int) -> Operation:
    return _perform(ops, "collective.set_split_window", key, idem, {"days": days}, "split-window")


def freeze(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, cid: int, body: ReasonIn | None
) -> Operation:
    check_collective(ctx, cid)
    reason = body.reason if body else ""
    request = {"collective_id": cid, "reason": reason, "reason_sha256": text_hash(reason)}
    return _perform(ops, "collective.freeze", key, idem, request, str(cid))


def unfreeze(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, cid: int) -> Operation:
    check_collective(ctx, cid)
    return _perform(ops, "collective.unfreeze", key, idem, {"collective_id": cid}, str(cid))


# -- proposals (officers with their own keys; the township approves with the regulator key) ------
# The routes call ``readable`` before these: an officer learns nothing of other collectives.


def propose(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, cid: int, body: ProposalIn
) -> tuple[Operation, int | None]:
    """Returns (operation, the new proposal's id or None while pending)."""
    check_collective(ctx, cid)
    request = {
        "collective_id": cid,
        "officer": officer_wallet(ctx, key),
        "payee": body.payee,
        "amount_fen": body.amount_fen,
        "line": body.line,
        "purpose": body.purpose,
        "purpose_sha256": sha256_hex(body.purpose),
        "evidence_sha256": _normal(body.evidence_sha256),
    }
    op = _perform(ops, "collective.propose", key, idem, request, str(cid))
    return op, event_arg(op, "ProposalCreated", "proposalId")


def approve(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, cid: int, pid: int) -> Operation:
    check_proposal(ctx, cid, pid)
    request = {"collective_id": cid, "proposal_id": pid, "signer": _signer_of(ctx, key)}
    return _perform(ops, "collective.approve", key, idem, request, str(pid))


def reject(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, cid: int, pid: int, body: ReasonIn | None
) -> Operation:
    check_proposal(ctx, cid, pid)
    reason = body.reason if body else ""
    request = {
        "collective_id": cid,
        "proposal_id": pid,
        "signer": _signer_of(ctx, key),
        "reason": reason,
        "reason_sha256": text_hash(reason),
    }
    return _perform(ops, "collective.reject", key, idem, request, str(pid))


def by_officer(
    ctx: ServiceContext, ops: Operations, kind: str, key: ApiKey, idem: str, cid: int, pid: int
) -> Operation:
    """A proposal step an officer signs with their own wallet (``collective.cancel``, ``.execute``)."""
    check_proposal(ctx, cid, pid)
    request = {"collective_id": cid, "proposal_id": pid, "officer": officer_wallet(ctx, key)}
    return _perform(ops, kind, key, idem, request, str(pid))


# -- register and income -----------------------------------------------------------------------


def register_asset(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, cid: int, body: AssetIn
) -> tuple[Operation, int | None]:
    """Returns (operation, the new asset's id or None while pending)."""
    check_collective(ctx, cid)
    request = {
        "collective_id": cid,
        "officer": officer_wallet(ctx, key),
        **body.model_dump(),
        "description_sha256": sha256_hex(body.description),
    }
    op = _perform(ops, "collective.register_asset", key, idem, request, str(cid))
    return op, event_arg(op, "AssetRegistered", "assetId")


def record_income(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, cid: int, body: IncomeIn
) -> Operation:
    check_operator_scope(ctx, key, body.payer)  # another institution's customer: 403 first
    check_collective(ctx, cid)
    ctx.custodial(body.payer)
    request = {"collective_id": cid, **body.model_dump(), "memo_sha256": text_hash(body.memo)}
    return _perform(ops, "collective.income", key, idem, request, str(cid))


# -- the auditor's view ------------------------------------------------------------------------


def _events(
    ctx: ServiceContext, indexer: Any, names: tuple[str, ...], subjects: list[int]
) -> list[ChainEvent]:
    """The fund's events of these names about these subjects (a collective for the events that name
    one, else the proposal or asset; see ``ChainEvent.subject``), oldest first, through the index on
    (contract, subject) rather than every event of the fund."""
    indexer.catch_up()
    if not subjects:
        return []
    with ctx.db.session() as s:
        return list(
            s.scalars(
                select(ChainEvent)
                .where(
                    ChainEvent.contract == CONTRACT,
                    ChainEvent.subject.in_(subjects),
                    ChainEvent.name.in_(names),
                )
                .order_by(ChainEvent.block_number, ChainEvent.log_index)
            )
        )


def _proposal_events(ctx: ServiceContext, indexer: Any, cid: int, pid: int | None = None) -> list[ChainEvent]:
    """The collective's budget lines and its proposals' events (only proposal ``pid``'s when given),
    oldest first, in two indexed queries."""
    top = _events(ctx, indexer, COLLECTIVE_LEVEL, [cid])
    ids = [int(e.args["proposalId"]) for e in top if e.name == "ProposalCreated"]
    if pid is not None:
        ids = [i for i in ids if i == pid]
    rest = _events(ctx, indexer, PROPOSAL_LEVEL, ids)
    return sorted([*top, *rest], key=lambda e: (e.block_number, e.log_index))


class _Clock:
    """Block timestamps, each block read once per request."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.cache: dict[int, int] = {}

    def __call__(self, block: int) -> int:
        if block not in self.cache:
            self.cache[block] = int(self.ctx.w3.eth.get_block(block)["timestamp"])
        return self.cache[block]


def _texts(ctx: ServiceContext, kind: str, event: str, arg: str, cid: int | None = None) -> dict[int, Any]:
    """Requests of the confirmed operations of ``kind`` by the id their ``event`` created."""
    with ctx.db.session() as s:
        rows = s.scalars(
            select(Operation).where(Operation.kind == kind, Operation.status == "confirmed")
        ).all()
    found: dict[int, Any] = {}
    for op in rows:
        if cid is not None and op.request.get("collective_id") != cid:
            continue
        made = event_arg(op, event, arg)
        if made is not None:
            found[made] = op.request
    return found


def _line_names(events: list[ChainEvent], cid: int) -> dict[tuple[int, int], str]:
    """Budget line names by (year, line), from the ``BudgetLineSet`` events."""
    return {
        (int(e.args["year"]), int(e.args["line"])): _line_name(bytes.fromhex(str(e.args["name"])[2:]))
        for e in events
        if e.name == "BudgetLineSet" and e.args.get("collectiveId") == cid
    }


def _lines_out(ctx: ServiceContext, cid: int) -> list[LineOut]:
    return [
        LineOut(
            line=i,
            name=_line_name(ln.name),
            budget_fen=ln.budget,
            spent_fen=ln.spent,
            remaining_fen=ln.remaining,
        )
        for i, ln in enumerate(ctx.collective.lines(cid))
    ]


def collective_out(ctx: ServiceContext, indexer: Any, collective_id: int) -> CollectiveOut:
    """The collective as the chain holds it, with its register of assets and every income paid in."""
    client = ctx.collective
    c = client.collective(collective_id)
    events = _events(ctx, indexer, ("AssetRegistered", "IncomeRecorded"), [collective_id])
    clock = _Clock(ctx)
    descriptions = _texts(ctx, "collective.register_asset", "AssetRegistered", "assetId", collective_id)
    names = _texts(ctx, "collective.create", "CollectiveCreated", "collectiveId")
    assets = []
    for e in events:
        if e.name != "AssetRegistered" or e.args.get("collectiveId") != collective_id:
            continue
        a = client.asset(int(e.args["assetId"]))
        assets.append(
            AssetOut(
                id=a.id,
                kind=a.kind.name.lower(),
                value_fen=a.value,
                retired=a.retired,
                description_sha256=_hex(a.description_hash),
                description=descriptions.get(a.id, {}).get("description"),
                counterparty=None if int(a.counterparty, 16) == 0 else a.counterparty,
                annual_income_fen=a.annual_income,
                contract_ends_at=a.contract_ends_at,
                income_received_fen=a.income_received,
            )
        )
    income = [
        IncomeOut(
            asset_id=int(e.args["assetId"]),
            payer=e.args["payer"],
            amount_fen=int(e.args["amount"]),
            memo_sha256=str(e.args["memoHash"]),
            at=clock(e.block_number),
            block_number=e.block_number,
            tx_hash=e.tx_hash,
        )
        for e in events
        if e.name == "IncomeRecorded" and e.args.get("collectiveId") == collective_id
    ]
    return CollectiveOut(
        id=collective_id,
        name=names.get(collective_id, {}).get("name"),
        name_sha256=_hex(c.name_hash),
        supervisor=c.supervisor,
        frozen=c.frozen,
        year=c.year,
        epoch=c.epoch,
        proposal_lifetime_s=c.proposal_lifetime,
        officers={a: r.name.lower() for a, r in client.officers(collective_id).items()},
        tiers=[
            TierOut(max_amount_fen=t.max_amount, committee=t.committee, township=t.township, delay_s=t.delay)
            for t in client.tiers(collective_id)
        ],
        lines=_lines_out(ctx, collective_id),
        balance_fen=c.balance,
        total_income_fen=c.total_income,
        total_paid_fen=c.total_paid,
        untagged_income_fen=c.total_income - sum(a.income_received_fen for a in assets),
        assets=assets,
        income=income,
    )


def proposal_page(
    ctx: ServiceContext,
    indexer: Any,
    collective_id: int,
    paging: Paging,
    state: str | None,
    payee: str | None,
    proposer: str | None,
) -> ProposalPage:
    """A page of the collective's proposals (filtered), with totals over every proposal."""
    c = ctx.collective.collective(collective_id)
    events = _proposal_events(ctx, indexer, collective_id)
    line_names = _line_names(events, collective_id)
    ids = [
        int(e.args["proposalId"])
        for e in events
        if e.name == "ProposalCreated" and e.args.get("collectiveId") == collective_id
    ]
    by_id: dict[int, list[ChainEvent]] = {pid: [] for pid in ids}
    for e in events:
        pid = e.args.get("proposalId")
        if e.name != "BudgetLineSet" and pid in by_id:
            by_id[pid].append(e)
    purposes = _texts(ctx, "collective.propose", "ProposalCreated", "proposalId", collective_id)
    clock = _Clock(ctx)
    proposals = [_proposal_out(ctx, pid, by_id[pid], purposes.get(pid, {}), line_names, clock) for pid in ids]
    kept = [
        p
        for p in proposals
        if (state is None or p.state == state)
        and (payee is None or p.payee == payee)
        and (proposer is None or p.proposer == proposer)
    ]
    page, cursor = paginate_list(kept, lambda p: p.id, paging, "proposals")
    return ProposalPage(
        collective_id=collective_id,
        year=c.year,
        lines=_lines_out(ctx, collective_id),
        totals=_totals(proposals, line_names),
        proposals=page,
        next_cursor=cursor,
        limit=paging.limit,
    )


def proposal(ctx: ServiceContext, indexer: Any, collective_id: int, proposal_id: int) -> ProposalOut:
    """One proposal, as in the list."""
    check_proposal(ctx, collective_id, proposal_id)
    events = _proposal_events(ctx, indexer, collective_id, proposal_id)
    line_names = _line_names(events, collective_id)
    mine = [e for e in events if e.name != "BudgetLineSet" and e.args.get("proposalId") == proposal_id]
    purposes = _texts(ctx, "collective.propose", "ProposalCreated", "proposalId", collective_id)
    return _proposal_out(ctx, proposal_id, mine, purposes.get(proposal_id, {}), line_names, _Clock(ctx))


def _proposal_out(
    ctx: ServiceContext,
    pid: int,
    events: list[ChainEvent],
    request: dict[str, Any],
    line_names: dict[tuple[int, int], str],
    clock: _Clock,
) -> ProposalOut:
    p = ctx.collective.proposal(pid)
    state = ctx.collective.proposal_state(pid)
    approvals = [
        ApprovalOut(
            approver=e.args["approver"],
            township=bool(e.args["township"]),
            at=clock(e.block_number),
            block_number=e.block_number,
            tx_hash=e.tx_hash,
        )
        for e in events
        if e.name == "ProposalApproved"
    ]
    closing = next(
        (e for e in events if e.name in ("ProposalExecuted", "ProposalRejected", "ProposalCancelled")), None
    )
    closed_by = None
    if closing is not None:
        closed_by = closing.args.get("executor") or closing.args.get("by")
    purpose = request.get("purpose")
    return ProposalOut(
        id=pid,
        collective_id=p.collective_id,
        year=p.year,
        epoch=p.epoch,
        line=p.line,
        line_name=line_names.get((p.year, p.line)),
        proposer=p.proposer,
        payee=p.payee,
        amount_fen=p.amount,
        status=p.status.name.lower(),
        state=state.name.lower(),
        committee_required=p.committee_required,
        committee_approvals=p.committee,
        township_required=p.township_required,
        township_approved=p.township_approved,
        approvals=approvals,
        purpose=purpose if purpose is not None and sha256_hex(purpose) == _hex(p.purpose_hash) else None,
        purpose_sha256=_hex(p.purpose_hash),
        evidence_sha256=_hex(p.attachment_hash),
        proposed_at=p.proposed_at,
        ready_at=p.ready_at or None,
        executable_at=p.executable_at,
        expires_at=p.expires_at,
        closed_at=clock(closing.block_number) if closing is not None else None,
        closed_by=closed_by,
        close_reason_sha256=closing.args.get("reasonHash") if closing is not None else None,
        history=[
            {
                "event": e.name,
                "at": clock(e.block_number),
                "block_number": e.block_number,
                "tx_hash": e.tx_hash,
                "args": e.args,
            }
            for e in events
        ],
    )


def _totals(proposals: list[ProposalOut], line_names: dict[tuple[int, int], str]) -> list[LineTotal]:
    totals: dict[tuple[int, int], LineTotal] = {}
    for p in proposals:
        t = totals.setdefault(
            (p.year, p.line),
            LineTotal(
                year=p.year,
                line=p.line,
                name=line_names.get((p.year, p.line)),
                proposals=0,
                executed=0,
                executed_fen=0,
                open=0,
                open_fen=0,
                rejected=0,
                cancelled=0,
                lapsed=0,
            ),
        )
        t.proposals += 1
        if p.state == "executed":
            t.executed += 1
            t.executed_fen += p.amount_fen
        elif p.state in {s.name.lower() for s in OPEN_STATES}:
            t.open += 1
            t.open_fen += p.amount_fen
        elif p.state == "rejected":
            t.rejected += 1
        elif p.state == "cancelled":
            t.cancelled += 1
        else:
            t.lapsed += 1
    return [totals[k] for k in sorted(totals)]


# -- listing (issue 21: find what you created) --------------------------------------------------


def collective_page(
    ctx: ServiceContext,
    indexer: Any,
    key: ApiKey,
    paging: Paging,
    name: str | None,
    officer: str | None,
    frozen: bool | None,
) -> Page[CollectiveItem]:
    """The collectives, by id (from the indexed ``CollectiveCreated`` events; the state from the
    chain). The reader roles list every collective; an officer key those it is an officer of
    (the single read's rule); a key bound to an institution those one of whose officers its
    institution serves."""
    indexer.catch_up()
    serves = read_filter(ctx, key)
    names = _texts(ctx, "collective.create", "CollectiveCreated", "collectiveId")
    items: dict[int, CollectiveItem] = {}
    officers: dict[int, dict[str, Any]] = {}

    def officers_of(cid: int) -> dict[str, Any]:
        if cid not in officers:
            officers[cid] = ctx.collective.officers(cid)
        return officers[cid]

    def item(row: ChainEvent) -> CollectiveItem:
        cid = int(row.args["collectiveId"])
        if cid not in items:
            c = ctx.collective.collective(cid)
            items[cid] = CollectiveItem(
                id=cid,
                name=names.get(cid, {}).get("name"),
                supervisor=c.supervisor,
                frozen=c.frozen,
                year=c.year,
                balance_fen=c.balance,
                total_income_fen=c.total_income,
                total_paid_fen=c.total_paid,
            )
        return items[cid]

    def keep(row: ChainEvent) -> bool:
        cid = int(row.args["collectiveId"])
        if key.role == Role.OFFICER and key.wallet not in officers_of(cid):
            return False
        if serves is not None and not serves(*officers_of(cid)):
            return False
        if officer is not None and officer not in officers_of(cid):
            return False
        it = item(row)
        return (frozen is None or it.frozen == frozen) and (
            name is None or (it.name is not None and name.lower() in it.name.lower())
        )

    q = select(ChainEvent).where(ChainEvent.contract == CONTRACT, ChainEvent.name == "CollectiveCreated")
    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, ChainEvent.id, paging, "collectives", keep=keep)
    return Page[CollectiveItem](items=[item(r) for r in rows], next_cursor=cursor, limit=paging.limit)
