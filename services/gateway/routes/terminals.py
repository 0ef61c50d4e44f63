"""Terminals: a merchant's offline payment terminals, each with its own API key.

The operator registers a terminal for a registered merchant at a location; the answer holds the
terminal's API key (role ``terminal``, bound to the merchant's wallet), shown once. The terminal
authenticates every upload with it, and may only upload payments to its own merchant.

Canteens: a canteen terminal is simply a terminal of a merchant registered with the canteen
category (MCC 5812, ``canteen: true`` here). The terminal settles card payments like any other;
a union-welfare voucher programme restricted to MCC 5812 (contracts/vouchers) pays the same
merchant for meals, because the voucher contract checks the merchant's category on chain: the
gateway needs no voucher path of its own for the two to compose.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import select

from chain.clients.token import Kind
from services.common.audit import record
from services.common.context import ServiceContext
from services.common.deps import ApiKeyDep, CtxDep, OperatorKey, require
from services.common.keys import Role, create_key
from services.common.models import ApiKey, GatewayTerminal
from services.common.paging import Page, Paging, paginate
from services.common.problems import Problem
from services.common.schemas import Address
from services.gateway.schemas import CANTEEN_MCC, TerminalIn, TerminalOut

router = APIRouter(prefix="/v1/terminals", tags=["terminals"])

TerminalId = Annotated[str, Path(pattern=r"^T-[0-9A-F]{8,16}$")]


def terminal_of(ctx: ServiceContext, key: ApiKey) -> GatewayTerminal:
    """The terminal a terminal key belongs to."""
    with ctx.db.session() as s:
        row = s.scalar(select(GatewayTerminal).where(GatewayTerminal.api_key_id == key.id))
    if row is None:
        raise Problem(403, "not-a-terminal", "This key belongs to no registered terminal")
    return row


_require_terminal = require(Role.TERMINAL)
# One callable, so a route asking for both the key and its terminal authenticates once.
TerminalKey = Annotated[ApiKey, Depends(_require_terminal)]


def _terminal_key(ctx: CtxDep, key: TerminalKey) -> GatewayTerminal:
    return terminal_of(ctx, key)


TerminalDep = Annotated[GatewayTerminal, Depends(_terminal_key)]


def _out(ctx: ServiceContext, row: GatewayTerminal, key: str | None = None) -> TerminalOut:
    with ctx.db.session() as s:
        api_key = s.get(ApiKey, row.api_key_id)
    return TerminalOut(
        id=row.id,
        merchant=row.merchant,
        category=row.category,
        canteen=row.category == CANTEEN_MCC,
        location=row.location,
        revoked=bool(api_key and api_key.revoked),
        created_at=row.created_at,
        key=key,
    )


@router.post("", status_code=201)
def register_terminal(body: TerminalIn, ctx: CtxDep, key: OperatorKey) -> TerminalOut:
    """Register a terminal of a registered merchant (operator). The answer holds its API key, once."""
    wallet = ctx.cash.wallet(body.merchant)
    if wallet.kind != Kind.MERCHANT:
        raise Problem(422, "not-a-merchant-wallet", "Not a registered merchant wallet", body.merchant)
    terminal_id = f"T-{secrets.token_hex(5).upper()}"
    with ctx.db.session() as s:
        api_key, clear = create_key(s, Role.TERMINAL, f"terminal {terminal_id}", wallet=body.merchant)
        row = GatewayTerminal(
            id=terminal_id,
            merchant=body.merchant,
            category=wallet.category,
            location=body.location,
            api_key_id=api_key.id,
        )
        s.add(row)
        s.commit()
    record(ctx.db, key, "terminal.register", f"{terminal_id} of {body.merchant}", outcome="created")
    return _out(ctx, row, clear)


@router.get("")
def list_terminals(
    ctx: CtxDep,
    _: OperatorKey,
    paging: Paging,
    merchant: Annotated[Address | None, Query()] = None,
    category: Annotated[int | None, Query(ge=0, le=9999)] = None,
) -> Page[TerminalOut]:
    """Terminals by id, optionally of one merchant or one category (``category=5812``: the canteens)."""
    q = select(GatewayTerminal)
    if merchant is not None:
        q = q.where(GatewayTerminal.merchant == merchant)
    if category is not None:
        q = q.where(GatewayTerminal.category == category)
    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, GatewayTerminal.id, paging, "terminals")
    return Page[TerminalOut](items=[_out(ctx, r) for r in rows], next_cursor=cursor, limit=paging.limit)


def _get(ctx: ServiceContext, terminal_id: str) -> GatewayTerminal:
    with ctx.db.session() as s:
        row = s.get(GatewayTerminal, terminal_id)
    if row is None:
        raise Problem(404, "terminal-not-found", "Terminal not found", terminal_id)
    return row


@router.get("/{terminal_id}")
def get_terminal(terminal_id: TerminalId, ctx: CtxDep, key: ApiKeyDep) -> TerminalOut:
    """A terminal (the operator, or the terminal itself). Decided before any lookup: a key other
    than the operator's learns nothing about which terminal ids exist."""
    if key.role == Role.TERMINAL:
        own = terminal_of(ctx, key)
        if own.id != terminal_id:
            raise Problem(403, "not-your-terminal", "A terminal reads only itself", terminal_id)
        return _out(ctx, own)
    if key.role != Role.OPERATOR:
        raise Problem(403, "forbidden-role", "Only the operator or the terminal itself may read it")
    return _out(ctx, _get(ctx, terminal_id))


@router.post("/{terminal_id}/revoke")
def revoke_terminal(terminal_id: TerminalId, ctx: CtxDep, key: OperatorKey) -> TerminalOut:
    """Revoke a terminal's key (a stolen or retired terminal): its uploads are refused from now on."""
    row = _get(ctx, terminal_id)
    with ctx.db.session() as s:
        api_key = s.get(ApiKey, row.api_key_id)
        assert api_key is not None
        api_key.revoked = True
        s.commit()
    record(ctx.db, key, "terminal.revoke", terminal_id, outcome="revoked")
    return _out(ctx, row)
