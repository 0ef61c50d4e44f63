"""Payroll and subsidy disbursement on the service side: the batches' records and reports, the
steps of creating a batch, and maker-checker approval, cancellation, execution, retry and reclaim.

Money moves only through operations (``services/common/operations.py``), each built by a
builder in ``builders.py``; the chunks of an approved batch are paid by ``runner.Runner``. The
routes (``routes.py``) validate and authorise, call a function here, and answer.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import deque
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from web3.exceptions import TransactionNotFound

from chain.clients.disburse import MAX_CHUNKS_PER_CALL, Officer, Row, batch_id, merkle_tree
from chain.merkle import MerkleTree
from services.common.context import ServiceContext
from services.common.keys import Role
from services.common.models import ApiKey, Operation, Wallet
from services.common.operations import Operations, Submitted, perform, submit
from services.common.paging import Page, PageQuery, paginate
from services.common.problems import Problem
from services.common.scope import check_operator_scope, check_read_scope, read_filter, reads_scoped
from services.operator.families.cash.service import identity_hash
from services.operator.families.disburse.models import Disbursement, DisbursementRow
from services.operator.families.disburse.officers import officer_of_payer
from services.operator.families.disburse.rows import ParsedRow, RawRow, chunk_of, validate_rows
from services.operator.families.disburse.runner import WINDOW, Runner
from services.operator.families.disburse.schemas import (
    BatchItem,
    BatchMeta,
    BatchOut,
    ChainFigures,
    OfficerIn,
)

OFFICER_ROLES = {"checker": Officer.CHECKER, "maker": Officer.MAKER, "none": Officer.NONE}

# -- records -----------------------------------------------------------------------------------


def batch(ctx: ServiceContext, ref: str) -> Disbursement:
    """The batch's record; a 404 problem when there is none."""
    with ctx.db.session() as s:
        row = s.get(Disbursement, ref)
    if row is None:
        raise Problem(404, "disbursement-not-found", "Disbursement not found", f"no batch {ref!r}")
    return row


def batch_and_id(ctx: ServiceContext, ref: str) -> tuple[Disbursement, bytes]:
    """The batch's record and its on-chain id (what every contract call names)."""
    b = batch(ctx, ref)
    return b, bytes.fromhex(b.batch_id[2:])


def chunk_rows(ctx: ServiceContext, ref: str, chunk: int) -> list[DisbursementRow]:
    """The rows of one chunk, in index order (the order the contract pays them in)."""
    with ctx.db.session() as s:
        return list(
            s.scalars(
                select(DisbursementRow)
                .where(DisbursementRow.ref == ref, DisbursementRow.chunk == chunk)
                .order_by(DisbursementRow.idx)
            )
        )


def chunks_rows(ctx: ServiceContext, ref: str, first: int, count: int) -> list[list[DisbursementRow]]:
    """The rows of chunks ``first`` .. ``first + count - 1``, chunk by chunk, each in index order."""
    with ctx.db.session() as s:
        rows = s.scalars(
            select(DisbursementRow)
            .where(
                DisbursementRow.ref == ref,
                DisbursementRow.chunk >= first,
                DisbursementRow.chunk < first + count,
            )
            .order_by(DisbursementRow.idx)
        ).all()
    chunks: list[list[DisbursementRow]] = [[] for _ in range(count)]
    for r in rows:
        chunks[r.chunk - first].append(r)
    return chunks


def custodial_among(ctx: ServiceContext, addresses: Iterable[str]) -> set[str]:
    """Those of ``addresses`` whose key the service holds (a Merkle push for custodial ones only)."""
    with ctx.db.session() as s:
        return set(
            s.scalars(
                select(Wallet.address).where(
                    Wallet.address.in_(list(addresses)), Wallet.custody == "custodial"
                )
            )
        )


def proof(stored: str | None) -> list[str]:
    """A row's stored Merkle proof (hex digests end to end) as a list of 0x-prefixed hashes."""
    if not stored:
        return []
    return ["0x" + stored[i : i + 64] for i in range(0, len(stored), 64)]


def readable(ctx: ServiceContext, key: ApiKey, ref: str) -> None:
    """A checker reads (and approves) the batches of the payers it is an officer of; a batch of
    another payer and a batch that does not exist get the same 403, so that the answer tells
    nothing (before the fix an approval of another payer's batch was refused by the contract, and
    the decoded error named that payer's wallet). A key bound to an institution reads the batches
    of the payers its institution serves (403 ``institution-scope``; the recipients may be anyone's)."""
    if reads_scoped(key):
        with ctx.db.session() as s:
            payer = s.scalar(select(Disbursement.payer).where(Disbursement.ref == ref))
        if payer is not None:
            check_read_scope(ctx, key, payer)
        return
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


