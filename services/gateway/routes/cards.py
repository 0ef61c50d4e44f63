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

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from chain.clients.hardwallet import CardForm, CardStatus
from chain.exceptions import ContractError
from services.common.context import ServiceContext
from services.common.deps import ApiKeyDep, CtxDep, IdempotencyKey, OperatorKey, OpsDep
from services.common.keys import Role
from services.common.models import GatewayCard
from services.common.operations import Call, builder, perform
from services.common.paging import Page, Paging, paginate
from services.common.problems import Problem, contract_problem
from services.common.schemas import Address, OperationOut, respond
from services.gateway.schemas import CardIn, CardOut, LoadIn

router = APIRouter(prefix="/v1/cards", tags=["cards"])

FORMS = {"card": CardForm.CARD, "sim": CardForm.SIM, "wearable": CardForm.WEARABLE}


class CardIssuedOut(OperationOut):
    card: str = Field(description="the card's address")
    holder: str


@router.post("", status_code=201, responses={202: {"model": CardIssuedOut}})
def issue_card(
    body: CardIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> CardIssuedOut:
    """Issue a card: register its key's address to the holder's personal wallet (operator)."""

    def prepare() -> dict[str, Any]:
        with ctx.db.session() as s:
            s.add(GatewayCard(address=body.card, holder=body.holder, form=body.form, serial=body.serial))
            try:
                s.commit()
            except IntegrityError:
                raise Problem(409, "card-exists", "The card is registered already", body.card) from None
        return {}

    try:
        op, _ = perform(
            ops, "gateway.card.register", key, idem, body.model_dump(), target=body.card, prepare=prepare
        )
    except Problem as exc:
        if exc.slug != "card-exists":  # refused on chain: the card was not issued
            with ctx.db.session() as s:
                s.execute(delete(GatewayCard).where(GatewayCard.address == body.card))
                s.commit()
        raise
    out = respond(op, response, done_status=201)
    return CardIssuedOut(**out.model_dump(), card=body.card, holder=body.holder)


@builder("gateway.card.register")
def _register(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.hardwallet.contract.functions.registerCard(req["card"], req["holder"], int(FORMS[req["form"]]))
    return Call(ctx.operator, fn)


def _holder(ctx: ServiceContext, card: str) -> str:
    try:
        return ctx.hardwallet.card(card).holder
    except ContractError as exc:
        raise contract_problem(exc) from None


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
    holder = _holder(ctx, card)
    ctx.custodial(holder)  # 422 unless the service holds the holder's key
    request = {"card": card, "holder": holder, "amount_fen": body.amount_fen}
    op, _ = perform(ops, "gateway.card.load", key, idem, request, target=card)
    return respond(op, response)


@builder("gateway.card.load")
def _load(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    holder = ctx.custodial(req["holder"])
    hw = ctx.hardwallet.contract
    ctx.ensure_allowance(holder.address, hw.address, req["amount_fen"])
    return Call(holder, hw.functions.load(req["card"], req["amount_fen"]))


@router.get("/{card}")
def get_card(card: Address, ctx: CtxDep, key: ApiKeyDep) -> CardOut:
    """The card's reserve, status, loss report, the highest counter seen and the offline cap."""
    if key.role not in (Role.OPERATOR, Role.AUDITOR, Role.REGULATOR):
        raise Problem(403, "forbidden-role", "Only the operator, the auditor or the regulator read cards")
    try:
        info = ctx.hardwallet.card(card)
    except ContractError as exc:
        raise contract_problem(exc) from None
    with ctx.db.session() as s:
        row = s.get(GatewayCard, card)
    lost = info.status in (CardStatus.LOST, CardStatus.CLOSED) and info.lost_at > 0
    return CardOut(
        card=card,
        holder=info.holder,
        form=info.form.name.lower(),
        serial=row.serial if row else None,
        status=info.status.name.lower(),
        reserve_fen=info.reserve,
        loaded_fen=info.loaded,
        settled_fen=info.settled,
        refunded_fen=info.refunded,
        shortfall_fen=info.shortfall,
        lost_at=info.lost_at if lost else None,
        grace_ends_at=info.grace_ends_at if lost else None,
        last_counter_seen=row.last_counter if row else 0,
        offline_cap_fen=int(ctx.hardwallet.contract.functions.offlineCap().call()),
    )


@router.post("/{card}/report-lost", responses={202: {"model": OperationOut}})
def report_lost(
    card: Address, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Report a card lost for its holder (operator): payments signed after now never settle."""
    op, _ = perform(ops, "gateway.card.report_lost", key, idem, {"card": card}, target=card)
    return respond(op, response)


@builder("gateway.card.report_lost")
def _report_lost(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.hardwallet.contract.functions.reportLost(req["card"]))


@router.post("/{card}/return-reserve", responses={202: {"model": OperationOut}})
def return_reserve(
    card: Address, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """After a lost card's grace period, return what remains of its reserve to the holder."""
    op, _ = perform(ops, "gateway.card.return_reserve", key, idem, {"card": card}, target=card)
    return respond(op, response)


@builder("gateway.card.return_reserve")
def _return_reserve(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.hardwallet.contract.functions.returnReserve(req["card"]))


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
    (the same readers: the operator, the auditor, the regulator)."""
    if key.role not in (Role.OPERATOR, Role.AUDITOR, Role.REGULATOR):
        raise Problem(403, "forbidden-role", "Only the operator, the auditor or the regulator read cards")
    q = select(GatewayCard)
    if holder is not None:
        q = q.where(GatewayCard.holder == holder)
    if form is not None:
        q = q.where(GatewayCard.form == form)
    outs: dict[str, CardOut] = {}

    def out(row: GatewayCard) -> CardOut:
        if row.address not in outs:
            outs[row.address] = get_card(row.address, ctx, key)
        return outs[row.address]

    keep = None if status is None else (lambda row: out(row).status == status)
    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, GatewayCard.address, paging, "cards", keep=keep)
    return Page[CardOut](items=[out(r) for r in rows], next_cursor=cursor, limit=paging.limit)
