"""Three-assets collective fund supervision (农村集体“三资”监管): collectives, fiscal years and
budgets, payment proposals with approvals, the asset register, income, and the auditor's view.
Every state change is an idempotent operation (``Idempotency-Key``).

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

Reads come from the chain's views; who approved when, and every proposal's history, come from the
event index (``ChainEvent`` rows), with times from the blocks' timestamps.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select

from chain.clients.collective import AssetKind, OfficerRole, ProposalState
from chain.exceptions import ContractError
from services.common.context import ServiceContext
from services.common.deps import (
    CtxDep,
    IdempotencyKey,
    IndexerDep,
    OperatorKey,
    OpsDep,
    RegulatorKey,
    require,
)
from services.common.keys import Role
from services.common.models import ApiKey, ChainEvent, Operation
from services.common.operations import Call, Operations, builder, perform
from services.common.paging import DEFAULT_LIMIT, Page, Paging, paginate, paginate_list
from services.common.problems import Problem
from services.common.schemas import (
    Address,
    AmountFen,
    AmountFen128,
    OperationOut,
    event_arg,
    example,
    respond,
)
from services.operator.schemas import Strict

router = APIRouter(prefix="/v1/collectives", tags=["collectives"])

DAY = 86_400
MAX_LIFETIME = 365 * DAY
ZERO = b"\0" * 32
CONTRACT = "CollectiveFund"

CollectiveId = Annotated[int, Path(ge=1, le=2**63 - 1)]
ProposalId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Sha256Hex = Annotated[str, Field(pattern=r"^(0x)?[0-9a-fA-F]{64}$", description="hex SHA-256")]
Fen128 = Annotated[int, Field(strict=True, ge=0, lt=2**128)]
Text = Annotated[str, Field(min_length=1, max_length=2000)]

OfficerKey = Annotated[ApiKey, Depends(require(Role.OFFICER))]
ApproverKey = Annotated[ApiKey, Depends(require(Role.OFFICER, Role.REGULATOR))]
CollectiveReaderKey = Annotated[
    ApiKey, Depends(require(Role.OPERATOR, Role.REGULATOR, Role.AUDITOR, Role.OFFICER))
]

ROLES = {"committee": OfficerRole.COMMITTEE, "treasurer": OfficerRole.TREASURER, "none": OfficerRole.NONE}
KINDS = {"property": AssetKind.PROPERTY, "resource": AssetKind.RESOURCE}
PROPOSAL_EVENTS = (
    "ProposalCreated",
    "ProposalTerms",
    "ProposalApproved",
    "ProposalReady",
    "ProposalRejected",
    "ProposalCancelled",
    "ProposalExecuted",
)
ProposalStateName = Literal[
    "pending", "timelocked", "executable", "executed", "rejected", "cancelled", "expired", "stale"
]
OPEN_STATES = (ProposalState.PENDING, ProposalState.TIMELOCKED, ProposalState.EXECUTABLE)


# -- request models ----------------------------------------------------------------------------


class OfficerIn(Strict):
    account: Address
    role: Literal["committee", "treasurer"] = Field(
        description="committee members propose, approve and pay; treasurers propose and pay"
    )


class OfficerChangeIn(Strict):
    account: Address
    role: Literal["committee", "treasurer", "none"] = Field(description="none removes the officer")


class TierIn(Strict):
    max_amount_fen: AmountFen128 = Field(description="inclusive limit of this tier")
    committee: int = Field(ge=0, le=16, description="committee approvals needed")
    township: bool = Field(default=False, description="the township supervisor must approve too")
    delay_s: int = Field(default=0, ge=0, lt=2**32, description="public-notice time lock once approved")


class LineIn(Strict):
    name: str = Field(min_length=1, description="at most 32 bytes of UTF-8", examples=["infrastructure"])
    budget_fen: Fen128

    @field_validator("name")
    @classmethod
    def _fits_bytes32(cls, value: str) -> str:
        if len(value.encode()) > 32 or "\0" in value:
            raise ValueError("a line name is at most 32 bytes of UTF-8, without NUL")
        return value


class YearIn(Strict):
    year: int = Field(ge=1, le=65_535, examples=[2025])
    lines: list[LineIn] = Field(min_length=1, max_length=8)


class RulesIn(Strict):
    tiers: list[TierIn] = Field(min_length=1, max_length=4, description="ascending limits")
    proposal_lifetime_s: int = Field(ge=1, le=MAX_LIFETIME)


class CollectiveIn(RulesIn, YearIn):
    model_config = example(
        {
            "name": "清水村股份经济合作社",
            "officers": [
                {"account": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "role": "committee"},
                {"account": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "role": "treasurer"},
            ],
            "tiers": [{"max_amount_fen": 500_000, "committee": 1}],
            "proposal_lifetime_s": 2_592_000,
            "year": 2026,
            "lines": [{"name": "roads", "budget_fen": 10_000_000}],
        }
    )

    name: str = Field(min_length=1, max_length=200, description="only its SHA-256 goes on chain")
    officers: list[OfficerIn] = Field(min_length=1, max_length=16)


class BudgetIn(Strict):
    line: int = Field(ge=0, le=7)
    budget_fen: Fen128


class SplitWindowIn(Strict):
    days: int = Field(
        ge=1,
        le=90,
        description="payments to a payee this many Beijing days back (today included) count toward "
        "the approval tier of a new proposal to it, with its pending proposals",
    )


class ReasonIn(Strict):
    reason: str = Field(default="", max_length=2000, description="only its SHA-256 goes on chain")


class ProposalIn(Strict):
    model_config = example(
        {
            "payee": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
            "amount_fen": 120_000,
            "line": 0,
            "purpose": "gravel for the east road",
        }
    )

    payee: Address
    amount_fen: AmountFen128
    line: int = Field(ge=0, le=7, description="budget line of the current year")
    purpose: Text = Field(description="what the money is for; only its SHA-256 goes on chain")
    evidence_sha256: Sha256Hex | None = Field(
        default=None, description="SHA-256 of the evidence document (invoice, contract), computed by you"
    )


class AssetIn(Strict):
    kind: Literal["property", "resource"]
    value_fen: Fen128 = Field(description="book value")
    description: Text = Field(description="deed, survey, location; only its SHA-256 goes on chain")


class IncomeIn(Strict):
    payer: Address = Field(description="custodial wallet that pays (a lessee, a subsidy account)")
    amount_fen: AmountFen
    asset_id: int = Field(default=0, ge=0, lt=2**63, description="asset the income belongs to, 0: none")
    memo: str = Field(default="", max_length=2000, description="only its SHA-256 goes on chain")


# -- response models ---------------------------------------------------------------------------


class CreatedOut(OperationOut):
    collective_id: int | None = None
    year_operation: OperationOut | None = None


class ProposalOperationOut(OperationOut):
    proposal_id: int | None = None


class AssetOperationOut(OperationOut):
    asset_id: int | None = None


class LineOut(BaseModel):
    line: int
    name: str
    budget_fen: int
    spent_fen: int
    remaining_fen: int


class TierOut(BaseModel):
    max_amount_fen: int
    committee: int
    township: bool
    delay_s: int


class AssetOut(BaseModel):
    id: int
    kind: str
    value_fen: int
    retired: bool
    description_sha256: str
    description: str | None
    counterparty: str | None
    annual_income_fen: int
    contract_ends_at: int
    income_received_fen: int


class IncomeOut(BaseModel):
    asset_id: int
    payer: str
    amount_fen: int
    memo_sha256: str
    at: int
    block_number: int
    tx_hash: str


class CollectiveOut(BaseModel):
    id: int
    name: str | None
    name_sha256: str
    supervisor: str
    frozen: bool
    year: int
    epoch: int
    proposal_lifetime_s: int
    officers: dict[str, str]
    tiers: list[TierOut]
    lines: list[LineOut]
    balance_fen: int
    total_income_fen: int
    total_paid_fen: int
    untagged_income_fen: int
    assets: list[AssetOut]
    income: list[IncomeOut]


class ApprovalOut(BaseModel):
    approver: str
    township: bool
    at: int
    block_number: int
    tx_hash: str


class ProposalOut(BaseModel):
    id: int
    collective_id: int
    year: int
    epoch: int
    line: int
    line_name: str | None
    proposer: str
    payee: str
    amount_fen: int
    status: str = Field(description="as stored: pending, executed, rejected, cancelled")
    state: str = Field(
        description="now: pending, timelocked, executable, executed, rejected, cancelled, expired, stale"
    )
    committee_required: int
    committee_approvals: int
    township_required: bool
    township_approved: bool
    approvals: list[ApprovalOut]
    purpose: str | None = Field(description="the purpose text, when proposed through this service")
    purpose_sha256: str
    evidence_sha256: str
    proposed_at: int
    ready_at: int | None
    executable_at: int | None
    expires_at: int
    closed_at: int | None = Field(description="when executed, rejected or cancelled")
    closed_by: str | None
    close_reason_sha256: str | None
    history: list[dict[str, Any]]


class LineTotal(BaseModel):
    year: int
    line: int
    name: str | None
    proposals: int
    executed: int
    executed_fen: int
    open: int
    open_fen: int = Field(description="pending, timelocked or executable (reserves nothing on chain)")
    rejected: int
    cancelled: int
    lapsed: int = Field(description="expired or stale")


class ProposalPage(BaseModel):
    collective_id: int
    year: int
    lines: list[LineOut] = Field(description="the current year's budget lines as the chain holds them")
    totals: list[LineTotal] = Field(description="every proposal counted by year and line")
    proposals: list[ProposalOut] = Field(description="this page of the proposals (filters and paging)")
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` (same filters) for the next page; null: no more"
    )
    limit: int = DEFAULT_LIMIT


# -- helpers -----------------------------------------------------------------------------------


def sha256_hex(text: str) -> str:
    return "0x" + hashlib.sha256(text.encode()).hexdigest()


def _b32(hex_: str | None) -> bytes:
    if not hex_:
        return ZERO
    return bytes.fromhex(hex_.removeprefix("0x"))


def _normal(hex_: str | None) -> str | None:
    """A caller's hex hash as ``0x`` + lower case."""
    return "0x" + hex_.removeprefix("0x").lower() if hex_ else None


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _line_name(raw: bytes) -> str:
    return bytes(raw).rstrip(b"\0").decode("utf-8", errors="replace")


