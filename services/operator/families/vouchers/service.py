"""Restricted-purpose funds (消费红包 / 工会福利): the logic behind the voucher routes.

A programme is created and funded by a custodial issuer wallet (a government office, a union);
grants come as a list or CSV (sent in batches of 200) or as a Merkle campaign of any size (the
service builds the tree, keeps the proofs and claims for holders); holders spend at allowed
merchants, either custodial holders through the operator or self-custody holders by a signed
``Spend`` their merchant submits; after expiry the service returns what is left to the issuer,
page by page. Reports total granted, spent (by merchant category and by merchant) and returned.

Rows (grants) are read and validated exactly like disbursement rows: ``recipient`` (an address)
or ``identity``, and an amount in the stated unit; every bad row is reported at once.

Each write stores its request and performs its operation, whose builder (``builders.py``) turns
it into the call; reads come from the typed client ``ctx.vouchers`` and the event index.
"""

from __future__ import annotations

import csv
import io
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import insert, select

from chain.clients.vouchers import MAX_BATCH, Grant, Mode, merkle_tree, name_text, programme_name
from services.common.context import ServiceContext
from services.common.models import ApiKey, ChainEvent, Operation
from services.common.operations import Operations, perform
from services.common.paging import Page, Paging, paginate
from services.common.problems import Problem
from services.common.schemas import OperationOut, event_arg, merkle_dump
from services.common.scope import check_operator_scope
from services.operator.families.cash.service import identity_hash
from services.operator.families.disburse.rows import RawRow, rows_from_csv, rows_from_json, validate_rows
from services.operator.families.vouchers.models import VoucherLeaf
from services.operator.families.vouchers.schemas import (
    BatchesOut,
    GrantsIn,
    ProgrammeIn,
    ProgrammeItem,
    SignedSpendIn,
    SpendIn,
)

CONTRACT = "VoucherProgrammes"
MODE_NAMES = {Mode.GRANT_LIST: "grant-list", Mode.OPEN_ENROLMENT: "open-enrolment"}


def _ts(value: datetime, field: str) -> int:
    if value.tzinfo is None:
        raise Problem(422, "invalid-request", "The request is invalid", f"{field} needs a time zone")
    return int(value.timestamp())


def programme_exists(ctx: ServiceContext, pid: int) -> Any:
    try:
        return ctx.vouchers.programme(pid)
    except Exception:
        raise Problem(
            404, "programme-not-found", "Voucher programme not found", f"no programme {pid}"
        ) from None


# A programme, once created, exists for good (the contract never deletes one nor sets its mode
# back), so its existence is asked of the chain once per process and contract: a holding read
# (the load test's most frequent voucher read) is then one eth_call instead of two. Keyed by the
# chain client, which a context keeps for its lifetime (tests build many chains in one process).
_EXISTING: weakref.WeakKeyDictionary[object, set[int]] = weakref.WeakKeyDictionary()


def programme_known(ctx: ServiceContext, pid: int) -> None:
    """Raise the 404 of :func:`programme_exists` unless programme ``pid`` exists; asks the chain
    only until it has once said yes."""
    known = _EXISTING.setdefault(ctx.vouchers, set())
    if pid not in known:
        programme_exists(ctx, pid)
        known.add(pid)


# -- creating ----------------------------------------------------------------------------------


def create(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, body: ProgrammeIn) -> Operation:
    """Create and fund a programme (the custodial issuer approves and pays the budget)."""
    ctx.custodial(body.issuer)
    check_operator_scope(ctx, key, body.issuer)
    request = {
        **body.model_dump(exclude={"starts_at", "expires_at"}),
        "starts_at": _ts(body.starts_at, "starts_at"),
        "expires_at": _ts(body.expires_at, "expires_at"),
    }
    try:
        programme_name(body.name)
    except ValueError as exc:
        raise Problem(422, "invalid-request", "The request is invalid", str(exc)) from None
    op, _ = perform(ops, "voucher.create", key, idem, request, target=body.name)
    if body.cap_per_identity:
        cap = cap_per_identity(ops, key, idem, op)
        if cap is not None and cap.status != "confirmed":
            return cap  # the answer is pending until both steps are; a replay finishes them
    return op