def _set_status(ctx: ServiceContext, ref: str, status: str) -> None:
    with ctx.db.session() as s:
        row = s.get(Disbursement, ref)
        assert row is not None
        row.status = status
        s.commit()


# -- reports -----------------------------------------------------------------------------------


def report(ctx: ServiceContext, ref: str, operation_id: str | None = None) -> BatchOut:
    """The batch as its status read shows it: rows done of total, rows by status, and the
    chain's figures (paid, exceptions, outstanding) once it is on chain."""
    b = batch(ctx, ref)
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


EXCEPTION_FIELDS = ["index", "recipient", "amount_fen", "reason"]


def exceptions(ctx: ServiceContext, ref: str) -> list[dict[str, Any]]:
    """The rows that could not be paid, with the reason (the token's error), in index order."""
    batch(ctx, ref)
    with ctx.db.session() as s:
        rows = s.scalars(
            select(DisbursementRow)
            .where(DisbursementRow.ref == ref, DisbursementRow.status == "exception")
            .order_by(DisbursementRow.idx)
        ).all()
    return [
        {"index": r.idx, "recipient": r.recipient, "amount_fen": r.amount_fen, "reason": r.reason}
        for r in rows
    ]


def exceptions_csv(items: list[dict[str, Any]]) -> str:
    """``exceptions`` as a CSV with a header line (the download)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EXCEPTION_FIELDS)
    writer.writeheader()
    writer.writerows(items)
    return buf.getvalue()


def tree(ctx: ServiceContext, ref: str) -> tuple[MerkleTree, str | None]:
    """A Merkle batch's tree, rebuilt from its rows, and the root it was created with."""
    b = batch(ctx, ref)
    if b.mode != "merkle":
        raise Problem(409, "not-a-merkle-batch", "The batch has no Merkle tree", f"{ref!r} is {b.mode}")
    with ctx.db.session() as s:
        rows = s.execute(
            select(DisbursementRow.recipient, DisbursementRow.amount_fen)
            .where(DisbursementRow.ref == ref)
            .order_by(DisbursementRow.idx)
        ).all()
    return merkle_tree(bytes.fromhex(b.batch_id[2:]), [Row(r, a) for r, a in rows]), b.root


def row(ctx: ServiceContext, ref: str, index: int) -> dict[str, Any]:
    """One row, with its Merkle proof (a self-custody recipient claims with it)."""
    with ctx.db.session() as s:
        r = s.scalar(select(DisbursementRow).where(DisbursementRow.ref == ref, DisbursementRow.idx == index))
    if r is None:
        raise Problem(404, "row-not-found", "Row not found", f"batch {ref!r} has no row {index}")
    return {
        "index": r.idx,
        "recipient": r.recipient,
        "amount_fen": r.amount_fen,
        "status": r.status,
        "reason": r.reason,
        "chunk": r.chunk,
        "proof": proof(r.proof),
    }


def listing(
    ctx: ServiceContext,
    key: ApiKey,
    paging: PageQuery,
    payer: str | None,
    status: str | None,
    purpose: str | None,
) -> Page[BatchItem]:
    """The batches, by reference. The reader roles list every batch; a checker only those of the
    payers it is an officer of (the single read's rule, ``readable``); a key bound to an
    institution those of the payers its institution serves."""
    q = select(Disbursement)
    if payer is not None:
        q = q.where(Disbursement.payer == payer)
    if status is not None:
        q = q.where(Disbursement.status == status)
    if purpose is not None:
        q = q.where(Disbursement.purpose == purpose)
    keep = None
    serves = read_filter(ctx, key)
    if serves is not None:

        def keep(row: Disbursement) -> bool:
            return serves(row.payer)

    elif key.role == Role.CHECKER:
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


# -- officers ----------------------------------------------------------------------------------


def set_officer(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, payer: str, body: OfficerIn
) -> Operation:
    """The (custodial) payer makes an account one of its checkers or makers, or removes it."""
    ctx.custodial(payer)
    check_operator_scope(ctx, key, payer)
    request = {"payer": payer, **body.model_dump()}
    op, _ = perform(ops, "disburse.set_officer", key, idem, request, target=f"{payer}:{body.account}")
    return op


# -- creating ----------------------------------------------------------------------------------


