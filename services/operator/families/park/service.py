"""The closed-loop park (黄桥未来工场, 园区"收、管、付"闭环): set up from one declarative file, and
its report computed from the indexed chain events.

Setting up checks the file against what the platform already holds (the chain's wallet registry
through the cash client, the gateway's terminals and door points) and records the park; it moves
no money and signs nothing. The same file posted again changes nothing (its canonical JSON's
SHA-256 is stored); another file for the same park id is refused (409 ``park-exists``).

The report reads DigitalCash's ``Transfer`` and ``PaidFor`` events from the index. A direct
transfer counts from its ``from``; a family's payment on an owner's behalf (a disbursement
payout, a card settlement, a QuickPay pull: ``payFor``) counts from its ``owner`` through the
``PaidFor`` event, never twice (its ``Transfer`` leaves the family contract, not the owner).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import select

from chain.clients.token import Kind
from services.common.context import ServiceContext
from services.common.models import AccessPoint, ChainEvent, GatewayTerminal
from services.common.problems import Problem
from services.operator.families.park.models import Park
from services.operator.families.park.schemas import (
    CategoryLine,
    MerchantLine,
    Money,
    ParkIn,
    ParkOut,
    ParkReport,
    TenantLine,
)


def money(fen: int) -> Money:
    sign = "-" if fen < 0 else ""
    return Money(fen=fen, yuan=f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}")


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def spec_hash(body: ParkIn) -> str:
    text = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def park_out(row: Park, created: bool) -> ParkOut:
    spec = ParkIn.model_validate(row.spec)
    return ParkOut(
        id=row.id,
        name=row.name,
        area=row.area,
        tenants=len(spec.tenants),
        staff=sum(len(t.staff) for t in spec.tenants),
        merchants=len(spec.merchants),
        terminals=len(spec.terminals),
        door_points=len(spec.door_points),
        created=created,
    )


def _wallet(ctx: ServiceContext, address: str, field: str, *kinds: Kind) -> Any:
    info = ctx.cash.wallet(address)
    if not info.registered:
        raise Problem(422, "park-wallet-not-registered", "A wallet of the park file is not registered", field)
    if kinds and info.kind not in kinds:
        wanted = " or ".join(k.name.lower() for k in kinds)
        raise Problem(
            422,
            "park-wallet-wrong-kind",
            "A wallet of the park file is not of the kind its place needs",
            f"{field}: a {info.kind.name.lower()} wallet, expected {wanted}",
        )
    return info


def check(ctx: ServiceContext, body: ParkIn) -> None:
    """What the file names exists and is what the file says it is (422 naming the field)."""
    _wallet(ctx, body.fee_wallet, "fee_wallet", Kind.MERCHANT)
    for i, t in enumerate(body.tenants):
        _wallet(ctx, t.payer, f"tenants.{i}.payer", Kind.INSTITUTION, Kind.MERCHANT)
        for j, worker in enumerate(t.staff):
            _wallet(ctx, worker, f"tenants.{i}.staff.{j}", Kind.PERSONAL)
    for i, m in enumerate(body.merchants):
        info = _wallet(ctx, m.wallet, f"merchants.{i}.wallet", Kind.MERCHANT)
        if info.category != m.category:
            raise Problem(
                422,
                "park-merchant-category-mismatch",
                "A merchant's category is not the one registered on chain",
                f"merchants.{i}.category: {m.category}, registered {info.category}",
            )
    merchants = {m.wallet for m in body.merchants}
    with ctx.db.session() as s:
        terminals = {
            t.id: t.merchant
            for t in s.scalars(select(GatewayTerminal).where(GatewayTerminal.id.in_(body.terminals)))
        }
        doors = set(s.scalars(select(AccessPoint.id).where(AccessPoint.id.in_(body.door_points))))
    for i, tid in enumerate(body.terminals):
        if tid not in terminals:
            raise Problem(
                422, "park-terminal-not-found", "No gateway terminal has this id", f"terminals.{i}: {tid}"
            )
        if to_checksum_address(terminals[tid]) not in merchants:
            raise Problem(
                422,
                "park-terminal-not-a-park-merchant",
                "A terminal of the park file belongs to a merchant outside the park",
                f"terminals.{i}: {tid}",
            )
    for i, did in enumerate(body.door_points):
        if did not in doors:
            raise Problem(
                422, "park-door-not-found", "No door access point has this id", f"door_points.{i}: {did}"
            )


def set_up(ctx: ServiceContext, body: ParkIn) -> tuple[Park, bool]:
    """The park recorded from ``body`` (True), or the one this very file recorded before (False)."""
    digest = spec_hash(body)
    with ctx.db.session() as s:
        found = s.get(Park, body.id)
    if found is not None:
        if found.spec_hash != digest:
            raise Problem(409, "park-exists", "A park with this id was set up from another file", body.id)
        return found, False
    check(ctx, body)
    row = Park(
        id=body.id, name=body.name, area=body.area, spec=body.model_dump(mode="json"), spec_hash=digest
    )
    with ctx.db.session() as s:
        s.add(row)
        try:
            s.commit()
        except Exception:  # a concurrent post of the same id: answer as a re-post would
            s.rollback()
            found = s.get(Park, body.id)
            if found is None or found.spec_hash != digest:
                raise Problem(
                    409, "park-exists", "A park with this id was set up from another file", body.id
                ) from None
            return found, False
        s.refresh(row)
    return row, True


def park(ctx: ServiceContext, park_id: str) -> Park:
    with ctx.db.session() as s:
        row = s.get(Park, park_id)
    if row is None:
        raise Problem(404, "park-not-found", "Park not found", park_id)
    return row


def _payments(ctx: ServiceContext) -> list[tuple[str, str, int]]:
    """Every (payer, payee, fen) of digital cash as indexed: a direct transfer from its sender, a
    family's ``payFor`` from the owner it paid for."""
    with ctx.db.session() as s:
        rows = s.execute(
            select(ChainEvent.name, ChainEvent.args)
            .where(ChainEvent.contract == "DigitalCash", ChainEvent.name.in_(("Transfer", "PaidFor")))
            .order_by(ChainEvent.block_number, ChainEvent.log_index)
        ).all()
    out: list[tuple[str, str, int]] = []
    for name, args in rows:
        if name == "Transfer":
            out.append(
                (to_checksum_address(args["from"]), to_checksum_address(args["to"]), int(args["value"]))
            )
        else:
            out.append(
                (to_checksum_address(args["owner"]), to_checksum_address(args["to"]), int(args["amount"]))
            )
    return out


