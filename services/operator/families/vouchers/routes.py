"""Restricted-purpose funds (消费红包 / 工会福利): voucher programmes over HTTP.

Each route validates (the models in ``schemas.py``), authorises (its key dependency, or
``reader_or_owner`` where a holder's own key may read), calls the service and answers. What a
programme is and how grants, spending and closing work is told in ``service.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.common.context import ServiceContext
from services.common.deps import (
    ApiKeyDep,
    CtxDep,
    IdempotencyKey,
    IndexerDep,
    MerchantKey,
    OperatorKey,
    OperatorOrRegulatorKey,
    OpsDep,
    reader_or_owner,
)
from services.common.keys import Role
from services.common.models import ApiKey
from services.common.paging import Page, Paging
from services.common.problems import Problem, problem_response
from services.common.schemas import Address, OperationOut, respond
from services.common.scope import check_read_any, read_filter, reads_scoped
from services.operator.families.vouchers import service
from services.operator.families.vouchers.schemas import (
    BatchesOut,
    CampaignIndex,
    GrantsIn,
    HolderIn,
    ProgrammeCreatedOut,
    ProgrammeId,
    ProgrammeIn,
    ProgrammeItem,
    SignedSpendIn,
    SpendIn,
)

router = APIRouter(prefix="/v1/voucher-programs", tags=["vouchers"])


def _reader(key: ApiKey) -> None:
    """The report and the listing: the operator, the regulator, the auditor."""
    if key.role not in {Role.OPERATOR, Role.REGULATOR, Role.AUDITOR}:
        raise Problem(403, "forbidden-role", "This key's role may not do this", f"role {key.role!r}")


def _scoped(ctx: ServiceContext, key: ApiKey, programme_id: int, *parties: str) -> None:
    """A key bound to an institution reads a programme whose issuer its institution serves, or,
    where a holder is named, that holder's own records (403 ``institution-scope``)."""
    if reads_scoped(key):
        check_read_any(ctx, key, service.programme_exists(ctx, programme_id).issuer, *parties)


# -- creating ----------------------------------------------------------------------------------


