from __future__ import annotations

from fastapi import APIRouter, status

from services.common.audit import record
from services.common.deps import AdminKey, CtxDep
from services.common.keys import create_key
from services.operator.schemas import ApiKeyIn, ApiKeyOut

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_api_key(body: ApiKeyIn, ctx: CtxDep, admin: AdminKey) -> ApiKeyOut:
    """Create a key for a role (admin only). The clear key is in this response and nowhere else."""
    with ctx.db.session() as s:
        row, key = create_key(s, body.role, body.label, wallet=body.wallet)
        s.commit()
        out = ApiKeyOut(
            id=row.id, role=row.role, label=row.label, wallet=row.wallet, key=key, created_at=row.created_at
        )
    record(ctx.db, admin, "api-key.create", f"key {out.id} role {out.role}", outcome="created")
    return out