def create(
    ctx: ServiceContext,
    ops: Operations,
    key: ApiKey,
    idem: str,
    meta: BatchMeta,
    raw: list[RawRow],
    unit: str,
) -> tuple[BatchOut, int]:
    """Create a batch: check its end date and every row (all errors together, nothing created),
    store the draft and its rows, draft it on chain (the payer signs), add its rows chunk by chunk
    (explicit batches), and mark it ready. Returns the batch and the HTTP status: 201 when it is
    ready, 202 while an operation of it is still pending."""
    ends_at = _end_time(ctx, meta)
    ctx.custodial(meta.payer)
    check_operator_scope(ctx, key, meta.payer)
    rows = _checked_rows(ctx, raw, unit)
    request, merkle = _creation_request(meta, ends_at, rows)
    _refuse_taken_reference(ctx, key, idem, meta.reference)

    def prepare() -> dict[str, Any]:
        _store_draft(ctx, key, meta, request, rows, merkle)
        return {}  # nothing to add to the request: the draft is stored beside it

    try:
        op, _ = perform(ops, "disburse.create", key, idem, request, target=meta.reference, prepare=prepare)
    except Problem:
        discard_failed_draft(ctx, meta.reference)  # refused on chain: nothing stays, the reference is free
        raise
    if op.status != "confirmed":
        return report(ctx, meta.reference, op.id), 202
    pending = _add_rows(ctx, ops, key, idem, meta.reference)
    if pending is not None:
        return report(ctx, meta.reference, pending.id), 202
    _mark_ready(ctx, meta.reference)
    return report(ctx, meta.reference, op.id), 201


def _end_time(ctx: ServiceContext, meta: BatchMeta) -> int:
    """The end date in unix seconds; it needs a time zone and must lie after the latest block."""
    if meta.ends_at.tzinfo is None:
        raise Problem(422, "invalid-request", "The request is invalid", "ends_at needs a time zone")
    ends_at = int(meta.ends_at.timestamp())
    if ends_at <= int(ctx.w3.eth.get_block("latest")["timestamp"]):
        raise Problem(
            422, "end-in-past", "The end date is in the past", f"ends_at {meta.ends_at.isoformat()}"
        )
    return ends_at


def _checked_rows(ctx: ServiceContext, raw: list[RawRow], unit: str) -> list[ParsedRow]:
    """Every row checked (identities resolved to personal wallets), and the total bounded."""
    rows = validate_rows(
        ctx.db,
        raw,
        unit,
        lambda ident: identity_hash(ctx.settings.identity_pepper, ident),
        live=ctx.cash.live_personal_among,
        retired=ctx.cash.retired_among,
    )
    if sum(r.amount_fen for r in rows) >= 2**63:
        raise Problem(422, "total-too-large", "The batch total is too large")
    return rows


def _creation_request(
    meta: BatchMeta, ends_at: int, rows: list[ParsedRow]
) -> tuple[dict[str, Any], MerkleTree | None]:
    """The stored request of ``disburse.create`` (what its builder drafts the batch from; the
    rows by their digest) and, for a Merkle batch, its tree."""
    bid = batch_id(meta.payer, meta.reference)  # scoped by payer on chain (Disbursement.batchIdOf)
    digest = hashlib.sha256(json.dumps([[r.recipient, r.amount_fen] for r in rows]).encode()).hexdigest()
    merkle = None
    if meta.mode == "merkle":
        merkle = merkle_tree(bid, [Row(r.recipient, r.amount_fen) for r in rows])
    request = {
        "ref": meta.reference,
        "batch_id": "0x" + bid.hex(),
        "payer": meta.payer,
        "purpose": meta.purpose,
        "mode": meta.mode,
        "ends_at": ends_at,
        "total_fen": sum(r.amount_fen for r in rows),
        "rows": len(rows),
        "rows_sha256": digest,
        "root": "0x" + merkle.root.hex() if merkle else None,
    }
    return request, merkle


def _refuse_taken_reference(ctx: ServiceContext, key: ApiKey, idem: str, ref: str) -> None:
    """A 409 when a batch has this reference already, unless this very request is replayed."""
    discard_failed_draft(ctx, ref)  # one whose creation failed after a 202 frees its reference
    with ctx.db.session() as s:
        replay = s.scalar(
            select(Operation.id).where(Operation.api_key_id == key.id, Operation.idempotency_key == idem)
        )
        if replay is None and s.get(Disbursement, ref) is not None:
            raise Problem(
                409,
                "batch-exists",
                "A batch with this reference exists",
                f"{ref!r} was used already",
            )


