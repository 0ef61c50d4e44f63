from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.common.deps import CtxDep
from services.common.settings import public_rpc_url

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(ctx: CtxDep) -> dict[str, Any]:
    """Liveness and the chain this service is on (no API key needed)."""
    try:
        latest: int | None = ctx.w3.eth.block_number
        chain_ok = True
    except Exception:
        latest, chain_ok = None, False
    return {
        "status": "ok" if chain_ok else "degraded",
        "chain": {
            "reachable": chain_ok,
            "chain_id": ctx.manifest.chain_id,
            "latest_block": latest,
            "rpc": public_rpc_url(ctx.settings.rpc_url),  # never its credentials
        },
        "contracts": {name: d.address for name, d in ctx.manifest.contracts.items()},
    }
