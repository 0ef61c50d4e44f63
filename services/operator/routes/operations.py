from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from services.common.deps import ApiKeyDep, OpsDep
from services.common.problems import Problem
from services.common.schemas import OperationOut

router = APIRouter(prefix="/v1/operations", tags=["operations"])


@router.get("/{operation_id}")
def get_operation(
    operation_id: Annotated[str, Path(max_length=36)], ops: OpsDep, _: ApiKeyDep
) -> OperationOut:
    """Any money-moving request's state: pending, confirmed, or failed with the decoded error."""
    try:
        uuid.UUID(operation_id)
    except ValueError:
        raise Problem(
            404, "operation-not-found", "Operation not found", f"{operation_id!r} is not an operation id"
        ) from None
    return OperationOut.model_validate(ops.get(operation_id), from_attributes=True)