def _store_draft(
    ctx: ServiceContext,
    key: ApiKey,
    meta: BatchMeta,
    request: dict[str, Any],
    rows: list[ParsedRow],
    merkle: MerkleTree | None,
) -> None:
    """The draft and its rows (each with its chunk and, in a Merkle batch, its proof), in one
    commit; a 409 when another request stored a batch with this reference first."""
    size = ctx.settings.disburse_chunk_rows
    with ctx.db.session() as s:
        s.add(
            Disbursement(
                ref=meta.reference,
                batch_id=request["batch_id"],
                payer=meta.payer,
                purpose=meta.purpose,
                mode=meta.mode,
                total_fen=request["total_fen"],
                ends_at=request["ends_at"],
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
                "proof": "".join(p.hex() for p in merkle.proof(i)) if merkle else None,
                "status": "pending",
            }
            for i, r in enumerate(rows)
        ]
        for start in range(0, len(values), 5_000):
            s.execute(insert(DisbursementRow), values[start : start + 5_000])
        s.commit()


def _add_rows(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, ref: str) -> Operation | None:
    """An explicit batch's rows, ``MAX_CHUNKS_PER_CALL`` chunks per ``disburse.add_chunks``
    operation (one ``addChunks`` transaction; idempotency key ``{idem}#chunks{first}``). Returns
    the first operation still pending (the batch stays a draft for now), else None; a refused
    group raises its problem (the draft never becomes ready). One operation per chunk cost a
    transaction, a receipt and four commits for each 200 rows: the larger half of a
    10,000-person payroll's time through the API.

    Pipelined like the pay chunks (``runner.WINDOW`` sent ahead of the oldest receipt not yet
    collected): one payer signs them all with consecutive nonces, so they are mined in order and
    each chunk lands as the chunk number it was built for. Should one revert, the chunks after it
    land early; their rows hashes then match no chunk the service pays, and the draft never
    becomes ready (its creation raised), as before: nothing is paid from a misnumbered chunk.
    """
    b = batch(ctx, ref)
    if b.mode != "explicit":
        return None
    inflight: deque[Submitted] = deque()
    pending: Operation | None = None

    def collect() -> None:
        nonlocal pending
        add, _ = inflight.popleft().result()  # a failed group raises its problem
        if add.status != "confirmed" and pending is None:
            pending = add

    try:
        for first in range(0, b.chunk_count, MAX_CHUNKS_PER_CALL):
            body = {"ref": ref, "first": first, "count": min(MAX_CHUNKS_PER_CALL, b.chunk_count - first)}
            key_of_group = f"{idem}#chunks{first}"
            inflight.append(submit(ops, "disburse.add_chunks", key, key_of_group, body, target=ref))
            if len(inflight) >= WINDOW:
                collect()
            if pending is not None:
                break
        while inflight and pending is None:
            collect()
    finally:  # a refusal, a slow chain or an unexpected error: the reconciler finishes what was sent
        for sent in inflight:
            sent.release()
    return pending


def _mark_ready(ctx: ServiceContext, ref: str) -> None:
    """A draft whose creation (and rows) are on chain is ready for a checker."""
    with ctx.db.session() as s:
        row = s.get(Disbursement, ref)
        assert row is not None
        if row.status == "draft":
            row.status = "ready"
            s.commit()


def discard_failed_draft(ctx: ServiceContext, ref: str) -> None:
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


# -- maker-checker -----------------------------------------------------------------------------


def approve(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, ref: str) -> Operation:
    """A checker approves: the total is taken from the payer and locked for the batch. The key
    that created the batch cannot approve it; the checker key signs with its own wallet."""
    b = batch(ctx, ref)
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
    op, _ = perform(ops, "disburse.approve", key, idem, {"ref": ref, "checker": key.wallet}, target=ref)
    if op.status == "confirmed":
        with ctx.db.session() as s:
            row = s.get(Disbursement, ref)
            assert row is not None
            if row.status == "ready":
                row.status, row.approved_by = "approved", key.id
                s.commit()
    return op


def cancel(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, ref: str) -> Operation:
    """Abandon a batch that was not approved; nothing had moved."""
    check_operator_scope(ctx, key, batch(ctx, ref).payer)
    op, _ = perform(ops, "disburse.cancel", key, idem, {"ref": ref}, target=ref)
    if op.status == "confirmed":
        _set_status(ctx, ref, "cancelled")
    return op


# -- paying ------------------------------------------------------------------------------------


