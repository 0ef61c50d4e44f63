"""Cards: issuing (a row, then the chain), loading from the holder's custodial wallet, reading."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from chain.clients.hardwallet import CardStatus
from chain.clients.token import Kind
from chain.exceptions import ContractError
from services.common.context import ServiceContext, refuse_retired
from services.common.models import ApiKey, GatewayCard, Operation
from services.common.operations import Operations, perform
from services.common.paging import Page, PageQuery, paginate
from services.common.problems import Problem, contract_problem
from services.common.scope import check_operator_scope, check_read_scope, read_filter
from services.gateway.families.hardwallet.schemas import CardIn, CardOut


def issue_card(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, body: CardIn) -> Operation:
    """Record the card, then register it on chain; a refusal on chain removes the record again
    (the card was not issued), so the same card may be issued later. Never to a retired holder."""
    # Two tiers: a card pays from its holder's wallet, so only the holder's own institution issues
    # one (red team: institution 2 issued a card it held the key of to institution 1's customer,
    # then its terminal captured pre-authorisations from that customer's wallet).
    check_operator_scope(ctx, key, body.holder)
    refuse_retired(ctx, body.holder, "card holder")
    refuse_card_key(ctx, body.card, body.holder)

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
    return op


def refuse_card_key(ctx: ServiceContext, card: str, holder: str) -> None:
    """A card's address is the key inside its secure element, which signs its offline payments:
    never the holder's own wallet (422 ``card-is-holder``), another registered wallet (a merchant,
    an institution, a person: 422 ``card-is-wallet``) or a contract (code at the address, 422
    ``card-is-contract``: no secure element holds a contract's key, and a contract is no key at
    all). The contract admits any non-zero address (red team, LOW: a card was registered with a
    contract's address and with its holder's wallet address)."""
    if card == holder:
        raise Problem(
            422,
            "card-is-holder",
            "A card's key cannot be its holder's wallet",
            f"{card} is the holder's wallet; a card has a key of its own, made in its secure element",
        )
    own = (ctx.operator, ctx.regulator, ctx.second_regulator, ctx.admin)
    if int(card, 16) <= 0xFFFF or card in {k.address for k in own if k is not None}:
        # a precompile's address, or a key this service signs with: whoever holds that key (the
        # service, anyone on a development chain) could sign the card's payments (red team, LOW)
        raise Problem(
            422,
            "card-key-reserved",
            "A card's key cannot be the platform's own account or a precompile",
            f"{card} is reserved",
        )
    if ctx.w3.eth.get_code(card):  # type: ignore[arg-type]
        raise Problem(422, "card-is-contract", "A card's key cannot be a contract", f"{card} holds code")
    if ctx.cash.kind_of(card) != Kind.NONE:
        raise Problem(
            422,
            "card-is-wallet",
            "A card's key cannot be a registered wallet",
            f"{card} is a registered {ctx.cash.kind_of(card).name.lower()} wallet",
        )


def load_card(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, card: str, amount: int
) -> Operation:
    """Load ``amount`` from the card holder's custodial wallet into its reserve."""
    holder = holder_of(ctx, card)
    ctx.custodial(holder)  # 422 unless the service holds the holder's key
    request = {"card": card, "holder": holder, "amount_fen": amount}
    op, _ = perform(ops, "gateway.card.load", key, idem, request, target=card)
    return op


def report_lost(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, card: str) -> Operation:
    """Report ``card`` lost for its holder: only the holder's own institution may (two tiers)."""
    check_operator_scope(ctx, key, holder_of(ctx, card))
    op, _ = perform(ops, "gateway.card.report_lost", key, idem, {"card": card}, target=card)
    return op


def holder_of(ctx: ServiceContext, card: str) -> str:
    """The holder of a registered card (the contract's refusal of an unknown card, as a problem)."""
    try:
        return ctx.hardwallet.card(card).holder
    except ContractError as exc:
        raise contract_problem(exc) from None


def card_out(ctx: ServiceContext, card: str) -> CardOut:
    """The card as the chain holds it, with the highest counter the gateway saw processed."""
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
        offline_cap_fen=ctx.hardwallet.offline_cap(),
    )


def read_card(ctx: ServiceContext, key: ApiKey, card: str) -> CardOut:
    """``card``'s state for ``key``: a key bound to an institution reads only the cards of the
    customers its institution serves (403 ``institution-scope``, red team rt3)."""
    check_read_scope(ctx, key, holder_of(ctx, card))
    return card_out(ctx, card)


def list_cards(
    ctx: ServiceContext,
    key: ApiKey,
    paging: PageQuery,
    holder: str | None,
    form: str | None,
    status: str | None,
) -> Page[CardOut]:
    """The cards the gateway issued, by address; ``status`` (on chain now) is filtered as the
    pages are read, each card read from the chain once. A key bound to an institution lists only
    the cards of its institution's customers (by the holder recorded at issue)."""
    q = select(GatewayCard)
    if holder is not None:
        q = q.where(GatewayCard.holder == holder)
    if form is not None:
        q = q.where(GatewayCard.form == form)
    outs: dict[str, CardOut] = {}

    def out(row: GatewayCard) -> CardOut:
        if row.address not in outs:
            outs[row.address] = card_out(ctx, row.address)
        return outs[row.address]

    serves = read_filter(ctx, key)

    def kept(row: GatewayCard) -> bool:
        if serves is not None and not serves(row.holder):
            return False
        return status is None or out(row).status == status

    keep = None if serves is None and status is None else kept  # None: no row is left out

    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, GatewayCard.address, paging, "cards", keep=keep)
    return Page[CardOut](items=[out(r) for r in rows], next_cursor=cursor, limit=paging.limit)