def report(ctx: ServiceContext, indexer: Any, row: Park) -> ParkReport:
    indexer.catch_up()
    spec = ParkIn.model_validate(row.spec)
    payer_of = {t.payer: t.id for t in spec.tenants}
    tenant_of_staff = {s: t.id for t in spec.tenants for s in t.staff}
    merchant_of = {m.wallet: m for m in spec.merchants}
    paid_in = {t.id: 0 for t in spec.tenants}
    spent = {t.id: 0 for t in spec.tenants}
    fees = {t.id: 0 for t in spec.tenants}
    takings = {m.id: 0 for m in spec.merchants}
    for payer, payee, fen in _payments(ctx):
        if payer in payer_of and tenant_of_staff.get(payee) is not None:
            paid_in[tenant_of_staff[payee]] += fen
        elif payer in tenant_of_staff and payee in merchant_of:
            spent[tenant_of_staff[payer]] += fen
            takings[merchant_of[payee].id] += fen
        elif payer in payer_of and payee == spec.fee_wallet:
            fees[payer_of[payer]] += fen
    categories: dict[int, list[int]] = {}
    for m in spec.merchants:
        categories.setdefault(m.category, []).append(takings[m.id])
    total_in, total_spent = sum(paid_in.values()), sum(spent.values())
    return ParkReport(
        park=row.id,
        name=row.name,
        area=row.area,
        as_of_block=indexer.position() or 0,
        paid_in=money(total_in),
        spent_inside=money(total_spent),
        retention_ratio=ratio(total_spent, total_in),
        fee_income=money(sum(fees.values())),
        by_tenant=[
            TenantLine(
                tenant=t.id,
                name=t.name,
                paid_in=money(paid_in[t.id]),
                spent_inside=money(spent[t.id]),
                retention_ratio=ratio(spent[t.id], paid_in[t.id]),
                fees_paid=money(fees[t.id]),
            )
            for t in spec.tenants
        ],
        by_category=[
            CategoryLine(category=c, merchants=len(v), spent_inside=money(sum(v)))
            for c, v in sorted(categories.items())
        ],
        by_merchant=[
            MerchantLine(
                merchant=m.id, name=m.name, category=m.category, takings_from_staff=money(takings[m.id])
            )
            for m in spec.merchants
        ],
    )