def start_execution(ctx: ServiceContext, runner: Runner, key: ApiKey, ref: str, push: str) -> BatchOut:
    """Mark an approved batch executing and start its runner; an executing or executed batch
    is resumed (each chunk is its own idempotent operation: nothing is paid twice)."""
    b = batch(ctx, ref)
    check_operator_scope(ctx, key, b.payer)  # two tiers: the payer's institution runs its batch
    if b.status not in ("approved", "executing", "executed"):
        raise Problem(409, "batch-not-approved", "The batch is not approved", f"its status is {b.status}")
    with ctx.db.session() as s:
        row = s.get(Disbursement, ref)
        assert row is not None
        if row.status == "approved":
            row.status, row.executed_by, row.error = "executing", key.id, None
            row.push = push if row.mode == "merkle" else None
            s.commit()
    if batch(ctx, ref).status == "executing":
        runner.start(ref)
    return report(ctx, ref)


def retry_exception(
    ctx: ServiceContext, ops: Operations, runner: Runner, key: ApiKey, idem: str, ref: str, index: int
) -> Operation:
    """Pay an exception whose cause was resolved (the wallet registered, unfrozen, under its cap).

    One retry pays it: another retry of the same row (another Idempotency-Key, at once or later)
    is a 409 ``exception-already-retried`` naming the operation that paid it, not the contract's
    404 (red team, LOW: the loser of two concurrent retries answered "no open exception" as if the
    row had never been one). Checked before sending when the paying retry is known already (no
    transaction), and after the contract refused a retry that raced it (the chain names the winner
    when its outcome is not recorded yet). The same
    Idempotency-Key replays its own answer (the backbone)."""
    batch(ctx, ref)
    if (earlier := _paying_retry(ctx, key, idem, ref, index, confirmed_only=True)) is not None:
        raise _already_retried(ref, index, earlier)
    try:
        op, _ = perform(ops, "disburse.retry", key, idem, {"ref": ref, "index": index}, target=ref)
    except Problem as exc:
        if exc.slug == "exception-not-found" and (winner := _paying_retry(ctx, key, idem, ref, index)):
            raise _already_retried(ref, index, winner) from None
        raise
    if op.status == "confirmed":
        runner.apply_events(ref, op.result or {})
    return op


def _paying_retry(
    ctx: ServiceContext, key: ApiKey, idem: str, ref: str, index: int, *, confirmed_only: bool = False
) -> Operation | None:
    """Another request's retry of row ``index`` of ``ref`` that paid it: a confirmed one, or (not
    with ``confirmed_only``) a pending one whose transaction the chain has mined successfully (the
    winner of a race whose outcome is not recorded yet; the other pending ones are losers still
    being refused). The caller's own request (key and Idempotency-Key) is left out. A batch's
    retries are few: their requests are compared here."""
    with ctx.db.session() as s:
        retries = s.scalars(
            select(Operation)
            .where(
                Operation.kind == "disburse.retry",
                Operation.audit_target == ref,
                Operation.status.in_(("confirmed",) if confirmed_only else ("pending", "confirmed")),
            )
            .order_by(Operation.created_at)
        ).all()
    mine = [
        op
        for op in retries
        if (op.request or {}).get("index") == index and (op.api_key_id, op.idempotency_key) != (key.id, idem)
    ]
    for op in mine:
        if op.status == "confirmed":
            return op
    for op in mine:
        if op.tx_hash is not None:
            try:
                receipt = ctx.w3.eth.get_transaction_receipt(op.tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                continue
            if receipt["status"] == 1:
                return op
    return None


def _already_retried(ref: str, index: int, winner: Operation) -> Problem:
    return Problem(
        409,
        "exception-already-retried",
        "This exception was retried already",
        f"row {index} of {ref}: operation {winner.id} paid it",
        operation_id=winner.id,
    )


def reclaim(ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, ref: str) -> Operation:
    """After the end date: what was not paid (exceptions included) returns to the payer; the
    batch closes and its unpaid rows are marked reclaimed."""
    check_operator_scope(ctx, key, batch(ctx, ref).payer)
    op, _ = perform(ops, "disburse.reclaim", key, idem, {"ref": ref}, target=ref)
    if op.status == "confirmed":
        with ctx.db.session() as s:
            table = DisbursementRow.__table__
            s.execute(
                table.update()
                .where(table.c.ref == ref, table.c.status.in_(["pending", "exception"]))
                .values(status="reclaimed")
            )
            row = s.get(Disbursement, ref)
            assert row is not None
            row.status = "closed"
            s.commit()
    return op
