from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from chain.clients.token import UNLIMITED, Kind
from services.common.context import ServiceContext
from services.common.deps import (
    READER_ROLES,
    ApiKeyDep,
    CtxDep,
    IdempotencyKey,
    OperatorKey,
    OpsDep,
    officer_of_payer,
    reader_or_owner,
)
from services.common.models import Wallet
from services.common.operations import Call, builder, perform
from services.common.paging import Page, Paging, paginate
from services.common.problems import Problem
from services.common.schemas import Address, OperationOut, respond
from services.operator.schemas import Limits, WalletIn, WalletOut

router = APIRouter(prefix="/v1/wallets", tags=["wallets"])

KINDS = {"personal": Kind.PERSONAL, "merchant": Kind.MERCHANT, "institution": Kind.INSTITUTION}


def identity_hash(pepper: str, identity: str) -> str:
    return "0x" + hmac.new(pepper.encode(), identity.encode(), hashlib.sha256).hexdigest()


class WalletCreatedOut(OperationOut):
    address: str | None = Field(default=None, description="the new wallet's address (also request.address)")


@router.post("", status_code=201, responses={202: {"model": WalletCreatedOut}})
def create_wallet(
    body: WalletIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> WalletCreatedOut:
    """Register a person, merchant or institution. Custodial: the service creates the key in an
    encrypted keystore. Self-custody: the caller supplies the address."""
    request = body.model_dump(exclude={"identity", "address"})
    request["identity_hash"] = identity_hash(
        ctx.settings.identity_pepper, body.identity
    )  # never the identity
    if body.address is not None:
        request["address"] = body.address
        with ctx.db.session() as s:
            if s.get(Wallet, body.address) is not None:
                raise Problem(409, "wallet-already-registered", "Wallet already registered", body.address)

    def prepare() -> dict[str, Any]:
        if body.custody == "custodial":
            address, keystore = ctx.custody.create()
        else:
            address, keystore = body.address, None  # type: ignore[assignment]
        with ctx.db.session() as s:
            s.add(
                Wallet(
                    address=address,
                    kind=body.kind,
                    tier=body.tier,
                    category=body.merchant_category,
                    display_name=body.display_name,
                    identity_hash=request["identity_hash"],
                    custody=body.custody,
                    keystore=keystore,
                )
            )
            s.commit()
        return {"address": address}

    op, _ = perform(ops, "wallet.register", key, idem, request, target=body.display_name, prepare=prepare)
    out = respond(op, response, done_status=201)
    return WalletCreatedOut(**out.model_dump(), address=op.request.get("address"))


@builder("wallet.register")
def _register(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    address = req["address"]
    topup = ctx.settings.gas_topup_wei
    if req["custody"] == "custodial" and topup > 0 and ctx.w3.eth.get_balance(address) < topup // 2:
        ctx.tx.send_value(ctx.operator, address, topup)  # gas money, so the wallet can sign
    fn = ctx.cash.registry.functions.register(
        address,
        int(KINDS[req["kind"]]),
        req["tier"],
        req["merchant_category"],
        bytes.fromhex(req["identity_hash"][2:]),
    )
    return Call(ctx.operator, fn)


@router.get("/{address}")
def get_wallet(address: Address, ctx: CtxDep, key: ApiKeyDep) -> WalletOut:
    """Balance, tier, limits, what is left of today's cap, frozen flag (read from the chain).
    The reader roles read any wallet; a key bound to a wallet reads only that one, and a checker
    key also the payers it is an officer of."""
    reader_or_owner(key, key.wallet == address or officer_of_payer(ctx, key, address))
    info = ctx.cash.wallet(address)
    with ctx.db.session() as s:
        row = s.get(Wallet, address)
    if not info.registered and row is None:
        raise Problem(
            404, "wallet-not-found", "Wallet not found", f"{address} is neither registered nor known"
        )
    spent = ctx.cash.spent_today(address)

    def cap(v: int) -> int | None:
        return None if v == UNLIMITED else v

    limits = info.limits
    remaining = None if limits is None or limits.daily_cap == UNLIMITED else max(0, limits.daily_cap - spent)
    return WalletOut(
        address=address,
        kind=info.kind.name.lower() if info.registered else (row.kind if row else "none"),
        tier=info.tier,
        merchant_category=info.category,
        display_name=row.display_name if row else None,
        custody=row.custody if row else None,
        registered=info.registered,
        frozen=info.frozen,
        balance_fen=ctx.cash.balance_of(address),
        limits=Limits(
            balance_cap_fen=cap(limits.balance_cap),
            payment_cap_fen=cap(limits.payment_cap),
            daily_cap_fen=cap(limits.daily_cap),
        )
        if limits
        else None,
        spent_today_fen=spent,
        remaining_today_fen=remaining,
    )


# -- listing (issue 21: find what you created) --------------------------------------------------


class WalletItem(BaseModel):
    """A wallet as a listing shows it: the operator's record and the chain's frozen flag."""

    address: str
    kind: str
    tier: int
    merchant_category: int
    display_name: str
    custody: str
    frozen: bool
    created_at: datetime


@router.get("", summary="List and search wallets")
def list_wallets(
    ctx: CtxDep,
    key: ApiKeyDep,
    paging: Paging,
    kind: Annotated[Literal["personal", "merchant", "institution"] | None, Query()] = None,
    tier: Annotated[int | None, Query(ge=0, le=255)] = None,
    identity: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="the identity given at registration, hashed as then (lookup by identity)",
        ),
    ] = None,
    name: Annotated[
        str | None, Query(min_length=1, max_length=200, description="part of the display name, any case")
    ] = None,
    frozen: Annotated[bool | None, Query(description="frozen on chain now")] = None,
    custody: Annotated[Literal["custodial", "self"] | None, Query()] = None,
) -> Page[WalletItem]:
    """The registered wallets, by address. The reader roles list every wallet; any other key only
    its own (the single read's rule, ``reader_or_owner``). The identity is a query parameter, never
    in the path, so the access log (which never writes the query) never holds it."""
    q = select(Wallet)
    if key.role not in READER_ROLES:
        reader_or_owner(key, key.wallet is not None)  # a key that speaks for no wallet reads none
        q = q.where(Wallet.address == key.wallet)
    if kind is not None:
        q = q.where(Wallet.kind == kind)
    if tier is not None:
        q = q.where(Wallet.tier == tier)
    if identity is not None:
        q = q.where(Wallet.identity_hash == identity_hash(ctx.settings.identity_pepper, identity))
    if name is not None:
        q = q.where(func.lower(Wallet.display_name).contains(name.lower(), autoescape=True))
    if custody is not None:
        q = q.where(Wallet.custody == custody)
    states: dict[str, bool] = {}

    def frozen_now(row: Wallet) -> bool:
        if row.address not in states:
            _, _, states[row.address], _, _ = ctx.cash.tx.call(
                ctx.cash.registry.functions.walletOf(row.address)
            )
        return states[row.address]

    keep = None if frozen is None else (lambda row: frozen_now(row) == frozen)
    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, Wallet.address, paging, "wallets", keep=keep)
    items = [
        WalletItem(
            address=r.address,
            kind=r.kind,
            tier=r.tier,
            merchant_category=r.category,
            display_name=r.display_name,
            custody=r.custody,
            frozen=frozen_now(r),
            created_at=r.created_at,
        )
        for r in rows
    ]
    return Page[WalletItem](items=items, next_cursor=cursor, limit=paging.limit)
