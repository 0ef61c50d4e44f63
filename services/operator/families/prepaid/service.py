"""Prepaid-fund supervision on the service side: who may see a package, the steps of each
action (checks, then one idempotent operation built by ``builders.py``), and the reads
(a package with its history, a merchant's packages, the listing)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from chain.clients.prepaid import Package
from chain.exceptions import ContractError
from services.common.context import ServiceContext
from services.common.indexer import Indexer
from services.common.keys import Role
from services.common.models import ApiKey, ChainEvent, Operation
from services.common.operations import Operations, perform
from services.common.paging import Page, PageQuery, paginate
from services.common.problems import Problem
from services.common.scope import check_operator_scope, check_read_any
from services.operator.families.prepaid.schemas import (
    ClaimIn,
    EnrolIn,
    PackageIn,
    PackageItem,
    PackageOut,
    RefundPageIn,
    SessionsIn,
)

STATUS = {1: "open", 2: "consumed", 3: "cancelled", 4: "refunded"}


def timestamp(value: datetime) -> int:
    """``expires_at`` in unix seconds; it needs a time zone."""
    if value.tzinfo is None:
        raise Problem(422, "invalid-request", "The request is invalid", "expires_at needs a time zone")
    return int(value.timestamp())


# -- who may see what --------------------------------------------------------------------------


def visible(key: ApiKey, merchant: str | None) -> None:
    """``merchant`` None: the role check alone, made before a lookup so that a role that may not
    read packages learns nothing, not even whether one exists (a 404 would tell)."""
    if merchant is not None and key.role == Role.MERCHANT and key.wallet != merchant:
        raise Problem(403, "not-your-package", "This package belongs to another merchant")
    if key.role not in {Role.OPERATOR, Role.REGULATOR, Role.AUDITOR, Role.MERCHANT}:
        raise Problem(403, "forbidden-role", "This key's role may not do this", f"role {key.role!r}")


def package_for(ctx: ServiceContext, key: ApiKey, package_id: int) -> Package:
    """The package, for a key that may see it: a merchant key gets the same 403 for another
    merchant's package and for one that does not exist (package ids are sequential: a 404 would
    tell which exist)."""
    try:
        p = ctx.prepaid.package(package_id)
    except ContractError as exc:
        if key.role == Role.MERCHANT and exc.name == "PrepaidUnknownPackage":
            raise Problem(403, "not-your-package", "This package belongs to another merchant") from None
        raise
    visible(key, p.merchant)
    return p


# -- regulator ---------------------------------------------------------------------------------


def enrol(ops: Operations, key: ApiKey, idem: str, body: EnrolIn) -> Operation:
    """Enrol a registered merchant for supervision (the regulator signs)."""
    op, _ = perform(ops, "prepaid.enrol", key, idem, body.model_dump(), target=body.merchant)
    return op


def close(ops: Operations, key: ApiKey, idem: str, merchant: str) -> Operation:
    """Close a merchant: no new packages, no consumption, every open package refundable."""
    op, _ = perform(ops, "prepaid.close", key, idem, {"merchant": merchant}, target=merchant)
    return op


def refund_page(ops: Operations, key: ApiKey, idem: str, merchant: str, page: RefundPageIn) -> Operation:
    """Push refunds for one page of a closed or expired merchant's packages (the operator as keeper)."""
    request = {"merchant": merchant, **page.model_dump()}
    op, _ = perform(ops, "prepaid.refund_batch", key, idem, request, target=merchant)
    return op


# -- packages ----------------------------------------------------------------------------------


def prepay(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, body: PackageIn) -> Operation:
    """A custodial consumer prepays a package (the service signs for the consumer)."""
    request = {**body.model_dump(exclude={"expires_at"}), "expires_at": timestamp(body.expires_at)}
    if body.cancellation_fee_fen > body.sessions * body.unit_price_fen:
        raise Problem(
            422, "invalid-request", "The request is invalid", "the cancellation fee exceeds the package total"
        )
    ctx.custodial(body.consumer)
    check_operator_scope(ctx, key, body.consumer)
    op, _ = perform(ops, "prepaid.prepay", key, idem, request, target=f"{body.consumer}->{body.merchant}")
    return op


