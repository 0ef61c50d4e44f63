"""Restricted-purpose funds (消费红包 / 工会福利): voucher programmes over HTTP.

A programme is created and funded by a custodial issuer wallet (a government office, a union);
grants come as a list or CSV (sent in batches of 200) or as a Merkle campaign of any size (the
service builds the tree, keeps the proofs and claims for holders); holders spend at allowed
merchants, either custodial holders through the operator or self-custody holders by a signed
``Spend`` their merchant submits; after expiry the service returns what is left to the issuer,
page by page. Reports total granted, spent (by merchant category and by merchant) and returned.

Rows (grants) are read and validated exactly like disbursement rows: ``recipient`` (an address)
or ``identity``, and an amount in the stated unit; every bad row is reported at once.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import insert, select

from chain.clients.vouchers import MAX_BATCH, Grant, Mode, Terms, merkle_tree, name_text, programme_name
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
    reader_or_owner,
)
from services.common.keys import Role
from services.common.models import ApiKey, ChainEvent, VoucherLeaf
from services.common.operations import Call, Operations, builder, perform
from services.common.paging import Page, Paging, paginate
from services.common.problems import Problem, problem_response
from services.common.schemas import (
    Address,
    EcdsaSignature,
    OperationOut,
    event_arg,
    example,
    merkle_dump,
    respond,
)
from services.operator.families.cash.service import identity_hash
from services.operator.families.disburse.rows import RawRow, rows_from_csv, rows_from_json, validate_rows
from services.operator.schemas import Strict

router = APIRouter(prefix="/v1/voucher-programs", tags=["vouchers"])

ProgrammeId = Annotated[int, Path(ge=1, le=2**63 - 1)]
MODES = {"grant-list": Mode.GRANT_LIST, "open-enrolment": Mode.OPEN_ENROLMENT}


class ProgrammeIn(Strict):
    model_config = example(
        {
            "issuer": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "name": "春季消费券",
            "mode": "grant-list",
            "budget_fen": 10_000_000,
            "per_person_cap_fen": 20_000,
            "starts_at": "2026-04-01T00:00:00+08:00",
            "expires_at": "2026-04-30T23:59:59+08:00",
            "categories": [5411, 5812],
            "min_bill_fen": 10_000,
            "discount_fen": 2_000,
        }
    )

    issuer: Address = Field(description="custodial institution wallet that funds the budget")
    name: str = Field(min_length=1, max_length=32, description="e.g. 'Xiangcheng spring vouchers'")
    mode: Literal["grant-list", "open-enrolment"]
    budget_fen: int = Field(gt=0, lt=2**128)
    per_person_cap_fen: int = Field(gt=0, lt=2**128)
    starts_at: datetime
    expires_at: datetime
    categories: list[int] = Field(
        min_length=1, max_length=32, description="allowed merchant categories (MCC)"
    )
    merchants: list[Address] = Field(
        default=[], max_length=200, description="optional explicit merchant list"
    )
    min_bill_fen: int = Field(
        default=0, ge=0, lt=2**128, description="minimum-spend rule: bill at least this"
    )
    discount_fen: int = Field(
        default=0, ge=0, lt=2**128, description="e.g. 20 off: the programme pays this much"
    )


class GrantsIn(Strict):
    unit: Literal["fen", "yuan"]
    rows: list[dict[str, Any]] = Field(max_length=100_000, description="[{recipient or identity, amount}]")


class HolderIn(Strict):
    holder: Address


class SpendIn(Strict):
    holder: Address
    merchant: Address
    bill_fen: int = Field(gt=0, lt=2**128)


class SignedSpendIn(Strict):
    holder: Address
    bill_fen: int = Field(gt=0, lt=2**128)
    deadline: int = Field(ge=0, lt=2**64, description="unix seconds the holder's signature is valid until")
    signature: EcdsaSignature = Field(
        description="the holder's EIP-712 Spend: 65 bytes, or 64 (EIP-2098 compact, expanded before sending)"
    )


class BatchesOut(BaseModel):
    programme_id: int
    operations: list[OperationOut]


def _ts(value: datetime, field: str) -> int:
    if value.tzinfo is None:
        raise Problem(422, "invalid-request", "The request is invalid", f"{field} needs a time zone")
    return int(value.timestamp())


def _programme_exists(ctx: ServiceContext, pid: int) -> Any:
    try:
        return ctx.vouchers.programme(pid)
    except Exception:
        raise Problem(
            404, "programme-not-found", "Voucher programme not found", f"no programme {pid}"
        ) from None


# -- creating ----------------------------------------------------------------------------------


class ProgrammeCreatedOut(OperationOut):
    programme_id: int | None = Field(default=None, description="the new programme's id (null while pending)")
    name: str = Field(description="the programme's name as text (the event holds it as bytes32)")


@router.post("", status_code=201, responses={202: {"model": ProgrammeCreatedOut}})
def create_programme(
    body: ProgrammeIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> ProgrammeCreatedOut:
    """Create and fund a programme (the custodial issuer approves and pays the budget). The answer
    names the programme's id (``programme_id``, from its ``ProgrammeCreated`` event)."""
    ctx.custodial(body.issuer)
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
    out = respond(op, response, done_status=201)
    pid = event_arg(op, "ProgrammeCreated", "id")
    return ProgrammeCreatedOut(**out.model_dump(), programme_id=pid, name=op.request["name"])


