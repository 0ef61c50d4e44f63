"""Payroll and subsidy disbursement (薪资/补助发放): batches from JSON or CSV, maker-checker
approval, execution with progress, exceptions, reclaim. Money moves only through operations."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, insert, select

from chain.clients.disburse import Officer, Row, batch_id, batch_ref, merkle_tree, purpose_tag
from services.common.context import ServiceContext
from services.common.deps import (
    CheckerKey,
    CtxDep,
    IdempotencyKey,
    OperatorKey,
    OpsDep,
    PayrollReaderKey,
    officer_of_payer,
)
from services.common.keys import Role
from services.common.models import ApiKey, Disbursement, DisbursementRow, Operation, Wallet
from services.common.operations import Call, Operations, builder, perform
from services.common.paging import Page, Paging, paginate
from services.common.problems import Problem, problem_response
from services.common.schemas import Address, OperationOut, example, merkle_dump, respond
from services.operator.disbursements import (
    RawRow,
    Runner,
    chunk_of,
    rows_from_csv,
    rows_from_json,
    validate_rows,
)
from services.operator.families.cash.service import identity_hash
from services.operator.schemas import Strict

router = APIRouter(prefix="/v1/disbursements", tags=["disbursements"])

REFERENCE = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
PURPOSE = r"^[a-z][a-z0-9_-]{0,31}$"
Reference = Annotated[str, Path(pattern=REFERENCE, description="the payer's batch reference")]
Mode = Literal["explicit", "merkle"]


class BatchMeta(Strict):
    reference: str = Field(
        pattern=REFERENCE, description="unique batch reference; it can never be paid twice"
    )
    payer: Address = Field(description="custodial merchant (employer) or institution wallet that pays")
    purpose: str = Field(pattern=PURPOSE, examples=["salary", "subsidy", "bonus"])
    mode: Mode = Field(
        default="explicit",
        description="explicit: rows paid in chunks of 200; merkle: one root for any size, claimed per row",
    )
    ends_at: datetime = Field(description="end date (ISO 8601 with a time zone); after it the payer reclaims")


class BatchIn(BatchMeta):
    model_config = example(
        {
            "reference": "payroll-2026-05",
            "payer": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "purpose": "salary",
            "ends_at": "2026-06-30T23:59:59+08:00",
            "unit": "yuan",
            "rows": [
                {"recipient": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "amount": "4500.00"},
                {"identity": "110101199003077777", "amount": "3800.50"},
            ],
        }
    )

    unit: Literal["fen", "yuan"] = Field(description="the unit of every row's amount; no default")
    rows: list[dict[str, Any]] = Field(
        max_length=100_000,
        description='rows like {"recipient": "0x..", "amount": 1234} or {"identity": "..", "amount": "12.3"}',
    )


class OfficerIn(Strict):
    account: Address
    role: Literal["checker", "maker", "none"]


class ExecuteIn(Strict):
    push: Literal["all", "custodial"] = Field(
        default="all", description="Merkle batches: push claims for every recipient, or custodial ones only"
    )


class ChainFigures(BaseModel):
    status: str
    funded_fen: int
    paid_fen: int
    exceptions_fen: int
    reclaimed_fen: int
    outstanding_fen: int


class BatchOut(BaseModel):
    reference: str
    batch_id: str
    payer: str
    purpose: str
    mode: str
    status: str
    total_fen: int
    ends_at: int
    root: str | None
    rows_total: int
    rows_done: int
    progress: str
    rows_by_status: dict[str, int]
    chain: ChainFigures | None
    error: str | None
    operation_id: str | None = None


def get_runner(request: Request) -> Runner:
    return request.app.state.runner  # type: ignore[no-any-return]


# -- reading -----------------------------------------------------------------------------------


def _batch(ctx: ServiceContext, ref: str) -> Disbursement:
    with ctx.db.session() as s:
        row = s.get(Disbursement, ref)
    if row is None:
        raise Problem(404, "disbursement-not-found", "Disbursement not found", f"no batch {ref!r}")
    return row


def _readable(ctx: ServiceContext, key: ApiKey, ref: str) -> None:
    """A checker reads (and approves) the batches of the payers it is an officer of; a batch of
    another payer and a batch that does not exist get the same 403, so that the answer tells
    nothing (before the fix an approval of another payer's batch was refused by the contract, and
    the decoded error named that payer's wallet)."""
    if key.role != Role.CHECKER:
        return
    with ctx.db.session() as s:
        payer = s.scalar(select(Disbursement.payer).where(Disbursement.ref == ref))
    if payer is None or (payer != key.wallet and not officer_of_payer(ctx, key, payer)):
        raise Problem(
            403,
            "not-your-payer",
            "A checker acts only on the batches of the payers it is an officer of",
            "no batch of such a payer has this reference",
        )


def _out(ctx: ServiceContext, ref: str, operation_id: str | None = None) -> BatchOut:
    b = _batch(ctx, ref)
    with ctx.db.session() as s:
        counts = dict(
            s.execute(
                select(DisbursementRow.status, func.count(DisbursementRow.id))
                .where(DisbursementRow.ref == ref)
                .group_by(DisbursementRow.status)
            ).all()
        )
    figures = None
    if b.status not in ("draft", "cancelled") or b.chunk_count:
        try:
            c = ctx.disburse.batch(bytes.fromhex(b.batch_id[2:]))
            figures = ChainFigures(
                status=c.status.name.lower(),
                funded_fen=c.funded,
                paid_fen=c.paid,
                exceptions_fen=c.exceptions,
                reclaimed_fen=c.reclaimed,
                outstanding_fen=c.outstanding,
            )
        except Exception:  # not on chain yet (a draft whose creation is pending)
            figures = None
    return BatchOut(
        reference=b.ref,
        batch_id=b.batch_id,
        payer=b.payer,
        purpose=b.purpose,
        mode=b.mode,
        status=b.status,
        total_fen=b.total_fen,
        ends_at=b.ends_at,
        root=b.root,
        rows_total=b.rows_total,
        rows_done=b.rows_done,
        progress=f"{b.rows_done} of {b.rows_total} rows done",
        rows_by_status={str(k): int(v) for k, v in counts.items()},
        chain=figures,
        error=b.error,
        operation_id=operation_id,
    )


@router.get("/{reference}")
def get_disbursement(reference: Reference, ctx: CtxDep, key: PayrollReaderKey) -> BatchOut:
    """Status: rows done of total, paid / exceptions / outstanding on chain."""
    _readable(ctx, key, reference)
    return _out(ctx, reference)


@router.get("/{reference}/exceptions", response_model=None)
def get_exceptions(
    reference: Reference,
    ctx: CtxDep,
    key: PayrollReaderKey,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Any:
    """Rows that could not be paid, with the reason (the token's error). ``?format=csv`` to download."""
    _readable(ctx, key, reference)
    _batch(ctx, reference)
    with ctx.db.session() as s:
        rows = s.scalars(
            select(DisbursementRow)
            .where(DisbursementRow.ref == reference, DisbursementRow.status == "exception")
            .order_by(DisbursementRow.idx)
        ).all()
    items = [
        {"index": r.idx, "recipient": r.recipient, "amount_fen": r.amount_fen, "reason": r.reason}
        for r in rows
    ]
    if format == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["index", "recipient", "amount_fen", "reason"])
        writer.writeheader()
        writer.writerows(items)
        return Response(
            buf.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{reference}-exceptions.csv"'},
        )
    return {"reference": reference, "exceptions": items}


@router.get("/{reference}/tree", response_model=None)
def get_tree(reference: Reference, ctx: CtxDep, key: PayrollReaderKey) -> JSONResponse:
    """A Merkle batch's tree as ``@openzeppelin/merkle-tree``'s ``StandardMerkleTree`` dump
    (``{reference}-tree.json``): ``StandardMerkleTree.load`` gives the on-chain root and every
    recipient's proof, values (batch id, index, recipient, amount in fen)."""
    _readable(ctx, key, reference)
    b = _batch(ctx, reference)
    if b.mode != "merkle":
        raise Problem(409, "not-a-merkle-batch", "The batch has no Merkle tree", f"{reference!r} is {b.mode}")
    with ctx.db.session() as s:
        rows = s.execute(
            select(DisbursementRow.recipient, DisbursementRow.amount_fen)
            .where(DisbursementRow.ref == reference)
            .order_by(DisbursementRow.idx)
        ).all()
    tree = merkle_tree(bytes.fromhex(b.batch_id[2:]), [Row(r, a) for r, a in rows])
    return merkle_dump(tree, b.root, f"{reference}-tree.json")


@router.get("/{reference}/rows/{index}")
def get_row(
    reference: Reference, index: Annotated[int, Path(ge=0, lt=2**31)], ctx: CtxDep, key: PayrollReaderKey
) -> dict[str, Any]:
    """One row, with its Merkle proof (a self-custody recipient claims with it)."""
    _readable(ctx, key, reference)
    with ctx.db.session() as s:
        r = s.scalar(
            select(DisbursementRow).where(DisbursementRow.ref == reference, DisbursementRow.idx == index)
        )
    if r is None:
        raise Problem(404, "row-not-found", "Row not found", f"batch {reference!r} has no row {index}")
    return {
        "index": r.idx,
        "recipient": r.recipient,
        "amount_fen": r.amount_fen,
        "status": r.status,
        "reason": r.reason,
        "chunk": r.chunk,
        "proof": _proof(r.proof),
    }


def _proof(stored: str | None) -> list[str]:
    if not stored:
        return []
    return ["0x" + stored[i : i + 64] for i in range(0, len(stored), 64)]


# -- officers ----------------------------------------------------------------------------------


@router.post("/payers/{payer}/officers", responses={202: {"model": OperationOut}})
def set_officer(
    payer: Address,
    body: OfficerIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """The (custodial) payer makes an account one of its checkers or makers, or removes it."""
    ctx.custodial(payer)
    request = {"payer": payer, **body.model_dump()}
    op, _ = perform(ops, "disburse.set_officer", key, idem, request, target=f"{payer}:{body.account}")
    return respond(op, response)


@builder("disburse.set_officer")
def _set_officer(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    role = {"checker": Officer.CHECKER, "maker": Officer.MAKER, "none": Officer.NONE}[req["role"]]
    return Call(
        ctx.custodial(req["payer"]), ctx.disburse.contract.functions.setOfficer(req["account"], int(role))
    )


# -- creating ----------------------------------------------------------------------------------


@router.post("", status_code=201, responses={202: {"model": BatchOut}})
def create_disbursement(
    body: BatchIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> BatchOut:
    """Create a batch from a JSON list. Every row is checked first; all errors come back together
    (row number and reason) and nothing is created. The payer (custodial) signs the batch."""
    return _create(ctx, ops, key, idem, body, rows_from_json(body.rows), body.unit, response)


@router.post(
    "/csv",
    status_code=201,
    responses={
        202: {"model": BatchOut},
        413: problem_response("The CSV is larger than XCPAY_MAX_UPLOAD_BYTES (16 MiB by default)"),
        415: problem_response("The body is not sent as text/csv"),
    },
    openapi_extra={
        "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}
    },
)
async def create_disbursement_from_csv(
    request: Request,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
    reference: Annotated[str, Query(pattern=REFERENCE)],
    payer: Annotated[Address, Query()],
    purpose: Annotated[str, Query(pattern=PURPOSE)],
    ends_at: Annotated[datetime, Query()],
    mode: Annotated[Mode, Query()] = "explicit",
) -> BatchOut:
    """Create a batch from an uploaded CSV (``Content-Type: text/csv``). Columns: ``recipient`` (an
    address) or ``identity`` (the identity the wallet was registered with), and ``amount_fen`` or
    ``amount_yuan``; the column name says the unit, a bare ``amount`` is refused."""
    if not request.headers.get("content-type", "").startswith("text/csv"):
        raise Problem(415, "unsupported-media-type", "Send the CSV as text/csv")
    raw = await request.body()  # at most XCPAY_MAX_UPLOAD_BYTES: the guard refused more while it streamed
    if len(raw) > ctx.settings.max_upload_bytes:  # (and this app without the guard, in a unit test)
        raise Problem(
            413, "body-too-large", "The CSV is too large", f"at most {ctx.settings.max_upload_bytes} bytes"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Problem(422, "invalid-csv", "The CSV is not UTF-8") from None
    meta = BatchMeta.model_validate(
        {"reference": reference, "payer": payer, "purpose": purpose, "mode": mode, "ends_at": ends_at}
    )
    rows, unit = rows_from_csv(text)
    return await run_in_threadpool(_create, ctx, ops, key, idem, meta, rows, unit, response)


def _create(
    ctx: ServiceContext,
    ops: Operations,
    key: ApiKey,
    idem: str,
    meta: BatchMeta,
    raw: list[RawRow],
    unit: str,
    response: Response,
) -> BatchOut:
    if meta.ends_at.tzinfo is None:
        raise Problem(422, "invalid-request", "The request is invalid", "ends_at needs a time zone")
    ends_at = int(meta.ends_at.timestamp())
    if ends_at <= int(ctx.w3.eth.get_block("latest")["timestamp"]):
        raise Problem(
            422, "end-in-past", "The end date is in the past", f"ends_at {meta.ends_at.isoformat()}"
        )
    ctx.custodial(meta.payer)
    rows = validate_rows(ctx.db, raw, unit, lambda ident: identity_hash(ctx.settings.identity_pepper, ident))
    total = sum(r.amount_fen for r in rows)
    if total >= 2**63:
        raise Problem(422, "total-too-large", "The batch total is too large")
    bid = batch_id(meta.payer, meta.reference)  # scoped by payer on chain (Disbursement.batchIdOf)
    digest = hashlib.sha256(json.dumps([[r.recipient, r.amount_fen] for r in rows]).encode()).hexdigest()
    tree = merkle_tree(bid, [Row(r.recipient, r.amount_fen) for r in rows]) if meta.mode == "merkle" else None
    request = {
        "ref": meta.reference,
        "batch_id": "0x" + bid.hex(),
        "payer": meta.payer,
        "purpose": meta.purpose,
        "mode": meta.mode,
        "ends_at": ends_at,
        "total_fen": total,
        "rows": len(rows),
        "rows_sha256": digest,
        "root": "0x" + tree.root.hex() if tree else None,
    }
    _discard_failed_draft(ctx, meta.reference)  # one whose creation failed after a 202 frees its reference
    with ctx.db.session() as s:
        replay = s.scalar(
            select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
        )
        if replay is None and s.get(Disbursement, meta.reference) is not None:
            raise Problem(
                409,
                "batch-exists",
                "A batch with this reference exists",
                f"{meta.reference!r} was used already",
            )

    size = ctx.settings.disburse_chunk_rows

    def prepare() -> dict[str, Any]:
        from sqlalchemy.exc import IntegrityError

        with ctx.db.session() as s:
            s.add(
                Disbursement(
                    ref=meta.reference,
                    batch_id=request["batch_id"],
                    payer=meta.payer,
                    purpose=meta.purpose,
                    mode=meta.mode,
                    total_fen=total,
                    ends_at=ends_at,
                    root=request["root"],
                    status="draft",
                    rows_total=len(rows),
                    chunk_count=(len(rows) + size - 1) // size,
                    created_by=key.id,
                )
            )
            try:
                s.flush()
            except IntegrityError:
                raise Problem(
                    409, "batch-exists", "A batch with this reference exists", repr(meta.reference)
                ) from None
            values = [
                {
                    "ref": meta.reference,
                    "idx": i,
                    "recipient": r.recipient,
                    "amount_fen": r.amount_fen,
                    "chunk": chunk_of(i, size),
                    "proof": "".join(p.hex() for p in tree.proof(i)) if tree else None,
                    "status": "pending",
                }
                for i, r in enumerate(rows)
            ]
            for start in range(0, len(values), 5_000):
                s.execute(insert(DisbursementRow), values[start : start + 5_000])
            s.commit()
        return {}

    try:
        op, _ = perform(ops, "disburse.create", key, idem, request, target=meta.reference, prepare=prepare)
    except Problem:
        _discard_failed_draft(ctx, meta.reference)  # refused on chain: nothing stays, the reference is free
        raise
    if op.status != "confirmed":
        response.status_code = 202
        return _out(ctx, meta.reference, op.id)
    batch = _batch(ctx, meta.reference)
    if batch.mode == "explicit":
        for chunk in range(batch.chunk_count):
            add, _ = perform(
                ops,
                "disburse.add_rows",
                key,
                f"{idem}#rows{chunk}",
                {"ref": meta.reference, "chunk": chunk},
                target=meta.reference,
            )
            if add.status != "confirmed":
                response.status_code = 202
                return _out(ctx, meta.reference, add.id)
    with ctx.db.session() as s:
        row = s.get(Disbursement, meta.reference)
        assert row is not None
        if row.status == "draft":
            row.status = "ready"
            s.commit()
    response.status_code = 201
    return _out(ctx, meta.reference, op.id)


def _discard_failed_draft(ctx: ServiceContext, ref: str) -> None:
    """Delete a draft (and its rows) that no live creation names: its ``disburse.create`` failed
    (refused on chain, e.g. a personal wallet as payer), so nothing of it is on chain and it could
    never be approved or cancelled; deleting it frees the reference. A draft whose creation is
    pending or confirmed, and a batch past draft, are left alone (the same reference's new batch too)."""
    with ctx.db.session() as s:
        row = s.get(Disbursement, ref, with_for_update=True)
        if row is None or row.status != "draft":
            return
        live = s.scalar(
            select(Operation.id)
            .where(
                Operation.kind == "disburse.create",
                Operation.status != "failed",
                Operation.request["ref"].as_string() == ref,
                Operation.request["batch_id"].as_string() == row.batch_id,
            )
            .limit(1)
        )
        if live is not None:
            return
        s.execute(delete(DisbursementRow).where(DisbursementRow.ref == ref))
        s.delete(row)
        s.commit()


def _rows(ctx: ServiceContext, ref: str, chunk: int) -> list[DisbursementRow]:
    with ctx.db.session() as s:
        return list(
            s.scalars(
                select(DisbursementRow)
                .where(DisbursementRow.ref == ref, DisbursementRow.chunk == chunk)
                .order_by(DisbursementRow.idx)
            )
        )


def _bid(ctx: ServiceContext, ref: str) -> tuple[Disbursement, bytes]:
    b = _batch(ctx, ref)
    return b, bytes.fromhex(b.batch_id[2:])


@builder("disburse.create")
def _create_batch(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    root = bytes.fromhex(req["root"][2:]) if req["root"] else b"\0" * 32
    fn = ctx.disburse.contract.functions.createBatch(
        batch_ref(req["ref"]),
        req["payer"],
        purpose_tag(req["purpose"]),
        req["ends_at"],
        req["total_fen"],
        root,
        req["rows"] if req["root"] else 0,
    )
    return Call(ctx.custodial(req["payer"]), fn)


@builder("disburse.add_rows")
def _add_rows(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    b, bid = _bid(ctx, req["ref"])
    rows = [(r.recipient, r.amount_fen) for r in _rows(ctx, req["ref"], req["chunk"])]
    return Call(ctx.custodial(b.payer), ctx.disburse.contract.functions.addRows(bid, rows))


# -- maker-checker -----------------------------------------------------------------------------


@router.post("/{reference}/approve", responses={202: {"model": OperationOut}})
def approve(
    reference: Reference, ctx: CtxDep, ops: OpsDep, key: CheckerKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """A checker approves: the total is taken from the payer and locked for the batch. The key
    that created the batch cannot approve it; the checker key signs with its own wallet."""
    _readable(ctx, key, reference)  # decided before the batch is looked up: no 404 oracle
    b = _batch(ctx, reference)
    if b.created_by == key.id:
        raise Problem(
            403,
            "maker-checker",
            "The creator of a batch cannot approve it",
            "approve with another checker's key",
        )
    if key.wallet is None:
        raise Problem(
            422,
            "checker-without-wallet",
            "This checker key has no wallet",
            "create checker keys with a wallet",
        )
    ctx.custodial(key.wallet)
    if b.status not in ("ready", "approved", "executing", "executed", "closed"):
        raise Problem(
            409, "batch-not-ready", "The batch is not ready for approval", f"its status is {b.status}"
        )
    op, _ = perform(
        ops, "disburse.approve", key, idem, {"ref": reference, "checker": key.wallet}, target=reference
    )
    if op.status == "confirmed":
        with ctx.db.session() as s:
            row = s.get(Disbursement, reference)
            assert row is not None
            if row.status == "ready":
                row.status, row.approved_by = "approved", key.id
                s.commit()
    return respond(op, response)


@builder("disburse.approve")
def _approve(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    b, bid = _bid(ctx, req["ref"])
    payer = ctx.custodial(b.payer)
    contract = ctx.disburse.contract
    ctx.ensure_allowance(payer.address, contract.address, b.total_fen)
    return Call(ctx.custodial(req["checker"]), contract.functions.approve(bid))


@router.post("/{reference}/cancel", responses={202: {"model": OperationOut}})
def cancel(
    reference: Reference, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Abandon a batch that was not approved; nothing had moved."""
    _batch(ctx, reference)
    op, _ = perform(ops, "disburse.cancel", key, idem, {"ref": reference}, target=reference)
    if op.status == "confirmed":
        _set_status(ctx, reference, "cancelled")
    return respond(op, response)


@builder("disburse.cancel")
def _cancel(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    b, bid = _bid(ctx, req["ref"])
    return Call(ctx.custodial(b.payer), ctx.disburse.contract.functions.cancel(bid))


def _set_status(ctx: ServiceContext, ref: str, status: str) -> None:
    with ctx.db.session() as s:
        row = s.get(Disbursement, ref)
        assert row is not None
        row.status = status
        s.commit()


# -- paying ------------------------------------------------------------------------------------


@router.post("/{reference}/execute", status_code=202)
def execute(
    reference: Reference,
    request: Request,
    ctx: CtxDep,
    key: OperatorKey,
    body: Annotated[ExecuteIn | None, Body()] = None,
) -> BatchOut:
    """Start paying an approved batch in the background; poll the batch for progress. Each chunk
    is its own idempotent operation, so calling this again (or a restart) resumes, never repays.
    The body is optional (``{"push": "custodial"}`` for Merkle batches)."""
    body = body or ExecuteIn()
    b = _batch(ctx, reference)
    if b.status not in ("approved", "executing", "executed"):
        raise Problem(409, "batch-not-approved", "The batch is not approved", f"its status is {b.status}")
    with ctx.db.session() as s:
        row = s.get(Disbursement, reference)
        assert row is not None
        if row.status == "approved":
            row.status, row.executed_by, row.error = "executing", key.id, None
            row.push = body.push if row.mode == "merkle" else None
            s.commit()
    if _batch(ctx, reference).status == "executing":
        get_runner(request).start(reference)
    return _out(ctx, reference)


@builder("disburse.pay_chunk")
def _pay_chunk(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    _, bid = _bid(ctx, req["ref"])
    rows = [(r.recipient, r.amount_fen) for r in _rows(ctx, req["ref"], req["chunk"])]
    return Call(ctx.operator, ctx.disburse.contract.functions.payChunk(bid, req["chunk"], rows))


@builder("disburse.push")
def _push(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    _, bid = _bid(ctx, req["ref"])
    rows = [r for r in _rows(ctx, req["ref"], req["chunk"]) if r.status == "pending"]
    if req["custodial_only"]:
        with ctx.db.session() as s:
            custodial = set(
                s.scalars(
                    select(Wallet.address).where(
                        Wallet.address.in_([r.recipient for r in rows]), Wallet.custody == "custodial"
                    )
                )
            )
        rows = [r for r in rows if r.recipient in custodial]
    claims = [
        (r.idx, r.recipient, r.amount_fen, [bytes.fromhex(p[2:]) for p in _proof(r.proof)]) for r in rows
    ]
    return Call(ctx.operator, ctx.disburse.contract.functions.pushClaims(bid, claims))


@router.post("/{reference}/exceptions/{index}/retry", responses={202: {"model": OperationOut}})
def retry_exception(
    reference: Reference,
    index: Annotated[int, Path(ge=0, lt=2**31)],
    request: Request,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Pay an exception whose cause was resolved (the wallet registered, unfrozen, under its cap)."""
    _batch(ctx, reference)
    op, _ = perform(ops, "disburse.retry", key, idem, {"ref": reference, "index": index}, target=reference)
    if op.status == "confirmed":
        get_runner(request).apply_events(reference, op.result or {})
    return respond(op, response)


@builder("disburse.retry")
def _retry(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    _, bid = _bid(ctx, req["ref"])
    return Call(ctx.operator, ctx.disburse.contract.functions.retryException(bid, req["index"]))


@router.post("/{reference}/reclaim", responses={202: {"model": OperationOut}})
def reclaim(
    reference: Reference, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """After the end date: what was not paid (exceptions included) returns to the payer."""
    _batch(ctx, reference)
    op, _ = perform(ops, "disburse.reclaim", key, idem, {"ref": reference}, target=reference)
    if op.status == "confirmed":
        with ctx.db.session() as s:
            table = DisbursementRow.__table__
            s.execute(
                table.update()
                .where(table.c.ref == reference, table.c.status.in_(["pending", "exception"]))
                .values(status="reclaimed")
            )
            row = s.get(Disbursement, reference)
            assert row is not None
            row.status = "closed"
            s.commit()
    return respond(op, response)


@builder("disburse.reclaim")
def _reclaim(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    _, bid = _bid(ctx, req["ref"])
    return Call(ctx.operator, ctx.disburse.contract.functions.reclaim(bid))


# -- listing (issue 21: find what you created) --------------------------------------------------


class BatchItem(BaseModel):
    """A batch as a listing shows it (its record here; ``GET /{reference}`` adds the chain's figures)."""

    reference: str
    batch_id: str
    payer: str
    purpose: str
    mode: str
    status: str
    total_fen: int
    ends_at: int
    rows_total: int
    rows_done: int
    error: str | None
    created_at: datetime


BATCH_STATUSES = Literal["draft", "ready", "approved", "executing", "executed", "closed", "cancelled"]


@router.get("", summary="List and search disbursement batches")
def list_disbursements(
    ctx: CtxDep,
    key: PayrollReaderKey,
    paging: Paging,
    payer: Annotated[Address | None, Query()] = None,
    status: Annotated[BATCH_STATUSES | None, Query()] = None,
    purpose: Annotated[str | None, Query(pattern=PURPOSE)] = None,
) -> Page[BatchItem]:
    """The batches, by reference. The reader roles list every batch; a checker only those of the
    payers it is an officer of (the single read's rule, ``_readable``)."""
    q = select(Disbursement)
    if payer is not None:
        q = q.where(Disbursement.payer == payer)
    if status is not None:
        q = q.where(Disbursement.status == status)
    if purpose is not None:
        q = q.where(Disbursement.purpose == purpose)
    keep = None
    if key.role == Role.CHECKER:
        officers: dict[str, bool] = {}

        def keep(row: Disbursement) -> bool:
            if row.payer not in officers:
                officers[row.payer] = row.payer == key.wallet or officer_of_payer(ctx, key, row.payer)
            return officers[row.payer]

    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, Disbursement.ref, paging, "disbursements", keep=keep)
    items = [
        BatchItem(
            reference=r.ref,
            batch_id=r.batch_id,
            payer=r.payer,
            purpose=r.purpose,
            mode=r.mode,
            status=r.status,
            total_fen=r.total_fen,
            ends_at=r.ends_at,
            rows_total=r.rows_total,
            rows_done=r.rows_done,
            error=r.error,
            created_at=r.created_at,
        )
        for r in rows
    ]
    return Page[BatchItem](items=items, next_cursor=cursor, limit=paging.limit)
