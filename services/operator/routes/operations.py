from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from sqlalchemy import select

from services.common.deps import READER_ROLES, ApiKeyDep, CtxDep, OpsDep, reader_or_owner
from services.common.models import Operation
from services.common.paging import Page, Paging, paginate
from services.common.problems import Problem
from services.common.schemas import OperationOut
from services.common.scope import check_operation_scope, operations_clause

router = APIRouter(prefix="/v1/operations", tags=["operations"])


@router.get("/{operation_id}")
def get_operation(
    operation_id: Annotated[str, Path(max_length=36)], ctx: CtxDep, ops: OpsDep, key: ApiKeyDep
) -> OperationOut:
    """Any money-moving request's state: pending, confirmed, or failed with the decoded error. A key
    bound to an institution reads the requests of its institution's keys (403 ``institution-scope``)."""
    try:
        uuid.UUID(operation_id)
    except ValueError:
        raise Problem(
            404, "operation-not-found", "Operation not found", f"{operation_id!r} is not an operation id"
        ) from None
    op = ops.get(operation_id)
    reader_or_owner(key, op.api_key_id == key.id)  # a merchant, officer or terminal: its own requests
    check_operation_scope(ctx, key, op)
    return OperationOut.model_validate(op, from_attributes=True)


@router.get("", summary="List and search operations")
def list_operations(
    ctx: CtxDep,
    key: ApiKeyDep,
    paging: Paging,
    kind: Annotated[
        str | None, Query(max_length=32, pattern=r"^[a-z0-9_.-]+$", examples=["wallet.register"])
    ] = None,
    status: Annotated[Literal["pending", "confirmed", "failed"] | None, Query()] = None,
    idempotency_key: Annotated[
        str | None, Query(alias="key", min_length=1, max_length=200, description="the Idempotency-Key sent")
    ] = None,
) -> Page[OperationOut]:
    """Operations, by id. The reader roles list everyone's; any other key only those it requested
    (the single read's rule), so ``key`` finds one's own request by its Idempotency-Key. A key
    bound to an institution lists the requests of its institution's keys."""
    q = select(Operation)
    if key.role not in READER_ROLES:
        q = q.where(Operation.api_key_id == key.id)
    if (scoped := operations_clause(key)) is not None:
        q = q.where(scoped)
    if kind is not None:
        q = q.where(Operation.kind == kind)
    if status is not None:
        q = q.where(Operation.status == status)
    if idempotency_key is not None:
        q = q.where(Operation.idempotency_key == idempotency_key)
    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, Operation.id, paging, "operations")
        items = [OperationOut.model_validate(r, from_attributes=True) for r in rows]
    return Page[OperationOut](items=items, next_cursor=cursor, limit=paging.limit)
