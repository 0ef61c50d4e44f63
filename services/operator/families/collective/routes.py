"""Three-assets collective fund supervision (农村集体“三资”监管) over HTTP: collectives, fiscal
years and budgets, payment proposals with approvals, the asset register, income, and the auditor's
view. Every state change is an idempotent operation (``Idempotency-Key``).

Each route validates (the models in ``schemas.py``), authorises (its key dependency; officer keys
also ``service.readable`` before anything is looked up), calls the service and answers. Who signs
what, and how texts become hashes on chain, is told in ``service.py``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Response

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
from services.common.models import ApiKey
from services.common.paging import Page, Paging
from services.common.schemas import Address, OperationOut, respond
from services.operator.families.collective import service
from services.operator.families.collective.schemas import (
    AssetIn,
    AssetOperationOut,
    BudgetIn,
    CollectiveId,
    CollectiveIn,
    CollectiveItem,
    CollectiveOut,
    CreatedOut,
    IncomeIn,
    OfficerChangeIn,
    ProposalId,
    ProposalIn,
    ProposalOperationOut,
    ProposalOut,
    ProposalPage,
    ProposalStateName,
    ReasonIn,
    RulesIn,
    SplitWindowIn,
    YearIn,
)

router = APIRouter(prefix="/v1/collectives", tags=["collectives"])

OfficerKey = Annotated[ApiKey, Depends(require(Role.OFFICER))]
ApproverKey = Annotated[ApiKey, Depends(require(Role.OFFICER, Role.REGULATOR))]
CollectiveReaderKey = Annotated[
    ApiKey, Depends(require(Role.OPERATOR, Role.REGULATOR, Role.AUDITOR, Role.OFFICER))
]


# -- township (the regulator key, signed by the regulator account) ------------------------------


@router.post("", status_code=201, responses={202: {"model": CreatedOut}})
def create_collective(
    body: CollectiveIn, ctx: CtxDep, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> CreatedOut:
    """Create a collective with its officers and approval rules, supervised by the township (the
    service's regulator account), and open its first fiscal year with its budget lines: two
    operations (the second under ``<Idempotency-Key>#year``). 201 once both are confirmed; on a
    202 (slow chain) send the same request with the same key again to finish."""
    op, cid, year_op = service.create(ctx, ops, key, idem, body)
    out = respond(op, response, done_status=201)
    if cid is None or year_op is None:
        response.status_code = 202
        return CreatedOut(**out.model_dump())
    year_out = respond(year_op, response, done_status=201)
    return CreatedOut(**out.model_dump(), collective_id=cid, year_operation=year_out)


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
    return respond(service.open_year(ctx, ops, key, idem, collective_id, body), response)


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
    return respond(service.amend_budget(ctx, ops, key, idem, collective_id, body), response)


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
    return respond(service.set_officer(ctx, ops, key, idem, collective_id, body), response)


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
    return respond(service.set_rules(ctx, ops, key, idem, collective_id, body), response)


@router.post("/split-window", responses={202: {"model": OperationOut}})
def set_split_window(
    body: SplitWindowIn, ctx: CtxDep, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Set the split window of every collective (township): a proposal's tier comes from its amount
    plus the collective's pending proposals to the same payee and its payments to it in the window,
    so a large payment split into small ones needs the approvals of the whole."""
    return respond(service.set_split_window(ops, key, idem, body.days), response)


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
    return respond(service.freeze(ctx, ops, key, idem, collective_id, body), response)


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
    return respond(service.unfreeze(ctx, ops, key, idem, collective_id), response)


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
    service.readable(ctx, key, collective_id)  # decided before the lookup: no 404 oracle
    op, proposal_id = service.propose(ctx, ops, key, idem, collective_id, body)
    out = respond(op, response, done_status=201)
    return ProposalOperationOut(**out.model_dump(), proposal_id=proposal_id)


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
    service.readable(ctx, key, collective_id)  # decided before the lookup: no 404 oracle
    return respond(service.approve(ctx, ops, key, idem, collective_id, proposal_id), response)


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
    service.readable(ctx, key, collective_id)  # decided before the lookup: no 404 oracle
    return respond(service.reject(ctx, ops, key, idem, collective_id, proposal_id, body), response)


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
    service.readable(ctx, key, collective_id)  # decided before the lookup: no 404 oracle
    op = service.by_officer(ctx, ops, "collective.cancel", key, idem, collective_id, proposal_id)
    return respond(op, response)


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
    service.readable(ctx, key, collective_id)  # decided before the lookup: no 404 oracle
    op = service.by_officer(ctx, ops, "collective.execute", key, idem, collective_id, proposal_id)
    return respond(op, response)


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
    service.readable(ctx, key, collective_id)  # decided before the lookup: no 404 oracle
    op, asset_id = service.register_asset(ctx, ops, key, idem, collective_id, body)
    out = respond(op, response, done_status=201)
    return AssetOperationOut(**out.model_dump(), asset_id=asset_id)


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
    return respond(service.record_income(ctx, ops, key, idem, collective_id, body), response)


# -- the auditor's view ------------------------------------------------------------------------


@router.get("/{collective_id}")
def get_collective(
    collective_id: CollectiveId, ctx: CtxDep, indexer: IndexerDep, key: CollectiveReaderKey
) -> CollectiveOut:
    """The collective as the chain holds it: officers, rules, the current year's lines (budget,
    spent, left), balance and totals, its register of assets with their income, every income paid in."""
    service.readable(ctx, key, collective_id)  # before the lookup: an officer learns nothing of others
    service.read_scoped(ctx, key, collective_id)
    return service.collective_out(ctx, indexer, collective_id)


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
    service.readable(ctx, key, collective_id)
    service.read_scoped(ctx, key, collective_id)
    return service.proposal_page(ctx, indexer, collective_id, paging, state, payee, proposer)


@router.get("/{collective_id}/proposals/{proposal_id}")
def get_proposal(
    collective_id: CollectiveId,
    proposal_id: ProposalId,
    ctx: CtxDep,
    indexer: IndexerDep,
    key: CollectiveReaderKey,
) -> ProposalOut:
    """One proposal, as in the list."""
    service.readable(ctx, key, collective_id)
    service.read_scoped(ctx, key, collective_id)
    return service.proposal(ctx, indexer, collective_id, proposal_id)


# -- listing (issue 21: find what you created) --------------------------------------------------


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
    return service.collective_page(ctx, indexer, key, paging, name, officer, frozen)
