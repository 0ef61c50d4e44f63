from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from services.common.deps import ApiKeyDep, OpsDep, reader_or_owner
from services.common.problems import Problem
from services.common.schemas import OperationOut

router = APIRouter(prefix="/v1/operations", tags=["operations"])


@router.get("/{operation_id}")
def get_operation(
    operation_id: Annotated[str, Path(max_length=36)], ops: OpsDep, key: ApiKeyDep
) -> OperationOut:
    """Any money-moving request's state: pending, confirmed, or failed with the decoded error."""
    try:
        uuid.UUID(operation_id)
    except ValueError:
        raise Problem(
            404, "operation-not-found", "Operation not found", f"{operation_id!r} is not an operation id"
        ) from None
    op = ops.get(operation_id)
    reader_or_owner(key, op.api_key_id == key.id)  # a merchant, officer or terminal: its own requests
    return OperationOut.model_validate(op, from_attributes=True)