def consume(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, package_id: int, body: SessionsIn
) -> Operation:
    """The (custodial) consumer confirms sessions used; their held share goes to the merchant."""
    consumer = ctx.prepaid.package(package_id).consumer
    ctx.custodial(consumer)
    check_operator_scope(ctx, key, consumer)
    request = {"id": package_id, **body.model_dump()}
    op, _ = perform(ops, "prepaid.consume", key, idem, request, target=str(package_id))
    return op


def claim(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, package_id: int, body: ClaimIn
) -> Operation:
    """The merchant claims sessions with the consumer's EIP-712 signature."""
    package = package_for(ctx, key, package_id)  # another's and a missing one: the same 403
    ctx.custodial(package.merchant)
    check_operator_scope(ctx, key, package.merchant)
    request = {"id": package_id, **body.model_dump()}
    op, _ = perform(ops, "prepaid.claim", key, idem, request, target=str(package_id))
    return op


def cancel(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, package_id: int) -> Operation:
    """The (custodial) consumer cancels: unused part back, minus the package's cancellation fee."""
    consumer = ctx.prepaid.package(package_id).consumer
    ctx.custodial(consumer)
    check_operator_scope(ctx, key, consumer)
    op, _ = perform(ops, "prepaid.cancel", key, idem, {"id": package_id}, target=str(package_id))
    return op


def refund(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, package_id: int) -> Operation:
    """Refund an expired package, or one of a closed merchant, to its consumer."""
    ctx.prepaid.package(package_id)  # 422 for an unknown package before anything is recorded
    op, _ = perform(ops, "prepaid.refund", key, idem, {"id": package_id}, target=str(package_id))
    return op


# -- reads -------------------------------------------------------------------------------------


def summary(package_id: int, p: Any) -> dict[str, Any]:
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


def package_detail(ctx: ServiceContext, indexer: Indexer, key: ApiKey, package_id: int) -> PackageOut:
    """A package as the chain holds it, with its history of events (from the event index)."""
    p = package_for(ctx, key, package_id)
    check_read_any(ctx, key, p.merchant, p.consumer)  # a key bound to an institution: its customers'
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
        **summary(package_id, p),
        cancellation_fee_fen=p.cancellation_fee,
        deposited_fen=p.deposited,
        released_fen=p.released,
        refunded_fen=p.refunded,
        signature_nonce=p.nonce,
        history=history,
    )


def merchant_packages(ctx: ServiceContext, merchant: str, offset: int, limit: int) -> dict[str, Any]:
    """Package ids of a merchant (one page), with the merchant's enrolment."""
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


def listing(
    ctx: ServiceContext,
    indexer: Indexer,
    paging: PageQuery,
    merchant: str | None,
    consumer: str | None,
    status: str | None,
    serves: Callable[..., bool] | None = None,
) -> Page[PackageItem]:
    """The packages, by id (from the indexed ``PackagePrepaid`` events; the state from the chain),
    filtered by merchant, consumer and status. The merchant and the consumer are asked of the
    database (the event's stored arguments), so one merchant's packages are not looked for among
    every merchant's in Python, a page of at most ``SCAN_FACTOR * limit`` events at a time (short
    pages with a cursor); the status is the chain's, decided per row. ``serves``: a key bound to
    an institution lists the packages whose merchant or consumer its institution serves."""
    indexer.catch_up()
    items: dict[int, PackageItem] = {}

    def item(row: ChainEvent) -> PackageItem:
        pid = int(row.args["id"])
        if pid not in items:
            p = ctx.prepaid.package(pid)
            items[pid] = PackageItem(**summary(pid, p))
        return items[pid]

    def keep(row: ChainEvent) -> bool:
        if serves is not None and not serves(row.args["merchant"], row.args["consumer"]):
            return False
        return status is None or item(row).status == status

    q = select(ChainEvent).where(ChainEvent.contract == "PrepaidEscrow", ChainEvent.name == "PackagePrepaid")
    if merchant is not None:
        q = q.where(ChainEvent.args["merchant"].as_string() == merchant)
    if consumer is not None:
        q = q.where(ChainEvent.args["consumer"].as_string() == consumer)
    with ctx.db.session() as s:
        rows, cursor = paginate(
            s,
            q,
            ChainEvent.id,
            paging,
            "prepaid-packages",
            keep=keep if status is not None or serves is not None else None,
        )
    return Page[PackageItem](items=[item(r) for r in rows], next_cursor=cursor, limit=paging.limit)