def cap_per_identity(ops: Operations, key: ApiKey, idem: str, created: Operation) -> Operation | None:
    """The second step of a creation with ``cap_per_identity``: the issuer makes the new
    programme's per-person cap count per identity (``capPerIdentity``), as its own operation
    under the idempotency key ``<key>#identity-cap``, so a replay of the creation replays both
    and a creation still pending is finished by a replay. None while the creation is pending."""
    pid = created_id(created)
    if pid is None:
        return None
    op, _ = perform(
        ops, "vouchers.cap_per_identity", key, f"{idem}#identity-cap", {"programme": pid}, target=str(pid)
    )
    return op


# -- granting ----------------------------------------------------------------------------------


def validated(ctx: ServiceContext, raw: list[RawRow], unit: str) -> list[Grant]:
    rows = validate_rows(
        ctx.db,
        raw,
        unit,
        lambda ident: identity_hash(ctx.settings.identity_pepper, ident),
        live=ctx.cash.live_personal_among,
        retired=ctx.cash.retired_among,
    )
    return [Grant(r.recipient, r.amount_fen) for r in rows]


def json_grants(ctx: ServiceContext, body: GrantsIn) -> list[Grant]:
    return validated(ctx, rows_from_json(body.rows), body.unit)


def csv_rows(raw: bytes) -> tuple[list[RawRow], str]:
    """The rows and unit of a CSV upload (UTF-8, a BOM allowed)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Problem(422, "invalid-csv", "The CSV is not UTF-8") from None
    return rows_from_csv(text)


def grant_batches(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, pid: int, grants: list[Grant]
) -> BatchesOut:
    """Grant in batches of MAX_BATCH, each its own operation under ``<idem>#<n>``."""
    issuer = programme_exists(ctx, pid).issuer
    ctx.custodial(issuer)
    check_operator_scope(ctx, key, issuer)
    done = []
    for n, start in enumerate(range(0, len(grants), MAX_BATCH)):
        part = [[g.holder, g.amount] for g in grants[start : start + MAX_BATCH]]
        op, _ = perform(
            ops, "voucher.grant", key, f"{idem}#{n}", {"programme": pid, "grants": part}, target=str(pid)
        )
        done.append(OperationOut.model_validate(op, from_attributes=True))
        if op.status != "confirmed":
            break  # a slow chain: the caller repeats the request with the same key to go on
    return BatchesOut(programme_id=pid, operations=done)


def campaign(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, pid: int, body: GrantsIn
) -> Operation:
    """Build the campaign's Merkle tree, store every leaf with its proof (once per programme) and
    commit the root."""
    grants = json_grants(ctx, body)
    issuer = programme_exists(ctx, pid).issuer
    ctx.custodial(issuer)
    check_operator_scope(ctx, key, issuer)
    tree = merkle_tree(pid, grants)

    def store() -> dict[str, Any]:
        with ctx.db.session() as s:
            if s.scalar(select(VoucherLeaf.id).where(VoucherLeaf.programme_id == pid).limit(1)):
                raise Problem(409, "campaign-exists", "This programme has a campaign already", str(pid))
            values = [
                {
                    "programme_id": pid,
                    "idx": i,
                    "holder": g.holder,
                    "amount_fen": g.amount,
                    "proof": "".join(p.hex() for p in tree.proof(i)),
                }
                for i, g in enumerate(grants)
            ]
            for start in range(0, len(values), 5_000):
                s.execute(insert(VoucherLeaf), values[start : start + 5_000])
            s.commit()
        return {}

    request = {"programme": pid, "root": "0x" + tree.root.hex(), "leaves": len(grants)}
    op, _ = perform(ops, "voucher.set_root", key, idem, request, target=str(pid), prepare=store)
    return op


def leaf(ctx: ServiceContext, pid: int, index: int) -> VoucherLeaf:
    with ctx.db.session() as s:
        row = s.scalar(select(VoucherLeaf).where(VoucherLeaf.programme_id == pid, VoucherLeaf.idx == index))
    if row is None:
        raise Problem(
            404, "leaf-not-found", "No such campaign grant", f"programme {pid} has no grant {index}"
        )
    return row


def leaf_proof(row: VoucherLeaf) -> list[bytes]:
    """A stored leaf's proof (its hashes, hex, one after another) as a list of 32-byte nodes."""
    return [bytes.fromhex(row.proof[i : i + 64]) for i in range(0, len(row.proof), 64)]


