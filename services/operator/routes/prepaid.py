"""Prepaid-fund supervision (预付资金监管): enrol and close merchants, packages, consumption,
cancellation and refunds. Every money-moving call is an idempotent operation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from chain.clients.prepaid import Package
from chain.exceptions import ContractError
from services.common.context import ServiceContext
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
from services.common.models import ApiKey, ChainEvent
from services.common.operations import Call, builder, perform
from services.common.paging import Page, Paging, paginate
from services.common.problems import Problem
from services.common.schemas import (
    Address,
    AmountFen128,
    EcdsaSignature,
    OperationOut,
    event_arg,
    example,
    respond,
)
from services.operator.schemas import Strict

router = APIRouter(prefix="/v1/prepaid", tags=["prepaid"])

PackageId = Annotated[int, Path(ge=1, le=2**63 - 1)]
MAX_SESSIONS = 2**32 - 1
STATUS = {1: "open", 2: "consumed", 3: "cancelled", 4: "refunded"}


class EnrolIn(Strict):
    merchant: Address
    supervised_bps: int = Field(ge=1, le=10_000, description="share of each prepayment held in escrow")
    ceiling_fen: int = Field(default=0, ge=0, lt=2**255, description="per-package ceiling, 0 for none")


class PackageIn(Strict):
    model_config = example(
        {
            "consumer": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "merchant": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "sessions": 10,
            "unit_price_fen": 10_000,
            "expires_at": "2026-12-31T23:59:59+08:00",
            "cancellation_fee_fen": 5_000,
        }
    )

    consumer: Address
    merchant: Address
    sessions: int = Field(ge=1, le=MAX_SESSIONS)
    unit_price_fen: AmountFen128
    expires_at: datetime = Field(description="end date (ISO 8601 with a time zone)")
    cancellation_fee_fen: int = Field(default=0, ge=0, lt=2**128)


class SessionsIn(Strict):
    sessions: int = Field(ge=1, le=MAX_SESSIONS)


class ClaimIn(Strict):
    sessions: int = Field(ge=1, le=MAX_SESSIONS)
    deadline: int = Field(ge=0, lt=2**64, description="unix seconds the consumer's signature is valid until")
    signature: EcdsaSignature = Field(
        description="consumer's EIP-712 Consume signature: 65 bytes, or 64 (EIP-2098 compact, expanded)"
    )


class RefundPageIn(Strict):
    offset: int = Field(default=0, ge=0, lt=2**63)
    limit: int = Field(default=100, ge=1, le=100)


class PackageOut(BaseModel):
    id: int
    consumer: str
    merchant: str
    status: str
    sessions: int
    used: int
    unit_price_fen: int
    cancellation_fee_fen: int
    expires_at: int
    deposited_fen: int
    released_fen: int
    refunded_fen: int
    held_fen: int
    signature_nonce: int
    history: list[dict[str, Any]]


def _timestamp(value: datetime) -> int:
    if value.tzinfo is None:
        raise Problem(422, "invalid-request", "The request is invalid", "expires_at needs a time zone")
    return int(value.timestamp())


# -- regulator -------------------------------------------------------------------------------


@router.post("/merchants", responses={202: {"model": OperationOut}})
def enrol_merchant(
    body: EnrolIn, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Enrol a registered merchant for supervision (regulator)."""
    op, _ = perform(ops, "prepaid.enrol", key, idem, body.model_dump(), target=body.merchant)
    return respond(op, response)


