"""API keys and their life: created (admin), listed (admin), revoked (admin; at once: every request
reads the key's row), rotated (the admin, or the key itself), expiring when created with
``expires_at``. A key that speaks for a wallet must name a registered wallet of the right kind."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from sqlalchemy import select, update

from chain.clients.token import Kind
from services.common.audit import record
from services.common.context import ServiceContext
from services.common.deps import AdminKey, ApiKeyDep, CtxDep
from services.common.keys import Role, create_key
from services.common.models import AccessPoint, ApiKey, GatewayTerminal, Wallet, WebhookEndpoint, utcnow
from services.common.paging import Page, Paging, paginate
from services.common.problems import Problem
from services.common.schemas import Address
from services.operator.schemas import ApiKeyIn, ApiKeyInfo, ApiKeyOut

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])

KeyId = Annotated[int, Path(ge=1, lt=2**31)]


def _check_wallet(ctx: ServiceContext, role: str, wallet: str | None) -> None:
    """A merchant key names a registered merchant wallet; a checker or officer key a registered
    custodial wallet of this service (it signs with it): refused at creation, not at first use."""
    if wallet is None:
        return
    info = ctx.cash.wallet(wallet)
    if role == Role.MERCHANT:
        if not info.registered or info.kind != Kind.MERCHANT:
            raise Problem(
                422, "not-a-merchant-wallet", "A merchant key needs a registered merchant wallet", wallet
            )
        return
    with ctx.db.session() as s:
        row = s.get(Wallet, wallet)
    if not info.registered or row is None or row.custody != "custodial":
        raise Problem(
            422,
            "not-a-custodial-wallet",
            f"A {role} key needs a registered custodial wallet of this service",
            f"{wallet} is not one; register it first (POST /v1/wallets)",
        )


def _check_expiry(body: ApiKeyIn) -> None:
    if body.expires_at is not None and body.expires_at <= utcnow():
        raise Problem(422, "expiry-in-past", "The expiry is in the past", body.expires_at.isoformat())


def _info(row: ApiKey) -> ApiKeyInfo:
    now = utcnow()
    return ApiKeyInfo(
        id=row.id,
        prefix=row.prefix,
        role=row.role,
        label=row.label,
        wallet=row.wallet,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked=row.revoked,
        revoked_at=row.revoked_at,
        active=not row.revoked and (row.expires_at is None or row.expires_at > now),
    )


def _out(row: ApiKey, clear: str) -> ApiKeyOut:
    """The one answer that carries a clear key (create and rotate)."""
    return ApiKeyOut(
        id=row.id,
        role=row.role,
        label=row.label,
        wallet=row.wallet,
        institution=row.institution,
        key=clear,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED)
def create_api_key(body: ApiKeyIn, ctx: CtxDep, admin: AdminKey) -> ApiKeyOut:
    """Create a key for a role (admin only). The clear key is in this response and nowhere else."""
    _check_expiry(body)
    _check_wallet(ctx, body.role, body.wallet)
    if body.institution is not None and body.institution > ctx.institutions.count():
        raise Problem(
            404, "institution-not-found", "Institution not found", f"no institution {body.institution}"
        )
    with ctx.db.session() as s:
        row, key = create_key(s, body.role, body.label, wallet=body.wallet, institution=body.institution)
        row.expires_at = body.expires_at
        s.commit()
        out = _out(row, key)
    record(ctx.db, admin, "api-key.create", f"key {out.id} role {out.role}", outcome="created")
    return out


@router.get("")
def list_api_keys(
    ctx: CtxDep,
    _: AdminKey,
    paging: Paging,
    role: Annotated[Role | None, Query()] = None,
    include_revoked: bool = False,
    wallet: Annotated[Address | None, Query(description="keys that speak for this wallet")] = None,
) -> Page[ApiKeyInfo]:
    """Every key (admin only), by id: its id, prefix, role, wallet, expiry and state; never the key."""
    q = select(ApiKey)
    if role is not None:
        q = q.where(ApiKey.role == str(role))
    if not include_revoked:
        q = q.where(ApiKey.revoked.is_(False))
    if wallet is not None:
        q = q.where(ApiKey.wallet == wallet)
    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, ApiKey.id, paging, "api-keys")
        return Page[ApiKeyInfo](items=[_info(r) for r in rows], next_cursor=cursor, limit=paging.limit)


def _revoke(ctx: ServiceContext, key_id: int) -> ApiKey:
    with ctx.db.session() as s:
        row = s.get(ApiKey, key_id)
        if row is None:
            raise Problem(404, "api-key-not-found", "API key not found", f"no key {key_id}")
        if row.role == Role.ADMIN and not row.revoked:
            others = s.scalar(
                select(ApiKey.id).where(
                    ApiKey.role == Role.ADMIN, ApiKey.revoked.is_(False), ApiKey.id != key_id
                )
            )
            if others is None:
                raise Problem(409, "last-admin-key", "The last admin key cannot be revoked", "rotate it")
        if not row.revoked:
            row.revoked, row.revoked_at = True, utcnow()
            s.commit()
        return row


@router.post("/{key_id}/revoke")
def revoke_api_key(key_id: KeyId, ctx: CtxDep, admin: AdminKey) -> ApiKeyInfo:
    """Revoke a key (admin only). It is refused from the next request on, on both services."""
    row = _revoke(ctx, key_id)
    record(ctx.db, admin, "api-key.revoke", f"key {key_id} role {row.role}", outcome="revoked")
    return _info(row)


@router.post("/{key_id}/rotate", status_code=status.HTTP_201_CREATED)
def rotate_api_key(key_id: KeyId, ctx: CtxDep, key: ApiKeyDep) -> ApiKeyOut:
    """A new key with the old one's role, label, wallet and expiry; the old one is revoked at
    once. The admin rotates any key; any other key rotates itself only (decided before lookup)."""
    if key.role != Role.ADMIN and key.id != key_id:
        raise Problem(403, "not-yours", "A key rotates only itself", "or ask the admin")
    with ctx.db.session() as s:
        old = s.get(ApiKey, key_id)
        if old is None or old.revoked:
            raise Problem(404, "api-key-not-found", "API key not found", f"no active key {key_id}")
        row, clear = create_key(s, Role(old.role), old.label, wallet=old.wallet, institution=old.institution)
        row.expires_at = old.expires_at
        old.revoked, old.revoked_at = True, utcnow()
        for table in (GatewayTerminal, AccessPoint):  # a terminal or door reader keeps its identity
            s.execute(update(table).where(table.api_key_id == old.id).values(api_key_id=row.id))
        # its webhook endpoints too (a revoked key's endpoints receive nothing)
        s.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.created_by == old.id).values(created_by=row.id)
        )
        s.commit()
        out = _out(row, clear)
    record(ctx.db, key, "api-key.rotate", f"key {key_id} -> key {out.id} role {out.role}", outcome="rotated")
    return out
