"""The cash family's HTTP routes: wallets (register, read, list), issuance, redemption and
transfers of digital cash, and the regulator's actions. Thin: validate, authorise, call
``service``, answer."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from services.common.deps import (
    READER_ROLES,
    AdminKey,
    ApiKeyDep,
    CtxDep,
    IdempotencyKey,
    IndexerDep,
    OperatorKey,
    OperatorOrRegulatorKey,
    OpsDep,
    ReaderKey,
    RegulatorKey,
    RegulatorOrAuditorKey,
    reader_or_owner,
)
from services.common.paging import Page, Paging
from services.common.schemas import Address, OperationOut, event_arg, respond
from services.common.scope import check_read_any, check_read_scope, read_filter
from services.operator.families.cash import service
from services.operator.families.cash.recovery import Swept
from services.operator.families.cash.schemas import (
    CourtOrderIn,
    CourtOrderOut,
    CourtOrderProposedOut,
    HoldIn,
    HoldOut,
    HoldPlacedOut,
    HoldsOut,
    IssuanceIn,
    PersonalWalletLimitIn,
    PersonalWalletLimitOut,
    RecoveryApprovedOut,
    RecoveryHoldingsOut,
    RecoveryIn,
    RecoveryMoveRefused,
    RecoveryOut,
    RecoveryProposedOut,
    RedemptionIn,
    TransferIn,
    WalletBatchIn,
    WalletBatchOut,
    WalletCreatedOut,
    WalletIn,
    WalletItem,
    WalletOut,
    WalletRef,
)
from services.operator.families.disburse.officers import officer_of_payer

# -- wallets -------------------------------------------------------------------------------------

wallets = APIRouter(prefix="/v1/wallets", tags=["wallets"])


@wallets.post("", status_code=201, responses={202: {"model": WalletCreatedOut}})
def create_wallet(
    body: WalletIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> WalletCreatedOut:
    """Register a person, merchant or institution. Custodial: the service creates the key in an
    encrypted keystore. Self-custody: the caller supplies the address."""
    op = service.register_wallet(ctx, ops, key, idem, body)
    out = respond(op, response, done_status=201)
    return WalletCreatedOut(**out.model_dump(), address=op.request.get("address"))


@wallets.post("/batch", status_code=201, responses={202: {"model": WalletBatchOut}})
def create_wallets(
    body: WalletBatchIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> WalletBatchOut:
    """Register many wallets at once (up to 10,000), each as ``POST /v1/wallets`` would: on chain
    200 to a transaction (``registerBatch``), each group of 200 all or nothing and its own
    operation (idempotency key ``<key>#<n>``), so a replay with the same key and body answers the
    same wallets. Rows are checked together first: every bad row is reported with its 1-based
    ``row`` in one 422, and nothing is registered. 201 when every group is confirmed, else 202."""
    out = service.register_wallets(ctx, ops, key, idem, body)
    response.status_code = 201 if out.status == "confirmed" else 202
    return out


@wallets.get("/{address}")
def get_wallet(address: Address, ctx: CtxDep, key: ApiKeyDep) -> WalletOut:
    """Balance, tier, limits, what is left of today's cap, frozen flag (read from the chain).
    The reader roles read any wallet; a key bound to a wallet reads only that one, and a checker
    key also the payers it is an officer of. A key bound to an institution reads only the wallets
    its institution serves (403 ``institution-scope``)."""
    reader_or_owner(key, key.wallet == address or officer_of_payer(ctx, key, address))
    check_read_scope(ctx, key, address)
    return service.wallet_out(ctx, address)


@wallets.get("", summary="List and search wallets")
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
    its own (the single read's rule, ``reader_or_owner``); a key bound to an institution the
    wallets its institution serves. The identity is a query parameter, never in the path, so the
    access log (which never writes the query) never holds it."""
    only = None
    if key.role not in READER_ROLES:
        reader_or_owner(key, key.wallet is not None)  # a key that speaks for no wallet reads none
        only = key.wallet
    return service.list_wallets(
        ctx,
        paging,
        only=only,
        kind=kind,
        tier=tier,
        identity=identity,
        name=name,
        frozen=frozen,
        custody=custody,
        serves=read_filter(ctx, key),
    )


# -- issuance, redemption, transfers -------------------------------------------------------------

cash = APIRouter(prefix="/v1", tags=["cash"])


@cash.post("/issuance", responses={202: {"model": OperationOut}})
def issue(
    body: IssuanceIn, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Mint ``amount_fen`` into a registered wallet."""
    return respond(service.issue(ops, key, idem, body), response)


@cash.post("/redemptions", responses={202: {"model": OperationOut}})
def redeem(
    body: RedemptionIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Burn ``amount_fen`` from a custodial wallet (it approves the issuer, the issuer redeems)."""
    return respond(service.redeem(ctx, ops, key, idem, body), response)


@cash.post("/transfers", responses={202: {"model": OperationOut}})
def transfer(
    body: TransferIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Move cash from a custodial wallet to any registered wallet."""
    return respond(service.transfer(ctx, ops, key, idem, body), response)


# -- the regulator: freeze and unfreeze wallets, pause and unpause the system ---------------------

regulator = APIRouter(prefix="/v1/regulator", tags=["regulator"])


@regulator.post("/freeze", responses={202: {"model": OperationOut}})
def freeze(
    body: WalletRef, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    return respond(service.regulate(ops, key, idem, "freeze", body), response)


@regulator.post("/unfreeze", responses={202: {"model": OperationOut}})
def unfreeze(
    body: WalletRef, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    return respond(service.regulate(ops, key, idem, "unfreeze", body), response)


@regulator.post("/pause", responses={202: {"model": OperationOut}})
def pause(ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response) -> OperationOut:
    return respond(service.regulate(ops, key, idem, "pause"), response)


@regulator.post("/unpause", responses={202: {"model": OperationOut}})
def unpause(ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response) -> OperationOut:
    return respond(service.regulate(ops, key, idem, "unpause"), response)


# -- one person, one identity; holds, court orders, recovery (issue 22) -------------------------


@regulator.post("/holds", status_code=201, responses={202: {"model": HoldPlacedOut}})
def place_hold(
    body: HoldIn, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> HoldPlacedOut:
    """Hold ``amount_fen`` of a wallet (judicial freeze, AML hold) with a reason and a case
    number: the held amount cannot move by any path (``amount-frozen``), the rest can. The answer
    names the hold's id (``hold_id``, from its ``HoldPlaced`` event)."""
    op = service.place_hold(ops, key, idem, body)
    out = respond(op, response, done_status=201)
    return HoldPlacedOut(**out.model_dump(), hold_id=event_arg(op, "HoldPlaced", "holdId"))


@regulator.get("/holds")
def list_holds(ctx: CtxDep, key: ReaderKey, wallet: Annotated[Address, Query()]) -> HoldsOut:
    """The active holds on ``wallet`` and their total (read from the chain). A key bound to an
    institution: its customers' only (403 ``institution-scope``)."""
    check_read_scope(ctx, key, wallet)
    return service.holds_of(ctx, wallet)


@regulator.get("/holds/{hold_id}")
def get_hold(hold_id: Annotated[int, Path(ge=1, lt=2**255)], ctx: CtxDep, key: ReaderKey) -> HoldOut:
    hold = service.hold(ctx, hold_id)
    check_read_scope(ctx, key, hold.wallet)  # a key bound to an institution: its customers' holds
    return hold


@regulator.post("/holds/{hold_id}/lift", responses={202: {"model": OperationOut}})
def lift_hold(
    hold_id: Annotated[int, Path(ge=1, lt=2**255)],
    ctx: CtxDep,
    ops: OpsDep,
    key: RegulatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Lift a hold whole: its amount is free again."""
    return respond(service.lift_hold(ctx, ops, key, idem, hold_id), response)


@regulator.post("/court-orders", status_code=201, responses={202: {"model": CourtOrderProposedOut}})
def propose_court_order(
    body: CourtOrderIn, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> CourtOrderProposedOut:
    """The maker's half of a forced transfer for a court order (bounded by its amount, executed
    against a hold when ``hold_id`` is given), signed with the first regulator key. Nothing moves
    until another regulator approves it."""
    op = service.propose_court_order(ops, key, idem, body)
    out = respond(op, response, done_status=201)
    return CourtOrderProposedOut(**out.model_dump(), order_id=event_arg(op, "CourtOrderProposed", "id"))


@regulator.get("/court-orders/{order_id}", response_model_by_alias=True)
def get_court_order(
    order_id: Annotated[int, Path(ge=1, lt=2**255)], ctx: CtxDep, key: ReaderKey
) -> CourtOrderOut:
    order = service.court_order(ctx, order_id)
    check_read_any(ctx, key, order.from_wallet)  # a key bound to an institution: its customers' orders
    return order


@regulator.post("/court-orders/{order_id}/approve", responses={202: {"model": OperationOut}})
def approve_court_order(
    order_id: Annotated[int, Path(ge=1, lt=2**255)],
    ctx: CtxDep,
    ops: OpsDep,
    key: RegulatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """The checker's half: a regulator API key other than the maker's (``checker-is-maker``
    otherwise), signed with the service's second regulator key; the amount moves now."""
    return respond(service.approve_court_order(ctx, ops, key, idem, order_id), response)


@regulator.post("/court-orders/{order_id}/cancel", responses={202: {"model": OperationOut}})
def cancel_court_order(
    order_id: Annotated[int, Path(ge=1, lt=2**255)],
    ctx: CtxDep,
    ops: OpsDep,
    key: RegulatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    return respond(service.cancel_court_order(ctx, ops, key, idem, order_id), response)


@wallets.post("/{address}/recovery", status_code=201, responses={202: {"model": RecoveryProposedOut}})
def propose_recovery(
    address: Address,
    body: RecoveryIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> RecoveryProposedOut:
    """The operator's half of a recovery after verifying the holder's identity: ``evidence`` (the
    verification record) is kept only as its SHA-256; a new wallet is to take the lost one's
    place. Nothing moves until the regulator approves (``/v1/regulator/recoveries/{id}/approve``)."""
    op = service.propose_recovery(ctx, ops, key, idem, address, body)
    out = respond(op, response, done_status=201)
    return RecoveryProposedOut(
        **out.model_dump(),
        recovery_id=event_arg(op, "RecoveryProposed", "id"),
        replacement=op.request.get("replacement"),
    )


@regulator.get("/recoveries/{recovery_id}")
def get_recovery(
    recovery_id: Annotated[int, Path(ge=1, lt=2**255)], ctx: CtxDep, key: ReaderKey
) -> RecoveryOut:
    recovery = service.recovery(ctx, recovery_id)
    check_read_any(ctx, key, recovery.lost)  # a key bound to an institution: its customers' recoveries
    return recovery


@regulator.post("/recoveries/{recovery_id}/approve", responses={202: {"model": RecoveryApprovedOut}})
def approve_recovery(
    recovery_id: Annotated[int, Path(ge=1, lt=2**255)],
    ctx: CtxDep,
    ops: OpsDep,
    indexer: IndexerDep,
    key: RegulatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> RecoveryApprovedOut:
    """The regulator approves: the replacement takes the lost wallet's record and its whole
    holding (holds included), the lost wallet is retired (``wallet-retired`` everywhere). Then
    what the families hold for the lost wallet (vouchers, prepaid packages, quick-pay mandates,
    cards, disbursement exceptions and unclaimed leaves) moves to the replacement, one operation
    each, listed in ``holdings``."""
    indexer.catch_up()  # the holdings are found in the event index
    op, swept = service.approve_recovery(ctx, ops, key, idem, recovery_id)
    out = respond(op, response)
    return RecoveryApprovedOut(**out.model_dump(), holdings=_holdings(swept) if swept else None)


@regulator.post("/recoveries/{recovery_id}/holdings")
def move_recovered_holdings(
    recovery_id: Annotated[int, Path(ge=1, lt=2**255)],
    ctx: CtxDep,
    ops: OpsDep,
    indexer: IndexerDep,
    key: OperatorOrRegulatorKey,
    idem: IdempotencyKey,
) -> RecoveryHoldingsOut:
    """Move (again) what the families still hold for an approved recovery's lost wallet: each
    thing once (its operation's idempotency key is the recovery's and the thing's, and the chain
    refuses a second move), so this is safe to repeat; ``recovery-not-approved`` before approval."""
    indexer.catch_up()
    return _holdings(service.sweep_recovery(ctx, ops, key, recovery_id))


def _holdings(swept: Swept) -> RecoveryHoldingsOut:
    return RecoveryHoldingsOut(
        moves=[OperationOut.model_validate(op, from_attributes=True) for op in swept.operations],
        refused=[RecoveryMoveRefused(**r) for r in swept.refused],
    )


@regulator.get("/court-orders", response_model_by_alias=True)
def list_court_orders(
    ctx: CtxDep,
    key: RegulatorOrAuditorKey,
    paging: Paging,
    status: Annotated[Literal["pending", "executed", "cancelled"] | None, Query()] = None,
) -> Page[CourtOrderOut]:
    """The court orders proposed through the service, by id, as the chain has them now (the
    regulator's and the auditor's listing)."""
    return service.list_court_orders(ctx, paging, status)


@regulator.get("/recoveries")
def list_recoveries(
    ctx: CtxDep,
    key: RegulatorOrAuditorKey,
    paging: Paging,
    status: Annotated[Literal["pending", "executed", "cancelled"] | None, Query()] = None,
) -> Page[RecoveryOut]:
    """The recoveries proposed through the service, by id, as the chain has them now."""
    return service.list_recoveries(ctx, paging, status)


# -- the admin: one identity's personal wallets per tier ------------------------------------------

admin = APIRouter(prefix="/v1/admin", tags=["admin"])


@admin.get("/personal-wallet-limit")
def get_personal_wallet_limit(ctx: CtxDep, key: AdminKey) -> PersonalWalletLimitOut:
    """How many personal wallets one identity may hold per tier (on chain)."""
    return PersonalWalletLimitOut(limit=service.personal_wallet_limit(ctx))


@admin.put("/personal-wallet-limit", responses={202: {"model": PersonalWalletLimitOut}})
def set_personal_wallet_limit(
    body: PersonalWalletLimitIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: AdminKey,
    idem: IdempotencyKey,
    response: Response,
) -> PersonalWalletLimitOut:
    """Set the limit (signed with the contracts' admin key): it bounds new registrations only."""
    op = service.set_personal_wallet_limit(ops, key, idem, body)
    out = respond(op, response)
    return PersonalWalletLimitOut(limit=service.personal_wallet_limit(ctx), operation=out)


ROUTERS = (wallets, cash, regulator, admin)
