"""The cash family's HTTP routes: wallets (register, read, list), issuance, redemption and
transfers of digital cash, and the regulator's actions. Thin: validate, authorise, call
``service``, answer."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from services.common.deps import (
    READER_ROLES,
    ApiKeyDep,
    CtxDep,
    IdempotencyKey,
    OperatorKey,
    OpsDep,
    RegulatorKey,
    reader_or_owner,
)
from services.common.paging import Page, Paging
from services.common.schemas import Address, OperationOut, respond
from services.operator.families.cash import service
from services.operator.families.cash.schemas import (
    IssuanceIn,
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
    key also the payers it is an officer of."""
    reader_or_owner(key, key.wallet == address or officer_of_payer(ctx, key, address))
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
    its own (the single read's rule, ``reader_or_owner``). The identity is a query parameter, never
    in the path, so the access log (which never writes the query) never holds it."""
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


ROUTERS = (wallets, cash, regulator)