def _tier(t: dict[str, Any]) -> tuple[int, int, bool, int]:
    return (t["max_amount_fen"], t["committee"], t["township"], t["delay_s"])


def _lines(lines: list[dict[str, Any]]) -> tuple[list[bytes], list[int]]:
    return [ln["name"].encode().ljust(32, b"\0") for ln in lines], [ln["budget_fen"] for ln in lines]


def _check_collective(ctx: ServiceContext, cid: int) -> None:
    ctx.collective.collective(cid)  # CollectiveUnknown: 404 before anything is recorded


def _check_proposal(ctx: ServiceContext, cid: int, pid: int) -> None:
    if ctx.collective.proposal(pid).collective_id != cid:  # CollectiveUnknownProposal: 404
        raise Problem(
            404, "proposal-not-found", "Proposal not found", f"collective {cid} has no proposal {pid}"
        )


def _officer_wallet(ctx: ServiceContext, key: ApiKey) -> str:
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
    return "township" if key.role == Role.REGULATOR else _officer_wallet(ctx, key)


def _account(ctx: ServiceContext, signer: str) -> Any:
    return ctx.regulator if signer == "township" else ctx.custodial(signer)


_event_arg = event_arg


def _perform(
    ops: Operations, kind: str, key: ApiKey, idem: str, request: dict[str, Any], target: str
) -> Operation:
    op, _ = perform(ops, kind, key, idem, request, target=target)
    return op


