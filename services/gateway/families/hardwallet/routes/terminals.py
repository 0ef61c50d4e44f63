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

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from services.common.deps import ApiKeyDep, CtxDep, OperatorKey, require
from services.common.keys import Role
from services.common.models import ApiKey, GatewayTerminal
from services.common.paging import Page, Paging
from services.common.problems import Problem
from services.common.schemas import Address
from services.common.scope import check_read_scope
from services.gateway.families.hardwallet.schemas import TerminalIn, TerminalOut
from services.gateway.families.hardwallet.service import terminals as service

router = APIRouter(prefix="/v1/terminals", tags=["terminals"])

TerminalId = Annotated[str, Path(pattern=r"^T-[0-9A-F]{8,16}$")]

_require_terminal = require(Role.TERMINAL)
# One callable, so a route asking for both the key and its terminal authenticates once.
TerminalKey = Annotated[ApiKey, Depends(_require_terminal)]


def _terminal_key(ctx: CtxDep, key: TerminalKey) -> GatewayTerminal:
    return service.terminal_of(ctx, key)


TerminalDep = Annotated[GatewayTerminal, Depends(_terminal_key)]


@router.post("", status_code=201)
def register_terminal(body: TerminalIn, ctx: CtxDep, key: OperatorKey) -> TerminalOut:
    """Register a terminal of a registered merchant (operator). The answer holds its API key, once."""
    return service.register_terminal(ctx, key, body)


@router.get("")
def list_terminals(
    ctx: CtxDep,
    key: OperatorKey,
    paging: Paging,
    merchant: Annotated[Address | None, Query()] = None,
    category: Annotated[int | None, Query(ge=0, le=9999)] = None,
) -> Page[TerminalOut]:
    """Terminals by id, optionally of one merchant or one category (``category=5812``: the canteens)."""
    return service.list_terminals(ctx, key, paging, merchant, category)


@router.get("/{terminal_id}")
def get_terminal(terminal_id: TerminalId, ctx: CtxDep, key: ApiKeyDep) -> TerminalOut:
    """A terminal (the operator, or the terminal itself). Decided before any lookup: a key other
    than the operator's learns nothing about which terminal ids exist."""
    if key.role == Role.TERMINAL:
        own = service.terminal_of(ctx, key)
        if own.id != terminal_id:
            raise Problem(403, "not-your-terminal", "A terminal reads only itself", terminal_id)
        return service.terminal_out(ctx, own)
    if key.role != Role.OPERATOR:
        raise Problem(403, "forbidden-role", "Only the operator or the terminal itself may read it")
    row = service.terminal(ctx, terminal_id)
    check_read_scope(ctx, key, row.merchant)  # a key bound to an institution: its merchants' only
    return service.terminal_out(ctx, row)


@router.post("/{terminal_id}/revoke")
def revoke_terminal(terminal_id: TerminalId, ctx: CtxDep, key: OperatorKey) -> TerminalOut:
    """Revoke a terminal's key (a stolen or retired terminal): its uploads are refused from now on."""
    return service.revoke_terminal(ctx, key, terminal_id)
