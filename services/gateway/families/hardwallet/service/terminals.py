"""Terminals: registering a merchant's terminal with its own key, reading and revoking it."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from chain.clients.token import Kind
from services.common.audit import record
from services.common.context import ServiceContext
from services.common.keys import Role, create_key
from services.common.models import ApiKey, GatewayTerminal
from services.common.paging import Page, PageQuery, paginate
from services.common.problems import Problem
from services.common.scope import check_operator_scope, read_filter
from services.gateway.families.hardwallet.schemas import CANTEEN_MCC, TerminalIn, TerminalOut


def terminal_of(ctx: ServiceContext, key: ApiKey) -> GatewayTerminal:
    """The terminal a terminal key belongs to."""
    with ctx.db.session() as s:
        row = s.scalar(select(GatewayTerminal).where(GatewayTerminal.api_key_id == key.id))
    if row is None:
        raise Problem(403, "not-a-terminal", "This key belongs to no registered terminal")
    return row


def terminal(ctx: ServiceContext, terminal_id: str) -> GatewayTerminal:
    with ctx.db.session() as s:
        row = s.get(GatewayTerminal, terminal_id)
    if row is None:
        raise Problem(404, "terminal-not-found", "Terminal not found", terminal_id)
    return row


def terminal_out(ctx: ServiceContext, row: GatewayTerminal, key: str | None = None) -> TerminalOut:
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


def register_terminal(ctx: ServiceContext, key: ApiKey, body: TerminalIn) -> TerminalOut:
    """A new terminal of a registered merchant and its key (role ``terminal``, bound to the
    merchant's wallet); the answer holds the key in clear, once."""
    wallet = ctx.cash.wallet(body.merchant)
    check_operator_scope(ctx, key, body.merchant)  # two tiers: the merchant's own institution
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
    return terminal_out(ctx, row, clear)


def list_terminals(
    ctx: ServiceContext, key: ApiKey, paging: PageQuery, merchant: str | None, category: int | None
) -> Page[TerminalOut]:
    """Terminals by id; a key bound to an institution lists its merchants' terminals only."""
    serves = read_filter(ctx, key)
    keep = None if serves is None else (lambda row: serves(row.merchant))
    q = select(GatewayTerminal)
    if merchant is not None:
        q = q.where(GatewayTerminal.merchant == merchant)
    if category is not None:
        q = q.where(GatewayTerminal.category == category)
    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, GatewayTerminal.id, paging, "terminals", keep=keep)
    return Page[TerminalOut](
        items=[terminal_out(ctx, r) for r in rows], next_cursor=cursor, limit=paging.limit
    )


def revoke_terminal(ctx: ServiceContext, key: ApiKey, terminal_id: str) -> TerminalOut:
    """Revoke the terminal's key: its uploads are refused from now on. Only the merchant's own
    institution may (403 ``institution-scope``, red team rt3)."""
    row = terminal(ctx, terminal_id)
    check_operator_scope(ctx, key, row.merchant)
    with ctx.db.session() as s:
        api_key = s.get(ApiKey, row.api_key_id)
        assert api_key is not None
        api_key.revoked = True
        s.commit()
    record(ctx.db, key, "terminal.revoke", terminal_id, outcome="revoked")
    return terminal_out(ctx, row)