@router.post("", status_code=201, responses={202: {"model": ProgrammeCreatedOut}})
def create_programme(
    body: ProgrammeIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> ProgrammeCreatedOut:
    """Create and fund a programme (the custodial issuer approves and pays the budget). The answer
    names the programme's id (``programme_id``, from its ``ProgrammeCreated`` event). With
    ``cap_per_identity`` the issuer then makes the cap count per identity (``capPerIdentity``), a
    second operation of the same request: the answer is that operation once the creation is done."""
    op = service.create(ctx, ops, key, idem, body)
    out = respond(op, response, done_status=201)
    created = service.created_op(ctx, op)
    return ProgrammeCreatedOut(
        **out.model_dump(), programme_id=service.created_id(created), name=created.request["name"]
    )


# -- granting ----------------------------------------------------------------------------------


@router.post("/{programme_id}/grants")
def grant(
    programme_id: ProgrammeId,
    body: GrantsIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
) -> BatchesOut:
    """Grant amounts to registered wallets (sent in batches of 200; all rows checked first)."""
    return service.grant_batches(ctx, ops, key, idem, programme_id, service.json_grants(ctx, body))


@router.post(
    "/{programme_id}/grants/csv",
    responses={415: problem_response("The body is not sent as text/csv")},
    openapi_extra={
        "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}
    },
)
async def grant_csv(
    programme_id: ProgrammeId,
    request: Request,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
) -> BatchesOut:
    """Grants from a ``text/csv`` upload: ``recipient`` or ``identity``, and ``amount_fen`` or
    ``amount_yuan``."""
    if not request.headers.get("content-type", "").startswith("text/csv"):
        raise Problem(415, "unsupported-media-type", "Send the CSV as text/csv")
    rows, unit = service.csv_rows(await request.body())
    grants = await run_in_threadpool(service.validated, ctx, rows, unit)
    return await run_in_threadpool(service.grant_batches, ctx, ops, key, idem, programme_id, grants)


@router.post("/{programme_id}/campaign", status_code=201, responses={202: {"model": OperationOut}})
def merkle_campaign(
    programme_id: ProgrammeId,
    body: GrantsIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """A large campaign in one transaction: the service builds the Merkle tree of the grants,
    commits its root and keeps every proof; grants are then claimed (``/campaign/{index}/claim``)."""
    return respond(service.campaign(ctx, ops, key, idem, programme_id, body), response, done_status=201)


@router.get("/{programme_id}/campaign/tree", response_model=None)
def campaign_tree(programme_id: ProgrammeId, ctx: CtxDep, key: ApiKeyDep) -> JSONResponse:
    """The campaign's grant tree as ``@openzeppelin/merkle-tree``'s ``StandardMerkleTree`` dump
    (``programme-{id}-tree.json``): ``StandardMerkleTree.load`` gives the root the programme holds
    on chain and every holder's proof, values (programme, index, holder, amount in fen). The
    reader roles only: it lists every holder."""
    reader_or_owner(key, False)
    _scoped(ctx, key, programme_id)  # every holder: the issuer's institution only
    return service.campaign_tree(ctx, programme_id)


@router.get("/{programme_id}/campaign/{index}")
def campaign_leaf(
    programme_id: ProgrammeId, index: CampaignIndex, ctx: CtxDep, key: ApiKeyDep
) -> dict[str, Any]:
    """One campaign grant with its proof (a self-custody holder claims with it). The reader roles,
    or a key bound to the grant's holder."""
    reader_or_owner(key, key.wallet is not None)  # before the lookup: a 404 would tell what exists
    try:
        leaf = service.leaf(ctx, programme_id, index)
    except Problem:
        reader_or_owner(key, False)  # a bound key: a missing grant is the same 403 as another's
        raise
    reader_or_owner(key, key.wallet == leaf.holder)
    _scoped(ctx, key, programme_id, leaf.holder)
    return service.leaf_out(ctx, programme_id, index, leaf)


@router.post("/{programme_id}/campaign/{index}/claim", responses={202: {"model": OperationOut}})
def claim_campaign_leaf(
    programme_id: ProgrammeId,
    index: CampaignIndex,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Claim a campaign grant for its holder (the grant goes only to the holder in the leaf)."""
    return respond(service.claim(ctx, ops, key, idem, programme_id, index), response)


@router.post("/{programme_id}/enrol", responses={202: {"model": OperationOut}})
def enrol(
    programme_id: ProgrammeId,
    body: HolderIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """A custodial holder enrols in an open-enrolment programme and receives the per-person amount."""
    return respond(service.enrol(ctx, ops, key, idem, programme_id, body.holder), response)


# -- spending ----------------------------------------------------------------------------------


@router.post("/{programme_id}/spend", responses={202: {"model": OperationOut}})
def spend(
    programme_id: ProgrammeId,
    body: SpendIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """A custodial holder pays a merchant's bill: the programme pays its share, the holder's wallet
    the rest, in one transaction; the merchant receives the whole bill."""
    return respond(service.spend(ctx, ops, key, idem, programme_id, body), response)


@router.post("/{programme_id}/spend/signed", responses={202: {"model": OperationOut}})
def spend_signed(
    programme_id: ProgrammeId,
    body: SignedSpendIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: MerchantKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """A merchant submits a holder's signed EIP-712 ``Spend`` for a bill at its own till. The holder's
    wallet must allow the voucher contract to take its own share of the bill (if any)."""
    assert key.wallet is not None
    return respond(service.spend_signed(ops, key, idem, programme_id, key.wallet, body), response)


# -- closing and reports -----------------------------------------------------------------------


@router.post("/{programme_id}/close")
def close(
    programme_id: ProgrammeId,
    ctx: CtxDep,
    ops: OpsDep,
    indexer: IndexerDep,
    key: OperatorOrRegulatorKey,
    idem: IdempotencyKey,
) -> BatchesOut:
    """After expiry: return the ungranted budget and every holder's unspent balance to the issuer, in
    pages of 200 holders. A second close finds nothing to return (409)."""
    return service.close(ctx, ops, indexer, key, idem, programme_id)


@router.get("/{programme_id}", response_model=None)
def report(
    programme_id: ProgrammeId,
    ctx: CtxDep,
    indexer: IndexerDep,
    key: ApiKeyDep,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Any:
    """The programme and its report: budget = spent + returned + outstanding grants + ungranted;
    spending by merchant category and by merchant. ``?format=csv`` for the spending lines."""
    _reader(key)
    _scoped(ctx, key, programme_id)
    found = service.report(ctx, indexer, programme_id, format)
    if isinstance(found, str):
        return Response(found, media_type="text/csv")
    return found


@router.get("/{programme_id}/holders/{holder}")
def holding(programme_id: ProgrammeId, holder: Address, ctx: CtxDep, key: ApiKeyDep) -> dict[str, int]:
    """A holder's voucher balance in the programme: granted, spent, returned, balance (the reader
    roles, or the holder's own key)."""
    reader_or_owner(key, key.wallet == holder)
    _scoped(ctx, key, programme_id, holder)
    return service.holding(ctx, programme_id, holder)


# -- listing (issue 21: find what you created) --------------------------------------------------


@router.get("", summary="List and search voucher programmes")
def list_programmes(
    ctx: CtxDep,
    indexer: IndexerDep,
    key: ApiKeyDep,
    paging: Paging,
    issuer: Annotated[Address | None, Query()] = None,
    status: Annotated[Literal["upcoming", "open", "expired", "closed"] | None, Query()] = None,
    name: Annotated[
        str | None, Query(min_length=1, max_length=32, description="part of the name, any case")
    ] = None,
) -> Page[ProgrammeItem]:
    """The programmes, by id (from the indexed ``ProgrammeCreated`` events; the state from the
    chain). The same readers as the report: the operator, the regulator, the auditor; a key bound
    to an institution the programmes whose issuer its institution serves."""
    _reader(key)
    return service.programme_page(ctx, indexer, paging, issuer, status, name, read_filter(ctx, key))
