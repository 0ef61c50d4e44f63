from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path

from services.common.deps import ApiKeyDep, CtxDep, OpsDep, reader_or_owner
from services.common.problems import Problem
from services.common.schemas import OperationOut
from services.common.scope import check_operation_scope
from services.common.settings import public_rpc_url

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(ctx: CtxDep) -> dict[str, Any]:
    """Liveness and the chain this gateway is on (no API key needed)."""
    try:
        latest: int | None = ctx.w3.eth.block_number
        chain_ok = True
    except Exception:
        latest, chain_ok = None, False
    return {
        "status": "ok" if chain_ok else "degraded",
        "service": "gateway",
        "chain": {
            "reachable": chain_ok,
            "chain_id": ctx.manifest.chain_id,
            "latest_block": latest,
            "rpc": public_rpc_url(ctx.settings.rpc_url),  # never its credentials
        },
        "contracts": {
            name: ctx.manifest.contracts[name].address
            for name in ("DigitalCash", "HardWalletSettlement", "QuickPay", "DevicePayments")
            if name in ctx.manifest.contracts
        },
    }


@router.get("/v1/operations/{operation_id}", tags=["operations"])
def get_operation(
    operation_id: Annotated[str, Path(max_length=36)], ctx: CtxDep, ops: OpsDep, key: ApiKeyDep
) -> OperationOut:
    """Any state-changing request's state: pending, confirmed, or failed with the decoded error."""
    try:
        uuid.UUID(operation_id)
    except ValueError:
        raise Problem(404, "operation-not-found", "Operation not found", operation_id) from None
    op = ops.get(operation_id)
    reader_or_owner(key, op.api_key_id == key.id)  # a merchant, officer or terminal: its own requests
    check_operation_scope(ctx, key, op)  # a key bound to an institution: its institution's keys' only
    return OperationOut.model_validate(op, from_attributes=True)
