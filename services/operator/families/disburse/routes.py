"""Payroll and subsidy disbursement (薪资/补助发放): batches from JSON or CSV, maker-checker
approval, execution with progress, exceptions, reclaim. Money moves only through operations.

Thin: each route validates its input, authorises the key, calls ``service.py`` and answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.common.deps import (
    READER_ROLES,
    CheckerKey,
    CtxDep,
    IdempotencyKey,
    OperatorKey,
    OpsDep,
    require,
)
from services.common.keys import Role
from services.common.models import ApiKey
from services.common.paging import Page, Paging
from services.common.problems import Problem, problem_response
from services.common.schemas import Address, OperationOut, merkle_dump, respond
from services.operator.families.disburse import service
from services.operator.families.disburse.rows import rows_from_csv, rows_from_json
from services.operator.families.disburse.runner import Runner
from services.operator.families.disburse.schemas import (
    BATCH_STATUSES,
    PURPOSE,
    REFERENCE,
    BatchIn,
    BatchItem,
    BatchMeta,
    BatchOut,
    ExecuteIn,
    Mode,
    OfficerIn,
    Reference,
    RowIndex,
)

router = APIRouter(prefix="/v1/disbursements", tags=["disbursements"])

# Disbursement reads: the reader roles, and checkers for the payers they are officers of.
PayrollReaderKey = Annotated[ApiKey, Depends(require(*READER_ROLES, Role.CHECKER))]


def get_runner(request: Request) -> Runner:
    return request.app.state.runner  # type: ignore[no-any-return]


# -- reading -----------------------------------------------------------------------------------


@router.get("/{reference}")
def get_disbursement(reference: Reference, ctx: CtxDep, key: PayrollReaderKey) -> BatchOut:
    """Status: rows done of total, paid / exceptions / outstanding on chain."""
    service.readable(ctx, key, reference)
    return service.report(ctx, reference)


@router.get("/{reference}/exceptions", response_model=None)
def get_exceptions(
    reference: Reference,
    ctx: CtxDep,
    key: PayrollReaderKey,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Any:
    """Rows that could not be paid, with the reason (the token's error). ``?format=csv`` to download."""
    service.readable(ctx, key, reference)
    items = service.exceptions(ctx, reference)
    if format == "csv":
        return Response(
            service.exceptions_csv(items),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{reference}-exceptions.csv"'},
        )
    return {"reference": reference, "exceptions": items}


@router.get("/{reference}/tree", response_model=None)
def get_tree(reference: Reference, ctx: CtxDep, key: PayrollReaderKey) -> JSONResponse:
    """A Merkle batch's tree as ``@openzeppelin/merkle-tree``'s ``StandardMerkleTree`` dump
    (``{reference}-tree.json``): ``StandardMerkleTree.load`` gives the on-chain root and every
    recipient's proof, values (batch id, index, recipient, amount in fen)."""
    service.readable(ctx, key, reference)
    tree, root = service.tree(ctx, reference)
    return merkle_dump(tree, root, f"{reference}-tree.json")


@router.get("/{reference}/rows/{index}")
def get_row(reference: Reference, index: RowIndex, ctx: CtxDep, key: PayrollReaderKey) -> dict[str, Any]:
    """One row, with its Merkle proof (a self-custody recipient claims with it)."""
    service.readable(ctx, key, reference)
    return service.row(ctx, reference, index)


# -- officers ----------------------------------------------------------------------------------


@router.post("/payers/{payer}/officers", responses={202: {"model": OperationOut}})
def set_officer(
    payer: Address,
    body: OfficerIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """The (custodial) payer makes an account one of its checkers or makers, or removes it."""
    return respond(service.set_officer(ctx, ops, key, idem, payer, body), response)


# -- creating ----------------------------------------------------------------------------------


@router.post("", status_code=201, responses={202: {"model": BatchOut}})
def create_disbursement(
    body: BatchIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> BatchOut:
    """Create a batch from a JSON list. Every row is checked first; all errors come back together
    (row number and reason) and nothing is created. The payer (custodial) signs the batch."""
    rows = rows_from_json(body.rows)
    out, response.status_code = service.create(ctx, ops, key, idem, body, rows, body.unit)
    return out


@router.post(
    "/csv",
    status_code=201,
    responses={
        202: {"model": BatchOut},
        413: problem_response("The CSV is larger than XCPAY_MAX_UPLOAD_BYTES (16 MiB by default)"),
        415: problem_response("The body is not sent as text/csv"),
    },
    openapi_extra={
        "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}
    },
)
async def create_disbursement_from_csv(
    request: Request,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
    reference: Annotated[str, Query(pattern=REFERENCE)],
    payer: Annotated[Address, Query()],
    purpose: Annotated[str, Query(pattern=PURPOSE)],
    ends_at: Annotated[datetime, Query()],
    mode: Annotated[Mode, Query()] = "explicit",
) -> BatchOut:
    """Create a batch from an uploaded CSV (``Content-Type: text/csv``). Columns: ``recipient`` (an
    address) or ``identity`` (the identity the wallet was registered with), and ``amount_fen`` or
    ``amount_yuan``; the column name says the unit, a bare ``amount`` is refused."""
    if not request.headers.get("content-type", "").startswith("text/csv"):
        raise Problem(415, "unsupported-media-type", "Send the CSV as text/csv")
    raw = await request.body()  # at most XCPAY_MAX_UPLOAD_BYTES: the guard refused more while it streamed
    if len(raw) > ctx.settings.max_upload_bytes:  # (and this app without the guard, in a unit test)
        raise Problem(
            413, "body-too-large", "The CSV is too large", f"at most {ctx.settings.max_upload_bytes} bytes"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Problem(422, "invalid-csv", "The CSV is not UTF-8") from None
    meta = BatchMeta.model_validate(
        {"reference": reference, "payer": payer, "purpose": purpose, "mode": mode, "ends_at": ends_at}
    )
    rows, unit = rows_from_csv(text)
    out, response.status_code = await run_in_threadpool(service.create, ctx, ops, key, idem, meta, rows, unit)
    return out


# -- maker-checker -----------------------------------------------------------------------------


@router.post("/{reference}/approve", responses={202: {"model": OperationOut}})
def approve(
    reference: Reference, ctx: CtxDep, ops: OpsDep, key: CheckerKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """A checker approves: the total is taken from the payer and locked for the batch. The key
    that created the batch cannot approve it; the checker key signs with its own wallet."""
    service.readable(ctx, key, reference)  # decided before the batch is looked up: no 404 oracle
    return respond(service.approve(ctx, ops, key, idem, reference), response)


@router.post("/{reference}/cancel", responses={202: {"model": OperationOut}})
def cancel(
    reference: Reference, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Abandon a batch that was not approved; nothing had moved."""
    return respond(service.cancel(ctx, ops, key, idem, reference), response)


# -- paying ------------------------------------------------------------------------------------


@router.post("/{reference}/execute", status_code=202)
def execute(
    reference: Reference,
    request: Request,
    ctx: CtxDep,
    key: OperatorKey,
    body: Annotated[ExecuteIn | None, Body()] = None,
) -> BatchOut:
    """Start paying an approved batch in the background; poll the batch for progress. Each chunk
    is its own idempotent operation, so calling this again (or a restart) resumes, never repays.
    The body is optional (``{"push": "custodial"}`` for Merkle batches)."""
    body = body or ExecuteIn()
    return service.start_execution(ctx, get_runner(request), key, reference, body.push)


@router.post("/{reference}/exceptions/{index}/retry", responses={202: {"model": OperationOut}})
def retry_exception(
    reference: Reference,
    index: RowIndex,
    request: Request,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Pay an exception whose cause was resolved (the wallet registered, unfrozen, under its cap)."""
    op = service.retry_exception(ctx, ops, get_runner(request), key, idem, reference, index)
    return respond(op, response)


@router.post("/{reference}/reclaim", responses={202: {"model": OperationOut}})
def reclaim(
    reference: Reference, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """After the end date: what was not paid (exceptions included) returns to the payer."""
    return respond(service.reclaim(ctx, ops, key, idem, reference), response)


# -- listing (issue 21: find what you created) --------------------------------------------------


@router.get("", summary="List and search disbursement batches")
def list_disbursements(
    ctx: CtxDep,
    key: PayrollReaderKey,
    paging: Paging,
    payer: Annotated[Address | None, Query()] = None,
    status: Annotated[BATCH_STATUSES | None, Query()] = None,
    purpose: Annotated[str | None, Query(pattern=PURPOSE)] = None,
) -> Page[BatchItem]:
    """The batches, by reference. The reader roles list every batch; a checker only those of the
    payers it is an officer of (the single read's rule)."""
    return service.listing(ctx, key, paging, payer, status, purpose)
