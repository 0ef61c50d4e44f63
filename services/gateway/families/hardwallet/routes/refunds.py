"""Refunds of terminals' card payments: the merchant's terminal key (its own merchant's payments
only) or the operator refunds all or part of a settled card payment, never more in total than was
paid (on chain: ``MerchantRefunds``). Thin: authorise, call the service, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from services.common.deps import ApiKeyDep, CtxDep, IdempotencyKey, OpsDep
from services.common.keys import Role
from services.common.problems import Problem, problem_response
from services.common.refunds import REFUND_CONFLICTS, RefundIn, RefundOut, refund_out
from services.common.schemas import Address
from services.gateway.families.hardwallet.service import refunds as service
from services.gateway.families.hardwallet.service.terminals import terminal_of

router = APIRouter(prefix="/v1/card-payments", tags=["refunds"])


@router.post(
    "/{card}/{counter}/refunds",
    status_code=201,
    responses={202: {"model": RefundOut}, 409: problem_response(REFUND_CONFLICTS)},
)
def refund_card_payment(
    card: Address,
    counter: Annotated[int, Path(ge=1, lt=2**63)],
    body: RefundIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: ApiKeyDep,
    idem: IdempotencyKey,
    response: Response,
) -> RefundOut:
    """Refund all or part of the settled card payment (card, counter): the cash goes back to the
    card's holder wallet. A terminal key refunds its own merchant's payments only (another's and a
    missing one: the same 404); the operator any. The same ``Idempotency-Key`` and body answer
    with the same refund."""
    if key.role == Role.TERMINAL:
        merchant: str | None = terminal_of(ctx, key).merchant
    elif key.role == Role.OPERATOR:
        merchant = None
    else:
        raise Problem(403, "forbidden-role", "This key's role may not do this", f"role {key.role!r}")
    row = service.refund_card_payment(
        ctx, ops, key, idem, card, counter, merchant, body.amount_fen, body.reason
    )
    response.status_code = 201 if row.status == "confirmed" else 202
    return refund_out(row)
