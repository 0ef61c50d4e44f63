"""Earmarked purses on cards: purse programmes (operator), funding a card's purse from the
programme's custodial funder wallet, expiring it, reading both from the chain."""

from __future__ import annotations

from chain.exceptions import ContractError
from services.common.context import ServiceContext
from services.common.models import ApiKey, Operation
from services.common.operations import Operations, perform
from services.common.problems import contract_problem
from services.gateway.families.hardwallet.schemas import (
    CardPursesOut,
    PurseFundIn,
    PurseOut,
    PurseProgrammeIn,
    PurseProgrammeOut,
)


def create_programme(ops: Operations, key: ApiKey, idem: str, body: PurseProgrammeIn) -> Operation:
    op, _ = perform(ops, "gateway.purse.programme", key, idem, body.model_dump(), target=str(body.programme))
    return op


def fund(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, card: str, body: PurseFundIn
) -> Operation:
    """The programme's funder (a custodial wallet: 422 otherwise) puts value on the card's purse."""
    funder = programme_out(ctx, body.programme).funder
    ctx.custodial(funder)
    request = {"card": card, "programme": body.programme, "funder": funder, "amount_fen": body.amount_fen}
    op, _ = perform(ops, "gateway.purse.fund", key, idem, request, target=card)
    return op


def expire(ops: Operations, key: ApiKey, idem: str, card: str, programme: int) -> Operation:
    request = {"card": card, "programme": programme}
    op, _ = perform(ops, "gateway.purse.expire", key, idem, request, target=card)
    return op


def programme_out(ctx: ServiceContext, programme: int) -> PurseProgrammeOut:
    try:
        p = ctx.hardwallet.purse_programme(programme)
    except ContractError as exc:
        raise contract_problem(exc) from None
    return PurseProgrammeOut(
        programme=p.id,
        funder=p.funder,
        per_card_cap_fen=p.per_card_cap,
        expires_at=p.expires_at,
        at_expiry="holder" if p.to_holder_at_expiry else "funder",
        categories=list(p.categories),
        funded_fen=p.funded,
        spent_fen=p.spent,
        expired_fen=p.expired,
        held_fen=p.held,
    )


def card_purses_out(ctx: ServiceContext, card: str) -> CardPursesOut:
    """The card's cash and purses in slot (spending) order, each with its programme's categories
    and expiry: what a card is synchronised from (its cash, and per purse programme, balance,
    categories, expiry) when no payment of it is waiting for upload."""
    try:
        info = ctx.hardwallet.card(card)
        purses = ctx.hardwallet.purses(card)
        terms = {p.programme: ctx.hardwallet.purse_programme(p.programme) for p in purses}
    except ContractError as exc:
        raise contract_problem(exc) from None
    now = int(ctx.w3.eth.get_block("latest")["timestamp"])
    return CardPursesOut(
        card=card,
        cash_reserve_fen=info.reserve,
        as_of=now,
        purses=[
            PurseOut(
                programme=p.programme,
                balance_fen=p.balance,
                funded_fen=p.funded,
                spent_fen=p.spent,
                expired_fen=p.expired,
                categories=list(terms[p.programme].categories),
                expires_at=terms[p.programme].expires_at,
                expired=now > terms[p.programme].expires_at,
            )
            for p in purses
        ],
    )