def campaign_tree(ctx: ServiceContext, pid: int) -> JSONResponse:
    """The campaign's grant tree as a ``StandardMerkleTree`` dump."""
    with ctx.db.session() as s:
        leaves = s.execute(
            select(VoucherLeaf.holder, VoucherLeaf.amount_fen)
            .where(VoucherLeaf.programme_id == pid)
            .order_by(VoucherLeaf.idx)
        ).all()
    if not leaves:
        raise Problem(404, "campaign-not-found", "The programme has no campaign", str(pid))
    tree = merkle_tree(pid, [Grant(h, a) for h, a in leaves])
    root = bytes(ctx.vouchers.programme(pid).root)
    committed = "0x" + root.hex() if any(root) else None
    return merkle_dump(tree, committed, f"programme-{pid}-tree.json")


def leaf_out(ctx: ServiceContext, pid: int, index: int, row: VoucherLeaf) -> dict[str, Any]:
    """One campaign grant with its proof and whether it is claimed."""
    return {
        "index": index,
        "holder": row.holder,
        "amount_fen": row.amount_fen,
        "proof": ["0x" + row.proof[i : i + 64] for i in range(0, len(row.proof), 64)],
        "claimed": ctx.vouchers.is_claimed(pid, index),
    }


def claim(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, pid: int, index: int) -> Operation:
    leaf(ctx, pid, index)
    op, _ = perform(ops, "voucher.claim", key, idem, {"programme": pid, "index": index}, target=str(pid))
    return op


def enrol(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, pid: int, holder: str) -> Operation:
    ctx.custodial(holder)
    check_operator_scope(ctx, key, holder)
    op, _ = perform(ops, "voucher.enrol", key, idem, {"programme": pid, "holder": holder})
    return op


# -- spending ----------------------------------------------------------------------------------


def spend(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, pid: int, body: SpendIn) -> Operation:
    ctx.custodial(body.holder)
    check_operator_scope(ctx, key, body.holder)
    request = {"programme": pid, **body.model_dump()}
    op, _ = perform(ops, "voucher.spend", key, idem, request, target=f"{body.holder}->{body.merchant}")
    return op


def spend_signed(
    ops: Operations, key: ApiKey, idem: str, pid: int, merchant: str, body: SignedSpendIn
) -> Operation:
    check_operator_scope(ops.ctx, key, body.holder)
    request = {"programme": pid, "merchant": merchant, **body.model_dump()}
    op, _ = perform(ops, "voucher.spend_signed", key, idem, request, target=f"{body.holder}->{merchant}")
    return op


# -- closing and reports -----------------------------------------------------------------------


def _events(ctx: ServiceContext, pid: int, *names: str) -> list[ChainEvent]:
    with ctx.db.session() as s:
        rows = s.scalars(
            select(ChainEvent)
            .where(
                ChainEvent.contract == CONTRACT,
                ChainEvent.subject == pid,  # the programme id, through the index on it
                ChainEvent.name.in_(names),
            )
            .order_by(ChainEvent.block_number, ChainEvent.log_index)
        ).all()
    return list(rows)


def close(ctx: ServiceContext, ops: Operations, indexer: Any, key: ApiKey, idem: str, pid: int) -> BatchesOut:
    """Return what is left to the issuer, a page of MAX_BATCH holders per operation."""
    programme_exists(ctx, pid)
    indexer.catch_up()
    holders = sorted({e.args["holder"] for e in _events(ctx, pid, "Granted")})
    holders = [h for h in holders if ctx.vouchers.balance(pid, h) > 0]
    pages = [holders[i : i + MAX_BATCH] for i in range(0, len(holders), MAX_BATCH)] or [[]]
    done = []
    for n, page in enumerate(pages):
        body = {"programme": pid, "holders": page}
        op, _ = perform(ops, "voucher.close", key, f"{idem}#{n}", body, target=str(pid))
        done.append(OperationOut.model_validate(op, from_attributes=True))
    return BatchesOut(programme_id=pid, operations=done)


