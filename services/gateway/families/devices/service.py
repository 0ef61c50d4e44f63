"""Unattended devices: what the routes call (pre-authorisations, their completion and release, the
expiry sweep, recycling programmes and payouts).

Offline and duplicate guarantees, as for card payments: the chain refuses a (card, counter) that
pre-authorised already (``DeviceCounterUsed``) and a (programme, reference) paid already
(``DevicePayoutDuplicate``); the gateway answers an upload of the same pre-authorisation or the
same bin drop under a new Idempotency-Key with the earlier upload's answer (``replayed``), without
a new transaction (the same drop reference on other terms -- recipient or amount -- is a 409
``payout-duplicate`` naming the first payout's terms); the same key and body replay through the
operation backbone. A failed upload (a frozen holder, say) frees its (card, counter) for a later
upload, as a retryable card payment.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from chain.clients.devices import PreAuthStatus, recycling_ref
from chain.exceptions import ContractError
from services.common.context import ServiceContext
from services.common.keys import Role
from services.common.models import ApiKey, GatewayTerminal, Operation, Wallet
from services.common.operations import Operations, perform
from services.common.problems import Problem, contract_problem
from services.common.scope import check_operator_scope
from services.gateway.families.devices.models import DevicePayout, DevicePreAuth
from services.gateway.families.devices.schemas import (
    PayoutIn,
    PayoutOut,
    PreAuthIn,
    PreAuthOut,
    ProgrammeIn,
    ProgrammeOut,
)

_STATUS = {
    PreAuthStatus.OPEN: "open",
    PreAuthStatus.COMPLETED: "completed",
    PreAuthStatus.RELEASED: "released",
}


def _op(ctx: ServiceContext, op_id: str) -> Operation:
    with ctx.db.session() as s:
        op = s.get(Operation, op_id)
    assert op is not None
    return op


def _event(op: Operation, name: str) -> dict[str, Any] | None:
    for e in (op.result or {}).get("events", []):
        if e["name"] == name:
            return dict(e["args"])
    return None


def _known_op(ctx: ServiceContext, key: ApiKey, idem: str) -> bool:
    with ctx.db.session() as s:
        return (
            s.scalar(
                select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
            )
            is not None
        )


# -- pre-authorisations ------------------------------------------------------------------------


def preauth_out(ctx: ServiceContext, row: DevicePreAuth, replayed: bool = False) -> PreAuthOut:
    """The row with its state on chain (its chain id recorded once its upload confirmed)."""
    op = _op(ctx, row.operation_id)
    if row.preauth_id is None and op.status == "confirmed":
        event = _event(op, "PreAuthorized")
        assert event is not None
        with ctx.db.session() as s:
            s.execute(
                update(DevicePreAuth).where(DevicePreAuth.id == row.id).values(preauth_id=int(event["id"]))
            )
            s.commit()
        row.preauth_id = int(event["id"])
    base: dict[str, Any] = {
        "card": row.card,
        "counter": row.counter,
        "holder": row.holder,
        "merchant": row.merchant,
        "authorized_fen": row.max_amount,
        "operation_id": row.operation_id,
        "tx_hash": op.tx_hash,
        "replayed": replayed,
    }
    if row.preauth_id is None:
        return PreAuthOut(id=None, status="failed" if op.status == "failed" else "pending", **base)
    p = ctx.devices.preauth(row.preauth_id)
    status = _STATUS[p.status]
    if status != "open" and not row.closed:
        with ctx.db.session() as s:
            s.execute(update(DevicePreAuth).where(DevicePreAuth.id == row.id).values(closed=True))
            s.commit()
    return PreAuthOut(
        id=p.id,
        status=status,  # type: ignore[arg-type]
        captured_fen=p.captured,
        expires_at=p.expires_at,
        expired=status == "open" and _chain_now(ctx) > p.expires_at,
        **base,
    )


def _chain_now(ctx: ServiceContext) -> int:
    return int(ctx.w3.eth.get_block("latest")["timestamp"])


def upload_preauth(
    ctx: ServiceContext, ops: Operations, key: ApiKey, at: GatewayTerminal, idem: str, body: PreAuthIn
) -> PreAuthOut:
    """Hold the card's maximum for the terminal's machine (its merchant checked by the route)."""
    with ctx.db.session() as s:
        earlier = s.scalar(
            select(DevicePreAuth).where(
                DevicePreAuth.card == body.card, DevicePreAuth.counter == body.counter
            )
        )
    if earlier is not None and not _known_op(ctx, key, idem):
        if _op(ctx, earlier.operation_id).status != "failed":  # the same card counter again: its answer
            return preauth_out(ctx, earlier, replayed=True)
        with ctx.db.session() as s:  # a refused upload frees its counter for a later one
            s.execute(delete(DevicePreAuth).where(DevicePreAuth.id == earlier.id))
            s.commit()
    try:
        holder = ctx.hardwallet.card(body.card).holder
    except ContractError as exc:
        raise contract_problem(exc) from None
    with ctx.db.session() as s:
        w = s.get(Wallet, holder)
    request = {**body.model_dump(), "holder": holder, "custodial": bool(w and w.custody == "custodial")}
    request["terminal"] = at.id

    def claim() -> dict[str, Any]:
        with ctx.db.session() as s:
            op_id = s.scalar(
                select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
            )
            s.add(
                DevicePreAuth(
                    card=body.card,
                    counter=body.counter,
                    terminal_id=at.id,
                    merchant=body.merchant,
                    holder=holder,
                    max_amount=body.max_amount_fen,
                    operation_id=op_id,
                )
            )
            try:
                s.commit()
            except IntegrityError:
                raise Problem(
                    409, "preauth-in-progress", "This card counter is being uploaded by another request"
                ) from None
        return {}

    op, replayed = perform(ops, "devices.preauth", key, idem, request, target=body.card, prepare=claim)
    with ctx.db.session() as s:
        row = s.scalar(select(DevicePreAuth).where(DevicePreAuth.operation_id == op.id))
    assert row is not None
    return preauth_out(ctx, row, replayed=replayed)


def preauth_row(ctx: ServiceContext, key: ApiKey, preauth_id: int) -> DevicePreAuth:
    """The pre-authorisation; a terminal key reads and acts on its own merchant's only, and one of
    another merchant and a missing one are the same 403 (ids are sequential)."""
    with ctx.db.session() as s:
        row = s.scalar(select(DevicePreAuth).where(DevicePreAuth.preauth_id == preauth_id))
    if key.role == Role.TERMINAL:
        if row is None or row.merchant != key.wallet:
            raise Problem(403, "not-your-preauth", "A device acts on its own merchant's pre-authorisations")
        return row
    if key.role not in (Role.OPERATOR, Role.AUDITOR):
        raise Problem(403, "forbidden-role", "Only the device, the operator or the auditor")
    if row is None:
        raise Problem(404, "preauth-not-found", "Pre-authorisation not found", str(preauth_id))
    return row


def finish_preauth(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, row: DevicePreAuth, amount: int | None
) -> PreAuthOut:
    """Complete with ``amount`` or release (``None``); the contract allows either once."""
    assert row.preauth_id is not None
    if amount is None:
        kind, request = "devices.release", {"preauth": row.preauth_id}
    else:
        kind, request = "devices.complete", {"preauth": row.preauth_id, "amount_fen": amount}
    perform(ops, kind, key, idem, request, target=str(row.preauth_id))
    return preauth_out(ctx, row)


def sweep_expired(ctx: ServiceContext, ops: Operations) -> int:
    """Release every open pre-authorisation past its deadline (the gateway's worker): the holder
    gets the whole maximum back. Under the key that uploaded it, with the idempotency key
    ``expire:<id>``, so a restart mid-sweep sends nothing twice. Returns how many it released."""
    released = 0
    with ctx.db.session() as s:
        rows = s.scalars(
            select(DevicePreAuth).where(
                DevicePreAuth.preauth_id.is_not(None), DevicePreAuth.closed.is_(False)
            )
        ).all()
    now = _chain_now(ctx) if rows else 0
    for row in rows:
        assert row.preauth_id is not None
        p = ctx.devices.preauth(row.preauth_id)
        if p.status is not PreAuthStatus.OPEN:
            with ctx.db.session() as s:
                s.execute(update(DevicePreAuth).where(DevicePreAuth.id == row.id).values(closed=True))
                s.commit()
            continue
        if now <= p.expires_at:
            continue
        with ctx.db.session() as s:
            key = s.get(ApiKey, _op(ctx, row.operation_id).api_key_id)
        assert key is not None
        try:
            perform(ops, "devices.release", key, f"expire:{row.preauth_id}", {"preauth": row.preauth_id})
        except Problem:
            continue  # a frozen holder: tried again next round
        preauth_out(ctx, row)
        released += 1
    return released


# -- recycling programmes and payouts ------------------------------------------------------------


def programme_out(ctx: ServiceContext, programme_id: int) -> ProgrammeOut:
    try:
        p = ctx.devices.programme(programme_id)
    except ContractError as exc:
        raise contract_problem(exc) from None
    return ProgrammeOut(
        id=p.id,
        sponsor=p.sponsor,
        merchant=p.merchant,
        daily_cap_fen=p.daily_cap,
        budget_fen=p.budget,
        funded_fen=p.funded,
        paid_fen=p.paid,
        closed=p.closed,
    )


def create_programme(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, body: ProgrammeIn
) -> tuple[Operation, int | None]:
    op, _ = perform(ops, "devices.programme.create", key, idem, body.model_dump(), target=body.merchant)
    event = _event(op, "RecyclingProgrammeCreated")
    return op, None if event is None else int(event["id"])


def fund_programme(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, programme_id: int, amount: int
) -> Operation:
    p = programme_out(ctx, programme_id)
    ctx.custodial(p.sponsor)
    request = {"programme": programme_id, "sponsor": p.sponsor, "amount_fen": amount}
    op, _ = perform(ops, "devices.programme.fund", key, idem, request, target=str(programme_id))
    return op


def close_programme(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, programme_id: int
) -> Operation:
    p = programme_out(ctx, programme_id)
    check_operator_scope(ctx, key, p.sponsor)  # two tiers: the budget goes back to the sponsor
    op, _ = perform(
        ops, "devices.programme.close", key, idem, {"programme": programme_id}, target=str(programme_id)
    )
    return op


def _payout_out(ctx: ServiceContext, row: DevicePayout, replayed: bool) -> PayoutOut:
    op = _op(ctx, row.operation_id)
    event = _event(op, "RecyclingPaid") or {}
    return PayoutOut(
        programme=row.programme,
        reference=row.reference,
        to=row.to,
        person=event.get("person"),
        amount_fen=row.amount,
        paid_today_fen=event.get("paidToday"),
        status=op.status,
        operation_id=op.id,
        tx_hash=op.tx_hash,
        replayed=replayed,
    )


def payout(
    ctx: ServiceContext, ops: Operations, key: ApiKey, at: GatewayTerminal, idem: str, body: PayoutIn
) -> PayoutOut:
    """A bin of the programme's merchant pays a person (its drop reference once)."""
    p = programme_out(ctx, body.programme)
    if p.merchant != at.merchant:
        raise Problem(403, "not-your-programme", "A bin pays from its own merchant's programmes only")
    with ctx.db.session() as s:
        earlier = s.scalar(
            select(DevicePayout).where(
                DevicePayout.programme == body.programme, DevicePayout.reference == body.reference
            )
        )
    if earlier is not None and not _known_op(ctx, key, idem):
        if _op(ctx, earlier.operation_id).status != "failed":  # the same drop uploaded again
            if earlier.to.lower() != body.to.lower() or earlier.amount != body.amount_fen:
                raise Problem(
                    409,
                    "payout-duplicate",
                    "This drop reference was paid already, on other terms",
                    f"drop {body.reference!r} of programme {body.programme} paid {earlier.amount} fen "
                    f"to {earlier.to}",
                    reference=body.reference,
                    to=earlier.to,
                    amount_fen=earlier.amount,
                )
            return _payout_out(ctx, earlier, replayed=True)
        with ctx.db.session() as s:
            s.execute(delete(DevicePayout).where(DevicePayout.id == earlier.id))
            s.commit()

    def claim() -> dict[str, Any]:
        with ctx.db.session() as s:
            op_id = s.scalar(
                select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
            )
            s.add(
                DevicePayout(
                    programme=body.programme,
                    reference=body.reference,
                    terminal_id=at.id,
                    to=body.to,
                    amount=body.amount_fen,
                    operation_id=op_id,
                )
            )
            try:
                s.commit()
            except IntegrityError:
                raise Problem(
                    409, "payout-in-progress", "This drop is being uploaded by another request"
                ) from None
        return {}

    request = {**body.model_dump(), "terminal": at.id, "ref": "0x" + recycling_ref(body.reference).hex()}
    op, replayed = perform(
        ops, "devices.payout", key, idem, request, target=str(body.programme), prepare=claim
    )
    with ctx.db.session() as s:
        row = s.scalar(select(DevicePayout).where(DevicePayout.operation_id == op.id))
    assert row is not None
    return _payout_out(ctx, row, replayed)