@builder("prepaid.enrol")
def _enrol(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.prepaid.escrow.functions.enrolMerchant(
        req["merchant"], req["supervised_bps"], req["ceiling_fen"]
    )
    return Call(ctx.regulator, fn)


@router.post("/merchants/{merchant}/close", responses={202: {"model": OperationOut}})
def close_merchant(
    merchant: Address, ops: OpsDep, key: RegulatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Close a merchant: no new packages, no consumption, every open package refundable (regulator)."""
    op, _ = perform(ops, "prepaid.close", key, idem, {"merchant": merchant}, target=merchant)
    return respond(op, response)


@builder("prepaid.close")
def _close(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.regulator, ctx.prepaid.escrow.functions.closeMerchant(req["merchant"]))


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
    body = body or RefundPageIn()
    op, _ = perform(
        ops, "prepaid.refund_batch", key, idem, {"merchant": merchant, **body.model_dump()}, target=merchant
    )
    return respond(op, response)


@builder("prepaid.refund_batch")
def _refund_batch(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    ids = ctx.prepaid.packages_of(req["merchant"], req["offset"], req["limit"])
    return Call(ctx.operator, ctx.prepaid.escrow.functions.refundBatch(ids))


# -- packages --------------------------------------------------------------------------------


class PackageCreatedOut(OperationOut):
    package_id: int | None = Field(default=None, description="the new package's id (null while pending)")


@router.post("/packages", status_code=201, responses={202: {"model": PackageCreatedOut}})
def create_package(
    body: PackageIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> PackageCreatedOut:
    """A custodial consumer prepays a package (the service signs for the consumer)."""
    request = {**body.model_dump(exclude={"expires_at"}), "expires_at": _timestamp(body.expires_at)}
    if body.cancellation_fee_fen > body.sessions * body.unit_price_fen:
        raise Problem(
            422, "invalid-request", "The request is invalid", "the cancellation fee exceeds the package total"
        )
    ctx.custodial(body.consumer)
    op, _ = perform(ops, "prepaid.prepay", key, idem, request, target=f"{body.consumer}->{body.merchant}")
    out = respond(op, response, done_status=201)
    return PackageCreatedOut(**out.model_dump(), package_id=event_arg(op, "PackagePrepaid", "id"))


@builder("prepaid.prepay")
def _prepay(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    consumer = ctx.custodial(req["consumer"])
    total = req["sessions"] * req["unit_price_fen"]
    escrow = ctx.prepaid.escrow
    ctx.ensure_allowance(consumer.address, escrow.address, total)
    fn = escrow.functions.prepay(
        req["merchant"],
        req["sessions"],
        req["unit_price_fen"],
        req["expires_at"],
        req["cancellation_fee_fen"],
    )
    return Call(consumer, fn)


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
    ctx.custodial(ctx.prepaid.package(package_id).consumer)
    op, _ = perform(
        ops, "prepaid.consume", key, idem, {"id": package_id, **body.model_dump()}, target=str(package_id)
    )
    return respond(op, response)


@builder("prepaid.consume")
def _consume(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    consumer = ctx.custodial(ctx.prepaid.package(req["id"]).consumer)
    return Call(consumer, ctx.prepaid.escrow.functions.consume(req["id"], req["sessions"]))


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
    package = _package_for(ctx, key, package_id)  # another's and a missing one: the same 403
    ctx.custodial(package.merchant)
    op, _ = perform(
        ops, "prepaid.claim", key, idem, {"id": package_id, **body.model_dump()}, target=str(package_id)
    )
    return respond(op, response)


@builder("prepaid.claim")
def _claim(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    merchant = ctx.custodial(ctx.prepaid.package(req["id"]).merchant)
    signature = bytes.fromhex(req["signature"][2:])
    return Call(
        merchant, ctx.prepaid.escrow.functions.claim(req["id"], req["sessions"], req["deadline"], signature)
    )


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
    ctx.custodial(ctx.prepaid.package(package_id).consumer)
    op, _ = perform(ops, "prepaid.cancel", key, idem, {"id": package_id}, target=str(package_id))
    return respond(op, response)


@builder("prepaid.cancel")
def _cancel(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    consumer = ctx.custodial(ctx.prepaid.package(req["id"]).consumer)
    return Call(consumer, ctx.prepaid.escrow.functions.cancel(req["id"]))


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
    ctx.prepaid.package(package_id)  # 422 for an unknown package before anything is recorded
    op, _ = perform(ops, "prepaid.refund", key, idem, {"id": package_id}, target=str(package_id))
    return respond(op, response)


@builder("prepaid.refund")
def _refund(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.prepaid.escrow.functions.refund(req["id"]))


# -- reads -----------------------------------------------------------------------------------


def _visible(key: ApiKey, merchant: str | None) -> None:
    """``merchant`` None: the role check alone, made before a lookup so that a role that may not
    read packages learns nothing, not even whether one exists (a 404 would tell)."""
    if merchant is not None and key.role == Role.MERCHANT and key.wallet != merchant:
        raise Problem(403, "not-your-package", "This package belongs to another merchant")
    if key.role not in {Role.OPERATOR, Role.REGULATOR, Role.AUDITOR, Role.MERCHANT}:
        raise Problem(403, "forbidden-role", "This key's role may not do this", f"role {key.role!r}")


def _package_for(ctx: ServiceContext, key: ApiKey, package_id: int) -> Package:
    """The package, for a key that may see it: a merchant key gets the same 403 for another
    merchant's package and for one that does not exist (package ids are sequential: a 404 would
    tell which exist)."""
    try:
        p = ctx.prepaid.package(package_id)
    except ContractError as exc:
        if key.role == Role.MERCHANT and exc.name == "PrepaidUnknownPackage":
            raise Problem(403, "not-your-package", "This package belongs to another merchant") from None
        raise
    _visible(key, p.merchant)
    return p


@router.get("/packages/{package_id}")
def get_package(package_id: PackageId, ctx: CtxDep, indexer: IndexerDep, key: ApiKeyDep) -> PackageOut:
    """A package as the chain holds it, with its history of events. A merchant key sees only its own."""
    _visible(key, None)
    p = _package_for(ctx, key, package_id)
    indexer.catch_up()
    with ctx.db.session() as s:
        rows = s.scalars(
            select(ChainEvent)
            .where(ChainEvent.contract == "PrepaidEscrow", ChainEvent.subject == package_id)  # indexed
            .order_by(ChainEvent.block_number, ChainEvent.log_index)
        ).all()
    history = [
        {"event": r.name, "block_number": r.block_number, "tx_hash": r.tx_hash, "args": r.args} for r in rows
    ]
    return PackageOut(
        **_summary(package_id, p),
        cancellation_fee_fen=p.cancellation_fee,
        deposited_fen=p.deposited,
        released_fen=p.released,
        refunded_fen=p.refunded,
        signature_nonce=p.nonce,
        history=history,
    )


@router.get("/merchants/{merchant}/packages")
def list_merchant_packages(
    merchant: Address, ctx: CtxDep, key: ApiKeyDep, offset: int = 0, limit: int = 100
) -> dict[str, Any]:
    """Package ids of a merchant (a merchant key sees only its own), with the merchant's enrolment."""
    _visible(key, merchant)
    if not (0 <= offset < 2**63 and 1 <= limit <= 500):
        raise Problem(422, "invalid-request", "The request is invalid", "offset >= 0 and 1 <= limit <= 500")
    enrolment = ctx.prepaid.merchant(merchant)
    return {
        "merchant": merchant,
        "enrolled": enrolment.enrolled,
        "closed": enrolment.closed,
        "supervised_bps": enrolment.supervised_bps,
        "ceiling_fen": enrolment.ceiling,
        "total": ctx.prepaid.package_count_of(merchant),
        "package_ids": ctx.prepaid.packages_of(merchant, offset, limit),
    }


# -- listing (issue 21: find what you created) --------------------------------------------------


class PackageItem(BaseModel):
    """A package as a listing shows it; ``GET /packages/{package_id}`` adds its history."""

    id: int
    consumer: str
    merchant: str
    status: str
    sessions: int
    used: int
    unit_price_fen: int
    expires_at: int
    held_fen: int


def _summary(package_id: int, p: Any) -> dict[str, Any]:
    """The fields a listing shows of a package (``PackageItem``); the single read adds the
    money's whole path and the history (``PackageOut``)."""
    return {
        "id": package_id,
        "consumer": p.consumer,
        "merchant": p.merchant,
        "status": STATUS.get(int(p.status), "unknown"),
        "sessions": p.sessions,
        "used": p.used,
        "unit_price_fen": p.unit_price,
        "expires_at": p.expires_at,
        "held_fen": p.held,
    }


@router.get("/packages", summary="List and search prepaid packages")
def list_packages(
    ctx: CtxDep,
    indexer: IndexerDep,
    key: ApiKeyDep,
    paging: Paging,
    merchant: Annotated[Address | None, Query()] = None,
    consumer: Annotated[Address | None, Query()] = None,
    status: Annotated[Literal["open", "consumed", "cancelled", "refunded"] | None, Query()] = None,
) -> Page[PackageItem]:
    """The packages, by id (from the indexed ``PackagePrepaid`` events; the state from the chain).
    The same readers as a package's read: the operator, the regulator, the auditor; a merchant key
    its own packages only (another merchant's filter is refused)."""
    if key.role == Role.MERCHANT:
        merchant = merchant or key.wallet
    _visible(key, merchant)
    indexer.catch_up()
    items: dict[int, PackageItem] = {}

    def item(row: ChainEvent) -> PackageItem:
        pid = int(row.args["id"])
        if pid not in items:
            p = ctx.prepaid.package(pid)
            items[pid] = PackageItem(**_summary(pid, p))
        return items[pid]

    def keep(row: ChainEvent) -> bool:
        if (merchant is not None and row.args.get("merchant") != merchant) or (
            consumer is not None and row.args.get("consumer") != consumer
        ):
            return False
        return status is None or item(row).status == status

    q = select(ChainEvent).where(ChainEvent.contract == "PrepaidEscrow", ChainEvent.name == "PackagePrepaid")
    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, ChainEvent.id, paging, "prepaid-packages", keep=keep)
    return Page[PackageItem](items=[item(r) for r in rows], next_cursor=cursor, limit=paging.limit)