def report(ctx: ServiceContext, indexer: Any, pid: int, format: str) -> dict[str, Any] | str:
    """The programme and its report (a dict), or its spending lines as CSV text (``format`` csv)."""
    p = programme_exists(ctx, pid)
    indexer.catch_up()
    t = ctx.vouchers.totals(pid)
    by_merchant: dict[str, int] = {}
    for e in _events(ctx, pid, "Spent"):
        by_merchant[e.args["merchant"]] = by_merchant.get(e.args["merchant"], 0) + int(e.args["bill"])
    if format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["kind", "key", "fen"])
        for c, v in sorted(t.by_category.items()):
            w.writerow(["voucher spent by category", c, v])
        for m, v in sorted(by_merchant.items()):
            w.writerow(["bills paid at merchant", m, v])
        for k in ("budget", "granted", "spent", "returned", "outstanding", "ungranted"):
            w.writerow(["total", k, getattr(t, k)])
        return buf.getvalue()
    return {
        "id": pid,
        "name": name_text(p.name),
        "issuer": p.issuer,
        "mode": MODE_NAMES.get(p.mode, "none"),
        "starts_at": p.starts_at,
        "expires_at": p.expires_at,
        "categories": ctx.vouchers.categories(pid),
        "merchant_list": p.merchant_list,
        "per_person_cap_fen": p.per_person_cap,
        "min_bill_fen": p.min_bill,
        "discount_fen": p.discount_per_spend,
        "holders": p.holders,
        "totals_fen": {
            "budget": t.budget,
            "granted": t.granted,
            "spent": t.spent,
            "returned": t.returned,
            "outstanding": t.outstanding,
            "ungranted": t.ungranted,
        },
        "conserved": t.budget == t.spent + t.returned + t.outstanding + t.ungranted,
        "voucher_spent_by_category_fen": {str(c): v for c, v in sorted(t.by_category.items())},
        "bills_by_merchant_fen": by_merchant,
    }


def holding(ctx: ServiceContext, pid: int, holder: str) -> dict[str, int]:
    programme_known(ctx, pid)
    h = ctx.vouchers.holding(pid, holder)
    return {
        "granted_fen": h.granted,
        "spent_fen": h.spent,
        "returned_fen": h.returned,
        "balance_fen": h.balance,
    }


# -- listing (issue 21: find what you created) --------------------------------------------------


def _programme_item(pid: int, p: Any, now: int) -> ProgrammeItem:
    if p.budget_returned:
        status = "closed"
    elif now >= p.expires_at:
        status = "expired"
    elif now < p.starts_at:
        status = "upcoming"
    else:
        status = "open"
    return ProgrammeItem(
        id=pid,
        name=name_text(p.name),
        issuer=p.issuer,
        mode=MODE_NAMES.get(p.mode, "none"),
        status=status,  # type: ignore[arg-type]
        starts_at=p.starts_at,
        expires_at=p.expires_at,
        budget_fen=p.budget,
        granted_fen=p.granted,
        spent_fen=p.spent,
        holders=p.holders,
    )


def programme_page(
    ctx: ServiceContext,
    indexer: Any,
    paging: Paging,
    issuer: str | None,
    status: str | None,
    name: str | None,
    serves: Callable[..., bool] | None = None,
) -> Page[ProgrammeItem]:
    """The programmes, by id (from the indexed ``ProgrammeCreated`` events; the state from the chain);
    ``serves``: a key bound to an institution, the programmes whose issuer it serves."""
    indexer.catch_up()
    now = int(ctx.w3.eth.get_block("latest")["timestamp"])
    items: dict[int, ProgrammeItem] = {}

    def item(row: ChainEvent) -> ProgrammeItem:
        pid = int(row.args["id"])
        if pid not in items:
            items[pid] = _programme_item(pid, ctx.vouchers.programme(pid), now)
        return items[pid]

    def keep(row: ChainEvent) -> bool:
        it = item(row)
        return (
            (issuer is None or it.issuer == issuer)
            and (serves is None or serves(it.issuer))
            and (status is None or it.status == status)
            and (name is None or name.lower() in it.name.lower())
        )

    q = select(ChainEvent).where(ChainEvent.contract == CONTRACT, ChainEvent.name == "ProgrammeCreated")
    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, ChainEvent.id, paging, "voucher-programs", keep=keep)
    return Page[ProgrammeItem](items=[item(r) for r in rows], next_cursor=cursor, limit=paging.limit)


def created_op(ctx: ServiceContext, op: Operation) -> Operation:
    """The creation operation of a create answer (``op`` itself, or the one whose second step
    ``op`` is: a ``vouchers.cap_per_identity`` under ``<key>#identity-cap``)."""
    if op.kind != "vouchers.cap_per_identity":
        return op
    idem = op.idempotency_key.removesuffix("#identity-cap")
    with ctx.db.session() as s:
        found = s.scalar(
            select(Operation).where(
                Operation.api_key_id == op.api_key_id,
                Operation.idempotency_key == idem,
                Operation.kind == "voucher.create",
            )
        )
    return found if found is not None else op


def created_id(op: Operation) -> int | None:
    """The new programme's id, from its ``ProgrammeCreated`` event (None while pending)."""
    return event_arg(op, "ProgrammeCreated", "id")
