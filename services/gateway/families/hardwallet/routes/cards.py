"""Cards (hard wallets): issue, load, read, report lost, return the reserve after the grace period.

A card generates its key inside its secure element; issuing it registers that key's address on
chain to the holder's personal wallet (operator key). Loading moves money from the holder's
custodial wallet into the card's reserve (the service signs approve + load for the holder); a
self-custody holder loads with their own wallet, directly on chain. A card's state (reserve,
status, loss report and grace period) is read from the chain; the gateway adds the highest counter
it has seen processed. Reporting a card lost stops payments signed after the report; payments
signed before it still settle within the grace period, after which the reserve goes back to the
holder (``return-reserve``, anyone's call on chain).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from services.common.deps import ApiKeyDep, CtxDep, IdempotencyKey, OperatorKey, OpsDep
from services.common.keys import Role
from services.common.models import ApiKey
from services.common.operations import perform
from services.common.paging import Page, Paging
from services.common.problems import Problem
from services.common.schemas import Address, OperationOut, respond
from services.gateway.families.hardwallet.schemas import CardIn, CardIssuedOut, CardOut, LoadIn
from services.gateway.families.hardwallet.service import cards as service

router = APIRouter(prefix="/v1/cards", tags=["cards"])

_CARD_READERS = (Role.OPERATOR, Role.AUDITOR, Role.REGULATOR)


def _may_read_cards(key: ApiKey) -> None:
    if key.role not in _CARD_READERS:
        raise Problem(403, "forbidden-role", "Only the operator, the auditor or the regulator read cards")


@router.post("", status_code=201, responses={202: {"model": CardIssuedOut}})
def issue_card(
    body: CardIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> CardIssuedOut:
    """Issue a card: register its key's address to the holder's personal wallet (operator)."""
    op = service.issue_card(ctx, ops, key, idem, body)
    out = respond(op, response, done_status=201)
    return CardIssuedOut(**out.model_dump(), card=body.card, holder=body.holder)


@router.post("/{card}/loads", responses={202: {"model": OperationOut}})
def load_card(
    card: Address,
    body: LoadIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Load ``amount_fen`` from the holder's custodial wallet into the card's reserve (operator).
    The card itself is credited by its issuer's top-up command once this is confirmed."""
    return respond(service.load_card(ctx, ops, key, idem, card, body.amount_fen), response)


@router.get("/{card}")
def get_card(card: Address, ctx: CtxDep, key: ApiKeyDep) -> CardOut:
    """The card's reserve, status, loss report, the highest counter seen and the offline cap (a key
    bound to an institution: its customers' cards only, 403 ``institution-scope`` otherwise)."""
    _may_read_cards(key)
    return service.read_card(ctx, key, card)


@router.post("/{card}/report-lost", responses={202: {"model": OperationOut}})
def report_lost(
    card: Address, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Report a card lost for its holder (operator of the holder's institution: 403
    ``institution-scope`` otherwise): payments signed after now never settle."""
    return respond(service.report_lost(ctx, ops, key, idem, card), response)


@router.post("/{card}/return-reserve", responses={202: {"model": OperationOut}})
def return_reserve(
    card: Address, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """After a lost card's grace period, return what remains of its reserve to the holder."""
    op, _ = perform(ops, "gateway.card.return_reserve", key, idem, {"card": card}, target=card)
    return respond(op, response)


# -- listing (issue 21: find what you created) --------------------------------------------------


@router.get("")
def list_cards(
    ctx: CtxDep,
    key: ApiKeyDep,
    paging: Paging,
    holder: Annotated[Address | None, Query()] = None,
    form: Annotated[Literal["card", "sim", "wearable"] | None, Query()] = None,
    status: Annotated[
        Literal["active", "blocked", "lost", "closed"] | None, Query(description="on chain now")
    ] = None,
) -> Page[CardOut]:
    """The cards the gateway issued, by card address, each as ``GET /v1/cards/{card}`` reads it
    (the same readers: the operator, the auditor, the regulator; a key bound to an institution
    sees its institution's customers' cards only)."""
    _may_read_cards(key)
    return service.list_cards(ctx, key, paging, holder, form, status)