def _fn(ctx: ServiceContext) -> Any:
    return ctx.collective.fund.functions


# -- township (the regulator key, signed by the regulator account) ------------------------------


@router.post("", status_code=201, responses={202: {"model": CreatedOut}})
def create_collective(
    body: CollectiveIn, ctx: CtxDep, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> CreatedOut:
    """Create a collective with its officers and approval rules, supervised by the township (the
    service's regulator account), and open its first fiscal year with its budget lines: two
    operations (the second under ``<Idempotency-Key>#year``). 201 once both are confirmed; on a
    202 (slow chain) send the same request with the same key again to finish."""
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
    cid = _event_arg(op, "CollectiveCreated", "collectiveId")
    out = respond(op, response, done_status=201)
    if cid is None:
        response.status_code = 202
        return CreatedOut(**out.model_dump())
    year_request = {"collective_id": cid, "year": body.year, "lines": request["lines"]}
    year_op = _perform(ops, "collective.open_year", key, f"{idem}#year", year_request, target=str(cid))
    year_out = respond(year_op, response, done_status=201)
    return CreatedOut(**out.model_dump(), collective_id=cid, year_operation=year_out)


@builder("collective.create")
def _create(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = _fn(ctx).createCollective(
        req["supervisor"],
        _b32(req["name_sha256"]),
        [o["account"] for o in req["officers"]],
        [int(ROLES[o["role"]]) for o in req["officers"]],
        [_tier(t) for t in req["tiers"]],
        req["proposal_lifetime_s"],
    )
    return Call(ctx.regulator, fn)


@router.post("/{collective_id}/years", responses={202: {"model": OperationOut}})
def open_year(
    collective_id: CollectiveId,
    body: YearIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: RegulatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Open a new fiscal year with its budget lines (supervisor). Pending proposals of the old
    year lapse (a new epoch)."""
    _check_collective(ctx, collective_id)
    request = {"collective_id": collective_id, **body.model_dump()}
    return respond(_perform(ops, "collective.open_year", key, idem, request, str(collective_id)), response)


@builder("collective.open_year")
def _open_year(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    names, budgets = _lines(req["lines"])
    return Call(ctx.regulator, _fn(ctx).openYear(req["collective_id"], req["year"], names, budgets))


@router.post("/{collective_id}/budgets", responses={202: {"model": OperationOut}})
def amend_budget(
    collective_id: CollectiveId,
    body: BudgetIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: RegulatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Change one line's budget within the current year, not below what it spent (supervisor)."""
    _check_collective(ctx, collective_id)
    request = {"collective_id": collective_id, **body.model_dump()}
    return respond(_perform(ops, "collective.amend_budget", key, idem, request, str(collective_id)), response)


@builder("collective.amend_budget")
def _amend_budget(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, _fn(ctx).amendBudget(req["collective_id"], req["line"], req["budget_fen"]))


@router.post("/{collective_id}/officers", responses={202: {"model": OperationOut}})
def set_officer(
    collective_id: CollectiveId,
    body: OfficerChangeIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: RegulatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Add an officer, change their role, or remove them (``none``) (supervisor; a new epoch)."""
    _check_collective(ctx, collective_id)
    request = {"collective_id": collective_id, **body.model_dump()}
    op = _perform(ops, "collective.set_officer", key, idem, request, f"{collective_id}:{body.account}")
    return respond(op, response)


@builder("collective.set_officer")
def _set_officer(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = _fn(ctx).setOfficer(req["collective_id"], req["account"], int(ROLES[req["role"]]))
    return Call(ctx.regulator, fn)


@router.post("/{collective_id}/rules", responses={202: {"model": OperationOut}})
def set_rules(
    collective_id: CollectiveId,
    body: RulesIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: RegulatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Replace the approval tiers and the proposal lifetime (supervisor; a new epoch)."""
    _check_collective(ctx, collective_id)
    request = {"collective_id": collective_id, **body.model_dump()}
    return respond(_perform(ops, "collective.set_rules", key, idem, request, str(collective_id)), response)


@builder("collective.set_rules")
def _set_rules(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = _fn(ctx).setRules(req["collective_id"], [_tier(t) for t in req["tiers"]], req["proposal_lifetime_s"])
    return Call(ctx.regulator, fn)


@router.post("/split-window", responses={202: {"model": OperationOut}})
def set_split_window(
    body: SplitWindowIn, ctx: CtxDep, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Set the split window of every collective (township): a proposal's tier comes from its amount
    plus the collective's pending proposals to the same payee and its payments to it in the window,
    so a large payment split into small ones needs the approvals of the whole."""
    request = {"days": body.days}
    return respond(_perform(ops, "collective.set_split_window", key, idem, request, "split-window"), response)


@builder("collective.set_split_window")
def _set_split_window(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, _fn(ctx).setSplitWindow(req["days"]))


@router.post("/{collective_id}/freeze", responses={202: {"model": OperationOut}})
def freeze(
    collective_id: CollectiveId,
    ctx: CtxDep,
    ops: OpsDep,
    key: RegulatorKey,
    idem: IdempotencyKey,
    response: Response,
    body: Annotated[ReasonIn | None, Body()] = None,
) -> OperationOut:
    """Freeze the collective: no proposals, approvals or payments until unfrozen (supervisor).
    Income, rejections, cancellations and the register go on."""
    _check_collective(ctx, collective_id)
    reason = body.reason if body else ""
    request = {"collective_id": collective_id, "reason": reason, "reason_sha256": _text_hash(reason)}
    return respond(_perform(ops, "collective.freeze", key, idem, request, str(collective_id)), response)


@builder("collective.freeze")
def _freeze(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, _fn(ctx).freeze(req["collective_id"], _b32(req["reason_sha256"])))


@router.post("/{collective_id}/unfreeze", responses={202: {"model": OperationOut}})
def unfreeze(
    collective_id: CollectiveId,
    ctx: CtxDep,
    ops: OpsDep,
    key: RegulatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Unfreeze the collective (supervisor)."""
    _check_collective(ctx, collective_id)
    request = {"collective_id": collective_id}
    return respond(_perform(ops, "collective.unfreeze", key, idem, request, str(collective_id)), response)


@builder("collective.unfreeze")
def _unfreeze(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, _fn(ctx).unfreeze(req["collective_id"]))


def _text_hash(text: str) -> str | None:
    """SHA-256 of a non-empty text; None (the zero hash on chain) for none."""
    return sha256_hex(text) if text else None


# -- proposals (officers with their own keys; the township approves with the regulator key) ------


@router.post("/{collective_id}/proposals", status_code=201, responses={202: {"model": ProposalOperationOut}})
def propose(
    collective_id: CollectiveId,
    body: ProposalIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OfficerKey,
    idem: IdempotencyKey,
    response: Response,
) -> ProposalOperationOut:
    """An officer proposes a payment from a budget line (signed with the officer's wallet)."""
    _readable(ctx, key, collective_id)  # decided before the lookup: no 404 oracle
    _check_collective(ctx, collective_id)
    request = {
        "collective_id": collective_id,
        "officer": _officer_wallet(ctx, key),
        "payee": body.payee,
        "amount_fen": body.amount_fen,
        "line": body.line,
        "purpose": body.purpose,
        "purpose_sha256": sha256_hex(body.purpose),
        "evidence_sha256": _normal(body.evidence_sha256),
    }
    op = _perform(ops, "collective.propose", key, idem, request, str(collective_id))
    out = respond(op, response, done_status=201)
    return ProposalOperationOut(
        **out.model_dump(), proposal_id=_event_arg(op, "ProposalCreated", "proposalId")
    )


@builder("collective.propose")
def _propose(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = _fn(ctx).propose(
        req["collective_id"],
        req["payee"],
        req["amount_fen"],
        req["line"],
        _b32(req["purpose_sha256"]),
        _b32(req["evidence_sha256"]),
    )
    return Call(ctx.custodial(req["officer"]), fn)


@router.post("/{collective_id}/proposals/{proposal_id}/approve", responses={202: {"model": OperationOut}})
def approve(
    collective_id: CollectiveId,
    proposal_id: ProposalId,
    ctx: CtxDep,
    ops: OpsDep,
    key: ApproverKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Approve: an officer key as a committee member (never their own proposal), or the regulator
    key as the township supervisor."""
    _readable(ctx, key, collective_id)  # decided before the lookup: no 404 oracle
    _check_proposal(ctx, collective_id, proposal_id)
    request = {"collective_id": collective_id, "proposal_id": proposal_id, "signer": _signer_of(ctx, key)}
    return respond(_perform(ops, "collective.approve", key, idem, request, str(proposal_id)), response)


@builder("collective.approve")
def _approve(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(_account(ctx, req["signer"]), _fn(ctx).approve(req["proposal_id"]))


@router.post("/{collective_id}/proposals/{proposal_id}/reject", responses={202: {"model": OperationOut}})
def reject(
    collective_id: CollectiveId,
    proposal_id: ProposalId,
    ctx: CtxDep,
    ops: OpsDep,
    key: ApproverKey,
    idem: IdempotencyKey,
    response: Response,
    body: Annotated[ReasonIn | None, Body()] = None,
) -> OperationOut:
    """Reject a pending proposal (a committee member's key or the regulator key), with a reason."""
    _readable(ctx, key, collective_id)  # decided before the lookup: no 404 oracle
    _check_proposal(ctx, collective_id, proposal_id)
    reason = body.reason if body else ""
    request = {
        "collective_id": collective_id,
        "proposal_id": proposal_id,
        "signer": _signer_of(ctx, key),
        "reason": reason,
        "reason_sha256": _text_hash(reason),
    }
    return respond(_perform(ops, "collective.reject", key, idem, request, str(proposal_id)), response)


@builder("collective.reject")
def _reject(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = _fn(ctx).reject(req["proposal_id"], _b32(req["reason_sha256"]))
    return Call(_account(ctx, req["signer"]), fn)


@router.post("/{collective_id}/proposals/{proposal_id}/cancel", responses={202: {"model": OperationOut}})
def cancel(
    collective_id: CollectiveId,
    proposal_id: ProposalId,
    ctx: CtxDep,
    ops: OpsDep,
    key: OfficerKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """The proposer withdraws their pending proposal."""
    _readable(ctx, key, collective_id)  # decided before the lookup: no 404 oracle
    _check_proposal(ctx, collective_id, proposal_id)
    request = {
        "collective_id": collective_id,
        "proposal_id": proposal_id,
        "officer": _officer_wallet(ctx, key),
    }
    return respond(_perform(ops, "collective.cancel", key, idem, request, str(proposal_id)), response)


@builder("collective.cancel")
def _cancel(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.custodial(req["officer"]), _fn(ctx).cancel(req["proposal_id"]))


@router.post("/{collective_id}/proposals/{proposal_id}/execute", responses={202: {"model": OperationOut}})
def execute(
    collective_id: CollectiveId,
    proposal_id: ProposalId,
    ctx: CtxDep,
    ops: OpsDep,
    key: OfficerKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Pay an approved proposal once its time lock is over and before it expires (any officer)."""
    _readable(ctx, key, collective_id)  # decided before the lookup: no 404 oracle
    _check_proposal(ctx, collective_id, proposal_id)
    request = {
        "collective_id": collective_id,
        "proposal_id": proposal_id,
        "officer": _officer_wallet(ctx, key),
    }
    return respond(_perform(ops, "collective.execute", key, idem, request, str(proposal_id)), response)


@builder("collective.execute")
def _execute(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.custodial(req["officer"]), _fn(ctx).execute(req["proposal_id"]))


# -- register and income -----------------------------------------------------------------------


@router.post("/{collective_id}/assets", status_code=201, responses={202: {"model": AssetOperationOut}})
def register_asset(
    collective_id: CollectiveId,
    body: AssetIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OfficerKey,
    idem: IdempotencyKey,
    response: Response,
) -> AssetOperationOut:
    """An officer registers an asset (property) or resource (land, forest, ponds) with its book value."""
    _readable(ctx, key, collective_id)  # decided before the lookup: no 404 oracle
    _check_collective(ctx, collective_id)
    request = {
        "collective_id": collective_id,
        "officer": _officer_wallet(ctx, key),
        **body.model_dump(),
        "description_sha256": sha256_hex(body.description),
    }
    op = _perform(ops, "collective.register_asset", key, idem, request, str(collective_id))
    out = respond(op, response, done_status=201)
    return AssetOperationOut(**out.model_dump(), asset_id=_event_arg(op, "AssetRegistered", "assetId"))


@builder("collective.register_asset")
def _register_asset(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = _fn(ctx).registerAsset(
        req["collective_id"], int(KINDS[req["kind"]]), req["value_fen"], _b32(req["description_sha256"])
    )
    return Call(ctx.custodial(req["officer"]), fn)


@router.post("/{collective_id}/income", responses={202: {"model": OperationOut}})
def record_income(
    collective_id: CollectiveId,
    body: IncomeIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """A custodial payer pays income into the collective, tagged to one of its assets (0: none).
    Accepted while the collective is frozen."""
    _check_collective(ctx, collective_id)
    ctx.custodial(body.payer)
    request = {"collective_id": collective_id, **body.model_dump(), "memo_sha256": _text_hash(body.memo)}
    return respond(_perform(ops, "collective.income", key, idem, request, str(collective_id)), response)


@builder("collective.income")
def _income(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    payer = ctx.custodial(req["payer"])
    fund = ctx.collective.fund
    ctx.ensure_allowance(payer.address, fund.address, req["amount_fen"])
    fn = fund.functions.recordIncome(
        req["collective_id"], req["asset_id"], req["amount_fen"], _b32(req["memo_sha256"])
    )
    return Call(payer, fn)


# -- the auditor's view ------------------------------------------------------------------------


def _readable(ctx: ServiceContext, key: ApiKey, cid: int) -> None:
    """Officer keys read and act on only the collectives they are an officer of; one that does not
    exist is the same 403 (collective ids are sequential: a 404 would tell which exist). The write
    routes call this before they look anything up, so that neither a 404 nor the contract's
    decoded error tells an outsider what exists."""
    if key.role != Role.OFFICER:
        return
    try:
        officers = ctx.collective.officers(cid)
    except ContractError as exc:
        if exc.name != "CollectiveUnknown":
            raise
        officers = {}
    if key.wallet not in officers:
        raise Problem(403, "not-your-collective", "Not an officer of this collective", f"collective {cid}")


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


# Events that name the collective (their subject) and those that name only their proposal.
COLLECTIVE_LEVEL = ("BudgetLineSet", "ProposalCreated", "ProposalExecuted")
PROPOSAL_LEVEL = tuple(n for n in PROPOSAL_EVENTS if n not in COLLECTIVE_LEVEL)


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
        made = _event_arg(op, event, arg)
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


@router.get("/{collective_id}")
def get_collective(
    collective_id: CollectiveId, ctx: CtxDep, indexer: IndexerDep, key: CollectiveReaderKey
) -> CollectiveOut:
    """The collective as the chain holds it: officers, rules, the current year's lines (budget,
    spent, left), balance and totals, its register of assets with their income, every income paid in."""
    _readable(ctx, key, collective_id)  # before the lookup: an officer learns nothing of others
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


@router.get("/{collective_id}/proposals")
def list_proposals(
    collective_id: CollectiveId,
    ctx: CtxDep,
    indexer: IndexerDep,
    key: CollectiveReaderKey,
    paging: Paging,
    state: Annotated[ProposalStateName | None, Query(description="the state now")] = None,
    payee: Annotated[Address | None, Query()] = None,
    proposer: Annotated[Address | None, Query()] = None,
) -> ProposalPage:
    """The proposals of the collective by id, oldest first (cursor paging, filters): its state now,
    who approved and when, its times (proposed, ready, executable, expiry, closed), the purpose and
    evidence hashes and its history of events; with totals by year and budget line (always over
    every proposal, whatever the filters)."""
    _readable(ctx, key, collective_id)
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


@router.get("/{collective_id}/proposals/{proposal_id}")
def get_proposal(
    collective_id: CollectiveId,
    proposal_id: ProposalId,
    ctx: CtxDep,
    indexer: IndexerDep,
    key: CollectiveReaderKey,
) -> ProposalOut:
    """One proposal, as in the list."""
    _readable(ctx, key, collective_id)
    _check_proposal(ctx, collective_id, proposal_id)
    events = _proposal_events(ctx, indexer, collective_id, proposal_id)
    line_names = _line_names(events, collective_id)
    mine = [e for e in events if e.name != "BudgetLineSet" and e.args.get("proposalId") == proposal_id]
    purposes = _texts(ctx, "collective.propose", "ProposalCreated", "proposalId", collective_id)
    return _proposal_out(ctx, proposal_id, mine, purposes.get(proposal_id, {}), line_names, _Clock(ctx))


# -- listing (issue 21: find what you created) --------------------------------------------------


class CollectiveItem(BaseModel):
    """A collective as a listing shows it; ``GET /{collective_id}`` has its lines, assets and income."""

    id: int
    name: str | None = Field(description="the name, when created through this service")
    supervisor: str
    frozen: bool
    year: int
    balance_fen: int
    total_income_fen: int
    total_paid_fen: int


@router.get("", summary="List and search collectives")
def list_collectives(
    ctx: CtxDep,
    indexer: IndexerDep,
    key: CollectiveReaderKey,
    paging: Paging,
    name: Annotated[
        str | None, Query(min_length=1, max_length=200, description="part of the name, any case")
    ] = None,
    officer: Annotated[Address | None, Query(description="collectives this account is an officer of")] = None,
    frozen: Annotated[bool | None, Query()] = None,
) -> Page[CollectiveItem]:
    """The collectives, by id (from the indexed ``CollectiveCreated`` events; the state from the
    chain). The reader roles list every collective; an officer key those it is an officer of
    (the single read's rule)."""
    indexer.catch_up()
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
