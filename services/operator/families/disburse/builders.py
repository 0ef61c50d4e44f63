"""The disbursement family's operation builders: each turns a stored request into who signs
which Disbursement call (``services/common/operations.py`` signs, records and sends it).

Pure data-to-call: a builder reads the batch's record and rows and builds the call through the
typed client; it sends nothing. The allowance an approval needs (the contract pulls the batch's
total from the payer) is stated as data on the call, and Operations makes sure of it.
"""

from __future__ import annotations

from typing import Any

from chain.clients.disburse import Row, purpose_tag
from services.common.context import ServiceContext
from services.common.operations import Allowance, Builder, Call
from services.operator.families.disburse.service import (
    OFFICER_ROLES,
    batch_and_id,
    chunk_rows,
    chunks_rows,
    custodial_among,
    proof,
)


def set_officer(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The payer names an account its checker or maker (or removes it)."""
    payer = ctx.custodial(req["payer"])
    return Call(payer, ctx.disburse.set_officer_call(req["account"], OFFICER_ROLES[req["role"]]))


def create(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The payer drafts the batch: explicit (rows added later) or Merkle (its root and leaf count)."""
    root = bytes.fromhex(req["root"][2:]) if req["root"] else b"\0" * 32
    call = ctx.disburse.create_batch_call(
        req["ref"],
        req["payer"],
        purpose_tag(req["purpose"]),
        req["ends_at"],
        req["total_fen"],
        root,
        req["rows"] if req["root"] else 0,
    )
    return Call(ctx.custodial(req["payer"]), call)


def add_rows(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The payer adds one chunk of an explicit batch's rows (the operations of batches created
    before ``add_chunks``: the reconciler may still finish one)."""
    b, bid = batch_and_id(ctx, req["ref"])
    rows = [Row(r.recipient, r.amount_fen) for r in chunk_rows(ctx, req["ref"], req["chunk"])]
    return Call(ctx.custodial(b.payer), ctx.disburse.add_rows_call(bid, rows))


def add_chunks(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The payer adds ``count`` chunks of an explicit batch, from chunk ``first``, in one call."""
    b, bid = batch_and_id(ctx, req["ref"])
    chunks = chunks_rows(ctx, req["ref"], req["first"], req["count"])
    rows = [[Row(r.recipient, r.amount_fen) for r in chunk] for chunk in chunks]
    return Call(ctx.custodial(b.payer), ctx.disburse.add_chunks_call(bid, rows))


def approve(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The checker approves; the contract pulls the total from the payer, hence the allowance."""
    b, bid = batch_and_id(ctx, req["ref"])
    payer = ctx.custodial(b.payer)  # the service must hold the payer's key: it grants the allowance
    allowance = Allowance(payer.address, ctx.disburse.address, b.total_fen)
    return Call(ctx.custodial(req["checker"]), ctx.disburse.approve_call(bid), allowance=allowance)


def cancel(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The payer abandons a batch that was not approved."""
    b, bid = batch_and_id(ctx, req["ref"])
    return Call(ctx.custodial(b.payer), ctx.disburse.cancel_call(bid))


def pay_chunk(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The operator pays one chunk of an explicit batch (the rows as they were added)."""
    _, bid = batch_and_id(ctx, req["ref"])
    rows = [Row(r.recipient, r.amount_fen) for r in chunk_rows(ctx, req["ref"], req["chunk"])]
    return Call(ctx.operator, ctx.disburse.pay_chunk_call(bid, req["chunk"], rows))


def push(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The operator pushes the claims of one group of a Merkle batch's unpaid rows (custodial
    recipients only when the batch says so), each with its proof."""
    _, bid = batch_and_id(ctx, req["ref"])
    rows = [r for r in chunk_rows(ctx, req["ref"], req["chunk"]) if r.status == "pending"]
    if req["custodial_only"]:
        custodial = custodial_among(ctx, [r.recipient for r in rows])
        rows = [r for r in rows if r.recipient in custodial]
    claims = [
        (r.idx, Row(r.recipient, r.amount_fen), [bytes.fromhex(p[2:]) for p in proof(r.proof)]) for r in rows
    ]
    return Call(ctx.operator, ctx.disburse.push_claims_call(bid, claims))


def retry(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The operator pays one payout exception again."""
    _, bid = batch_and_id(ctx, req["ref"])
    return Call(ctx.operator, ctx.disburse.retry_exception_call(bid, req["index"]))


def reclaim(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The operator returns what was not paid to the payer, after the end date."""
    _, bid = batch_and_id(ctx, req["ref"])
    return Call(ctx.operator, ctx.disburse.reclaim_call(bid))


BUILDERS: dict[str, Builder] = {
    "disburse.set_officer": set_officer,
    "disburse.create": create,
    "disburse.add_rows": add_rows,
    "disburse.add_chunks": add_chunks,
    "disburse.approve": approve,
    "disburse.cancel": cancel,
    "disburse.pay_chunk": pay_chunk,
    "disburse.push": push,
    "disburse.retry": retry,
    "disburse.reclaim": reclaim,
}