@builder("voucher.create")
def _create(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    issuer = ctx.custodial(req["issuer"])
    terms = Terms(
        name=programme_name(req["name"]),
        mode=MODES[req["mode"]],
        starts_at=req["starts_at"],
        expires_at=req["expires_at"],
        budget=req["budget_fen"],
        per_person_cap=req["per_person_cap_fen"],
        min_bill=req["min_bill_fen"],
        discount_per_spend=req["discount_fen"],
    )
    contract = ctx.vouchers.contract
    ctx.ensure_allowance(issuer.address, contract.address, terms.budget)
    fn = contract.functions.create(terms.abi(), req["categories"], req["merchants"])
    return Call(issuer, fn)


# -- granting ----------------------------------------------------------------------------------


def _validated(ctx: ServiceContext, raw: list[RawRow], unit: str) -> list[Grant]:
    rows = validate_rows(ctx.db, raw, unit, lambda ident: identity_hash(ctx.settings.identity_pepper, ident))
    return [Grant(r.recipient, r.amount_fen) for r in rows]


def _grant_batches(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, pid: int, grants: list[Grant]
) -> BatchesOut:
    issuer = _programme_exists(ctx, pid).issuer
    ctx.custodial(issuer)
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


@router.post("/{programme_id}/grants")
def grant(
    programme_id: ProgrammeId,
    body: GrantsIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
) -> BatchesOut:
    """Grant amounts to registered wallets (sent in batches of 200; all rows checked first)."""
    return _grant_batches(
        ctx, ops, key, idem, programme_id, _validated(ctx, rows_from_json(body.rows), body.unit)
    )


@router.post(
    "/{programme_id}/grants/csv",
    responses={415: problem_response("The body is not sent as text/csv")},
    openapi_extra={
        "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}
    },
)
async def grant_csv(
    programme_id: ProgrammeId,
    request: Request,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
) -> BatchesOut:
    """Grants from a ``text/csv`` upload: ``recipient`` or ``identity``, and ``amount_fen`` or
    ``amount_yuan``."""
    if not request.headers.get("content-type", "").startswith("text/csv"):
        raise Problem(415, "unsupported-media-type", "Send the CSV as text/csv")
    raw = await request.body()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Problem(422, "invalid-csv", "The CSV is not UTF-8") from None
    rows, unit = rows_from_csv(text)
    grants = await run_in_threadpool(_validated, ctx, rows, unit)
    return await run_in_threadpool(_grant_batches, ctx, ops, key, idem, programme_id, grants)


@builder("voucher.grant")
def _grant(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    issuer = ctx.custodial(ctx.vouchers.programme(req["programme"]).issuer)
    return Call(issuer, ctx.vouchers.contract.functions.grant(req["programme"], req["grants"]))


@router.post("/{programme_id}/campaign", status_code=201, responses={202: {"model": OperationOut}})
def merkle_campaign(
    programme_id: ProgrammeId,
    body: GrantsIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """A large campaign in one transaction: the service builds the Merkle tree of the grants,
    commits its root and keeps every proof; grants are then claimed (``/campaign/{index}/claim``)."""
    grants = _validated(ctx, rows_from_json(body.rows), body.unit)
    issuer = _programme_exists(ctx, programme_id).issuer
    ctx.custodial(issuer)
    tree = merkle_tree(programme_id, grants)

    def store() -> dict[str, Any]:
        with ctx.db.session() as s:
            if s.scalar(select(VoucherLeaf.id).where(VoucherLeaf.programme_id == programme_id).limit(1)):
                raise Problem(
                    409, "campaign-exists", "This programme has a campaign already", str(programme_id)
                )
            values = [
                {
                    "programme_id": programme_id,
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

    request = {"programme": programme_id, "root": "0x" + tree.root.hex(), "leaves": len(grants)}
    op, _ = perform(ops, "voucher.set_root", key, idem, request, target=str(programme_id), prepare=store)
    return respond(op, response, done_status=201)


@builder("voucher.set_root")
def _set_root(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    issuer = ctx.custodial(ctx.vouchers.programme(req["programme"]).issuer)
    fn = ctx.vouchers.contract.functions.setGrantRoot(
        req["programme"], bytes.fromhex(req["root"][2:]), req["leaves"]
    )
    return Call(issuer, fn)


def _leaf(ctx: ServiceContext, pid: int, index: int) -> VoucherLeaf:
    with ctx.db.session() as s:
        leaf = s.scalar(select(VoucherLeaf).where(VoucherLeaf.programme_id == pid, VoucherLeaf.idx == index))
    if leaf is None:
        raise Problem(
            404, "leaf-not-found", "No such campaign grant", f"programme {pid} has no grant {index}"
        )
    return leaf


@router.get("/{programme_id}/campaign/tree", response_model=None)
def campaign_tree(programme_id: ProgrammeId, ctx: CtxDep, key: ApiKeyDep) -> JSONResponse:
    """The campaign's grant tree as ``@openzeppelin/merkle-tree``'s ``StandardMerkleTree`` dump
    (``programme-{id}-tree.json``): ``StandardMerkleTree.load`` gives the root the programme holds
    on chain and every holder's proof, values (programme, index, holder, amount in fen). The
    reader roles only: it lists every holder."""
    reader_or_owner(key, False)
    with ctx.db.session() as s:
        leaves = s.execute(
            select(VoucherLeaf.holder, VoucherLeaf.amount_fen)
            .where(VoucherLeaf.programme_id == programme_id)
            .order_by(VoucherLeaf.idx)
        ).all()
    if not leaves:
        raise Problem(404, "campaign-not-found", "The programme has no campaign", str(programme_id))
    tree = merkle_tree(programme_id, [Grant(h, a) for h, a in leaves])
    root = bytes(ctx.vouchers.programme(programme_id).root)
    committed = "0x" + root.hex() if any(root) else None
    return merkle_dump(tree, committed, f"programme-{programme_id}-tree.json")


@router.get("/{programme_id}/campaign/{index}")
def campaign_leaf(
    programme_id: ProgrammeId, index: Annotated[int, Path(ge=0, lt=2**31)], ctx: CtxDep, key: ApiKeyDep
) -> dict[str, Any]:
    """One campaign grant with its proof (a self-custody holder claims with it). The reader roles,
    or a key bound to the grant's holder."""
    reader_or_owner(key, key.wallet is not None)  # before the lookup: a 404 would tell what exists
    try:
        leaf = _leaf(ctx, programme_id, index)
    except Problem:
        reader_or_owner(key, False)  # a bound key: a missing grant is the same 403 as another's
        raise
    reader_or_owner(key, key.wallet == leaf.holder)
    proof = ["0x" + leaf.proof[i : i + 64] for i in range(0, len(leaf.proof), 64)]
    claimed = ctx.vouchers.is_claimed(programme_id, index)
    return {
        "index": index,
        "holder": leaf.holder,
        "amount_fen": leaf.amount_fen,
        "proof": proof,
        "claimed": claimed,
    }


@router.post("/{programme_id}/campaign/{index}/claim", responses={202: {"model": OperationOut}})
def claim_campaign_leaf(
    programme_id: ProgrammeId,
    index: Annotated[int, Path(ge=0, lt=2**31)],
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Claim a campaign grant for its holder (the grant goes only to the holder in the leaf)."""
    _leaf(ctx, programme_id, index)
    op, _ = perform(
        ops, "voucher.claim", key, idem, {"programme": programme_id, "index": index}, target=str(programme_id)
    )
    return respond(op, response)


@builder("voucher.claim")
def _claim(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    leaf = _leaf(ctx, req["programme"], req["index"])
    proof = [bytes.fromhex(leaf.proof[i : i + 64]) for i in range(0, len(leaf.proof), 64)]
    fn = ctx.vouchers.contract.functions.claim(
        req["programme"], req["index"], leaf.holder, leaf.amount_fen, proof
    )
    return Call(ctx.operator, fn)


@router.post("/{programme_id}/enrol", responses={202: {"model": OperationOut}})
def enrol(
    programme_id: ProgrammeId,
    body: HolderIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """A custodial holder enrols in an open-enrolment programme and receives the per-person amount."""
    ctx.custodial(body.holder)
    op, _ = perform(ops, "voucher.enrol", key, idem, {"programme": programme_id, "holder": body.holder})
    return respond(op, response)


@builder("voucher.enrol")
def _enrol(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.custodial(req["holder"]), ctx.vouchers.contract.functions.enrol(req["programme"]))


# -- spending ----------------------------------------------------------------------------------


@router.post("/{programme_id}/spend", responses={202: {"model": OperationOut}})
def spend(
    programme_id: ProgrammeId,
    body: SpendIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """A custodial holder pays a merchant's bill: the programme pays its share, the holder's wallet
    the rest, in one transaction; the merchant receives the whole bill."""
    ctx.custodial(body.holder)
    request = {"programme": programme_id, **body.model_dump()}
    op, _ = perform(ops, "voucher.spend", key, idem, request, target=f"{body.holder}->{body.merchant}")
    return respond(op, response)


@builder("voucher.spend")
def _spend(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    holder = ctx.custodial(req["holder"])
    contract = ctx.vouchers.contract
    _voucher, own = ctx.vouchers.quote(req["programme"], holder.address, req["bill_fen"])
    if own:
        ctx.ensure_allowance(holder.address, contract.address, own)
    return Call(holder, contract.functions.spend(req["programme"], req["merchant"], req["bill_fen"]))


@router.post("/{programme_id}/spend/signed", responses={202: {"model": OperationOut}})
def spend_signed(
    programme_id: ProgrammeId,
    body: SignedSpendIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: MerchantKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """A merchant submits a holder's signed EIP-712 ``Spend`` for a bill at its own till. The holder's
    wallet must allow the voucher contract to take its own share of the bill (if any)."""
    assert key.wallet is not None
    request = {"programme": programme_id, "merchant": key.wallet, **body.model_dump()}
    op, _ = perform(ops, "voucher.spend_signed", key, idem, request, target=f"{body.holder}->{key.wallet}")
    return respond(op, response)


@builder("voucher.spend_signed")
def _spend_signed(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.vouchers.contract.functions.spendWithSignature(
        req["programme"],
        req["holder"],
        req["merchant"],
        req["bill_fen"],
        req["deadline"],
        bytes.fromhex(req["signature"][2:]),
    )
    return Call(ctx.operator, fn)


# -- closing and reports -----------------------------------------------------------------------


def _events(ctx: ServiceContext, pid: int, *names: str) -> list[ChainEvent]:
    with ctx.db.session() as s:
        rows = s.scalars(
            select(ChainEvent)
            .where(
                ChainEvent.contract == "VoucherProgrammes",
                ChainEvent.subject == pid,  # the programme id, through the index on it
                ChainEvent.name.in_(names),
            )
            .order_by(ChainEvent.block_number, ChainEvent.log_index)
        ).all()
    return list(rows)


@router.post("/{programme_id}/close")
def close(
    programme_id: ProgrammeId,
    ctx: CtxDep,
    ops: OpsDep,
    indexer: IndexerDep,
    key: OperatorOrRegulatorKey,
    idem: IdempotencyKey,
) -> BatchesOut:
    """After expiry: return the ungranted budget and every holder's unspent balance to the issuer, in
    pages of 200 holders. A second close finds nothing to return (409)."""
    _programme_exists(ctx, programme_id)
    indexer.catch_up()
    holders = sorted({e.args["holder"] for e in _events(ctx, programme_id, "Granted")})
    holders = [h for h in holders if ctx.vouchers.balance(programme_id, h) > 0]
    pages = [holders[i : i + MAX_BATCH] for i in range(0, len(holders), MAX_BATCH)] or [[]]
    done = []
    for n, page in enumerate(pages):
        body = {"programme": programme_id, "holders": page}
        op, _ = perform(ops, "voucher.close", key, f"{idem}#{n}", body, target=str(programme_id))
        done.append(OperationOut.model_validate(op, from_attributes=True))
    return BatchesOut(programme_id=programme_id, operations=done)


@builder("voucher.close")
def _close(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.operator, ctx.vouchers.contract.functions.close(req["programme"], req["holders"]))


@router.get("/{programme_id}", response_model=None)
def report(
    programme_id: ProgrammeId,
    ctx: CtxDep,
    indexer: IndexerDep,
    key: ApiKeyDep,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Any:
    """The programme and its report: budget = spent + returned + outstanding grants + ungranted;
    spending by merchant category and by merchant. ``?format=csv`` for the spending lines."""
    if key.role not in {Role.OPERATOR, Role.REGULATOR, Role.AUDITOR}:
        raise Problem(403, "forbidden-role", "This key's role may not do this", f"role {key.role!r}")
    p = _programme_exists(ctx, programme_id)
    indexer.catch_up()
    t = ctx.vouchers.totals(programme_id)
    by_merchant: dict[str, int] = {}
    for e in _events(ctx, programme_id, "Spent"):
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
        return Response(buf.getvalue(), media_type="text/csv")
    return {
        "id": programme_id,
        "name": name_text(p.name),
        "issuer": p.issuer,
        "mode": {Mode.GRANT_LIST: "grant-list", Mode.OPEN_ENROLMENT: "open-enrolment"}.get(p.mode, "none"),
        "starts_at": p.starts_at,
        "expires_at": p.expires_at,
        "categories": ctx.vouchers.categories(programme_id),
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


@router.get("/{programme_id}/holders/{holder}")
def holding(programme_id: ProgrammeId, holder: Address, ctx: CtxDep, key: ApiKeyDep) -> dict[str, int]:
    """A holder's voucher balance in the programme: granted, spent, returned, balance (the reader
    roles, or the holder's own key)."""
    reader_or_owner(key, key.wallet == holder)
    _programme_exists(ctx, programme_id)
    h = ctx.vouchers.holding(programme_id, holder)
    return {
        "granted_fen": h.granted,
        "spent_fen": h.spent,
        "returned_fen": h.returned,
        "balance_fen": h.balance,
    }


# -- listing (issue 21: find what you created) --------------------------------------------------


class ProgrammeItem(BaseModel):
    """A programme as a listing shows it; ``GET /{programme_id}`` has its full report."""

    id: int
    name: str
    issuer: str
    mode: str
    status: Literal["upcoming", "open", "expired", "closed"]
    starts_at: int
    expires_at: int
    budget_fen: int
    granted_fen: int
    spent_fen: int
    holders: int


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
        mode={Mode.GRANT_LIST: "grant-list", Mode.OPEN_ENROLMENT: "open-enrolment"}.get(p.mode, "none"),
        status=status,  # type: ignore[arg-type]
        starts_at=p.starts_at,
        expires_at=p.expires_at,
        budget_fen=p.budget,
        granted_fen=p.granted,
        spent_fen=p.spent,
        holders=p.holders,
    )


@router.get("", summary="List and search voucher programmes")
def list_programmes(
    ctx: CtxDep,
    indexer: IndexerDep,
    key: ApiKeyDep,
    paging: Paging,
    issuer: Annotated[Address | None, Query()] = None,
    status: Annotated[Literal["upcoming", "open", "expired", "closed"] | None, Query()] = None,
    name: Annotated[
        str | None, Query(min_length=1, max_length=32, description="part of the name, any case")
    ] = None,
) -> Page[ProgrammeItem]:
    """The programmes, by id (from the indexed ``ProgrammeCreated`` events; the state from the
    chain). The same readers as the report: the operator, the regulator, the auditor."""
    if key.role not in {Role.OPERATOR, Role.REGULATOR, Role.AUDITOR}:
        raise Problem(403, "forbidden-role", "This key's role may not do this", f"role {key.role!r}")
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
            and (status is None or it.status == status)
            and (name is None or name.lower() in it.name.lower())
        )

    q = select(ChainEvent).where(
        ChainEvent.contract == "VoucherProgrammes", ChainEvent.name == "ProgrammeCreated"
    )
    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, ChainEvent.id, paging, "voucher-programs", keep=keep)
    return Page[ProgrammeItem](items=[item(r) for r in rows], next_cursor=cursor, limit=paging.limit)
