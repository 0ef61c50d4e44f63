"""Offline payments: a terminal uploads a batch of card-signed payments; each gets its outcome.

The gateway checks what binds the upload to its terminal (every payment is to the terminal's
merchant) and sends one ``settle`` transaction signed by the gateway's key (its SETTLER_ROLE;
a payment pays only the merchant its card signed for, once). Before sending, it leaves out what
the contract would reject for certain (an unknown card, a signature the card did not make for
this chain and contract, a zero amount: ``service.prechecked``) and answers it ``rejected`` in
the contract's words, in its place; a batch of only those sends no transaction (``tx_hash``
null). The rest is the contract's to judge (it checks everything again), and its outcome events
become the answer, one per payment in upload order: ``settled``,
``duplicate`` (this card and counter were processed already: the same batch again, the same
payment in another batch or from another terminal, a reused counter), ``rejected`` with a reason
(forged signature or one for another chain or contract, over the offline cap, lost card, grace
period over...) or ``shortfall`` (a cloned card signed beyond its reserve: the covered part was
paid, the card is blocked).

Uploading is idempotent twice over: the same Idempotency-Key and body replay the stored answer
(the operation backbone), and the same batch from the same terminal under a new key gets the
answer of its confirmed earlier upload, without a new transaction (``service.upload``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from services.common.deps import ApiKeyDep, CtxDep, IdempotencyKey, OpsDep
from services.common.keys import Role
from services.common.problems import Problem
from services.common.scope import check_read_scope
from services.gateway.families.hardwallet.routes.terminals import TerminalDep, TerminalKey
from services.gateway.families.hardwallet.schemas import UploadIn, UploadOut
from services.gateway.families.hardwallet.service import offline_payments as service
from services.gateway.families.hardwallet.service import terminals as terminal_service

router = APIRouter(prefix="/v1/offline-payments", tags=["offline payments"])


@router.post("", responses={202: {"model": UploadOut}})
def upload_batch(
    body: UploadIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: TerminalKey,
    terminal: TerminalDep,
    idem: IdempotencyKey,
    response: Response,
) -> UploadOut:
    """Upload a batch of 1 to 100 card-signed payments (terminal key). 200 with each payment's
    outcome; 202 while the settlement is not mined yet (read it again by its id)."""
    for i, p in enumerate(body.payments):
        if p.merchant != terminal.merchant:
            raise Problem(
                403,
                "payment-for-another-merchant",
                "A terminal uploads payments to its own merchant only",
                f"payment {i} is to {p.merchant}; this terminal's merchant is {terminal.merchant}",
                index=i,
            )
    out = service.upload(ctx, ops, key, terminal, idem, [p.model_dump() for p in body.payments])
    response.status_code = 200 if out.status == "confirmed" else 202
    return out


@router.get("/{upload_id}")  # ids are a 32-bit INTEGER column on PostgreSQL
def get_upload(upload_id: Annotated[int, Path(ge=1, lt=2**31)], ctx: CtxDep, key: ApiKeyDep) -> UploadOut:
    """An upload and its results (the terminal that uploaded it, the operator, the auditor).
    Decided before the answer can tell anything: a terminal gets the same 403 for another
    terminal's upload and for an id that does not exist (upload ids are sequential)."""
    if key.role in (Role.OPERATOR, Role.AUDITOR):
        row = service.upload_of(ctx, upload_id)
        # A key bound to an institution: the uploads of its merchants' terminals only.
        check_read_scope(ctx, key, terminal_service.terminal(ctx, row.terminal_id).merchant)
        return service.upload_out(ctx, row, replayed=False)
    if key.role != Role.TERMINAL:
        raise Problem(403, "forbidden-role", "Only the uploading terminal, the operator or the auditor")
    return service.upload_out(ctx, service.terminal_upload(ctx, key, upload_id), replayed=False)
