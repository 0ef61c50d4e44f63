"""Prepaid-fund supervision (预付资金监管): enrol and close merchants, packages, consumption,
cancellation and refunds. Every money-moving call is an idempotent operation.

Thin: each route validates its input, authorises the key, calls ``service.py`` and answers.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from services.common.deps import (
    ApiKeyDep,
    CtxDep,
    IdempotencyKey,
    IndexerDep,
    MerchantKey,
    OperatorKey,
    OperatorOrRegulatorKey,
    OpsDep,
    RegulatorKey,
)
from services.common.keys import Role
from services.common.paging import Page, Paging
from services.common.schemas import Address, OperationOut, event_arg, respond
from services.common.scope import check_read_scope, read_filter
from services.operator.families.prepaid import service
from services.operator.families.prepaid.schemas import (
    ClaimIn,
    EnrolIn,
    PackageCreatedOut,
    PackageId,
    PackageIn,
    PackageItem,
    PackageOut,
    PackageState,
    RefundPageIn,
    SessionsIn,
)

router = APIRouter(prefix="/v1/prepaid", tags=["prepaid"])


# -- regulator -------------------------------------------------------------------------------


@router.post("/merchants", responses={202: {"model": OperationOut}})
def enrol_merchant(
    body: EnrolIn, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Enrol a registered merchant for supervision (regulator)."""
    return respond(service.enrol(ops, key, idem, body), response)


@router.post("/merchants/{merchant}/close", responses={202: {"model": OperationOut}})
def close_merchant(
    merchant: Address, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Close a merchant: no new packages, no consumption, every open package refundable (regulator)."""
    return respond(service.close(ops, key, idem, merchant), response)


@router.post("/merchants/{merchant}/refunds", responses={202: {"model": OperationOut}})
def refund_merchant_packages(
    merchant: Address,
    ops: OpsDep,
    key: OperatorOrRegulatorKey,
    idem: IdempotencyKey,
    response: Response,
    body: Annotated[RefundPageIn | None, Body()] = None,
) -> OperationOut:
    """Push refunds for one page (at most 100) of a closed or expired merchant's packages. Call it
    page by page (offset 0, 100, ...) until the merchant's package count; a refund the token refuses
    (consumer frozen, at its balance cap) is deferred (``RefundDeferred`` with the token's error
    selector) and stays refundable: call again later. No body: the first page."""
    return respond(service.refund_page(ops, key, idem, merchant, body or RefundPageIn()), response)


# -- packages --------------------------------------------------------------------------------


@router.post("/packages", status_code=201, responses={202: {"model": PackageCreatedOut}})
def create_package(
    body: PackageIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> PackageCreatedOut:
    """A custodial consumer prepays a package (the service signs for the consumer)."""
    op = service.prepay(ctx, ops, key, idem, body)
    out = respond(op, response, done_status=201)
    return PackageCreatedOut(**out.model_dump(), package_id=event_arg(op, "PackagePrepaid", "id"))


@router.post("/packages/{package_id}/consume", responses={202: {"model": OperationOut}})
def consume(
    package_id: PackageId,
    body: SessionsIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """The (custodial) consumer confirms sessions used; their held share goes to the merchant."""
    return respond(service.consume(ctx, ops, key, idem, package_id, body), response)


@router.post("/packages/{package_id}/claim", responses={202: {"model": OperationOut}})
def claim(
    package_id: PackageId,
    body: ClaimIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: MerchantKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """The merchant (its key, its custodial wallet) claims sessions with the consumer's EIP-712
    signature, as collected at the counter from the consumer's phone or card."""
    return respond(service.claim(ctx, ops, key, idem, package_id, body), response)


@router.post("/packages/{package_id}/cancel", responses={202: {"model": OperationOut}})
def cancel(
    package_id: PackageId,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """The (custodial) consumer cancels: unused part back, minus the package's cancellation fee."""
    return respond(service.cancel(ctx, ops, key, idem, package_id), response)


@router.post("/packages/{package_id}/refund", responses={202: {"model": OperationOut}})
def refund(
    package_id: PackageId,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorOrRegulatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Refund an expired package, or one of a closed merchant, to its consumer (the operator as keeper)."""
    return respond(service.refund(ctx, ops, key, idem, package_id), response)


# -- reads -----------------------------------------------------------------------------------


@router.get("/packages/{package_id}")
def get_package(package_id: PackageId, ctx: CtxDep, indexer: IndexerDep, key: ApiKeyDep) -> PackageOut:
    """A package as the chain holds it, with its history of events. A merchant key sees only its own."""
    service.visible(key, None)
    return service.package_detail(ctx, indexer, key, package_id)


@router.get("/merchants/{merchant}/packages")
def list_merchant_packages(
    merchant: Address, ctx: CtxDep, key: ApiKeyDep, offset: int = 0, limit: int = 100
) -> dict[str, Any]:
    """Package ids of a merchant (a merchant key sees only its own), with the merchant's enrolment."""
    service.visible(key, merchant)
    check_read_scope(ctx, key, merchant)  # a key bound to an institution: its own merchants'
    return service.merchant_packages(ctx, merchant, offset, limit)


# -- listing (issue 21: find what you created) --------------------------------------------------


@router.get("/packages", summary="List and search prepaid packages")
def list_packages(
    ctx: CtxDep,
    indexer: IndexerDep,
    key: ApiKeyDep,
    paging: Paging,
    merchant: Annotated[Address | None, Query()] = None,
    consumer: Annotated[Address | None, Query()] = None,
    status: Annotated[PackageState | None, Query()] = None,
) -> Page[PackageItem]:
    """The packages, by id (from the indexed ``PackagePrepaid`` events; the state from the chain).
    The same readers as a package's read: the operator, the regulator, the auditor; a merchant key
    its own packages only (another merchant's filter is refused)."""
    if key.role == Role.MERCHANT:
        merchant = merchant or key.wallet
    service.visible(key, merchant)
    return service.listing(ctx, indexer, paging, merchant, consumer, status, read_filter(ctx, key))
