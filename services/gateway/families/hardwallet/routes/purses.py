"""Earmarked purses on cards (养老支付凭证, meal allowances): purse programmes and the purses a
card holds beside its cash reserve (contracts/hardwallet/CardPurses.sol).

The operator creates a programme (its funder wallet, the merchant categories it may be spent at, a
per-card cap, an expiry and where unspent value goes then). The funder's custodial wallet funds a
card's purse; an offline payment at a merchant of an allowed category spends the purse before the
card's cash. After expiry, ``expire`` sends what is left to the funder (or the holder).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from services.common.deps import ApiKeyDep, CtxDep, IdempotencyKey, OperatorKey, OpsDep
from services.common.keys import Role
from services.common.models import ApiKey
from services.common.problems import Problem
from services.common.schemas import Address, OperationOut, respond
from services.common.scope import check_operator_scope, check_read_scope
from services.gateway.families.hardwallet.schemas import (
    CardPursesOut,
    PurseFundIn,
    PurseProgrammeIn,
    PurseProgrammeOut,
)
from services.gateway.families.hardwallet.service import purses as service
from services.gateway.families.hardwallet.service.cards import holder_of

router = APIRouter(tags=["purses"])

_READERS = (Role.OPERATOR, Role.AUDITOR, Role.REGULATOR)
ProgrammeId = Annotated[int, Path(ge=1, lt=2**32)]


def _may_read(key: ApiKey) -> None:
    if key.role not in _READERS:
        raise Problem(403, "forbidden-role", "Only the operator, the auditor or the regulator read purses")


@router.post("/v1/purse-programmes", status_code=201, responses={202: {"model": OperationOut}})
def create_programme(
    body: PurseProgrammeIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Create a purse programme (operator). Its funder must be a customer of the key's institution
    (403 ``institution-scope``, red team rt3: institution 2 named institution 1's wallet)."""
    check_operator_scope(ctx, key, body.funder)
    return respond(service.create_programme(ops, key, idem, body), response, done_status=201)


@router.get("/v1/purse-programmes/{programme}")
def get_programme(programme: ProgrammeId, ctx: CtxDep, key: ApiKeyDep) -> PurseProgrammeOut:
    """A purse programme and its totals: funded == spent + expired + held."""
    _may_read(key)
    out = service.programme_out(ctx, programme)
    check_read_scope(ctx, key, out.funder)  # a key bound to an institution: its funders' only
    return out


@router.post("/v1/cards/{card}/purses", responses={202: {"model": OperationOut}})
def fund_purse(
    card: Address,
    body: PurseFundIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Put ``amount_fen`` of programme ``programme`` on the card's purse, from the programme's
    custodial funder wallet (operator)."""
    return respond(service.fund(ctx, ops, key, idem, card, body), response)


@router.get("/v1/cards/{card}/purses")
def card_purses(card: Address, ctx: CtxDep, key: ApiKeyDep) -> CardPursesOut:
    """The card's purses in spending order, beside its cash reserve."""
    _may_read(key)
    check_read_scope(ctx, key, holder_of(ctx, card))  # its institution's customers' cards only
    return service.card_purses_out(ctx, card)


@router.post("/v1/cards/{card}/purses/{programme}/expire", responses={202: {"model": OperationOut}})
def expire_purse(
    card: Address,
    programme: ProgrammeId,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """After the programme's expiry, send what is left on the card's purse to the funder (or the
    holder, as the programme says) (operator; anyone may on chain)."""
    return respond(service.expire(ops, key, idem, card, programme), response)
