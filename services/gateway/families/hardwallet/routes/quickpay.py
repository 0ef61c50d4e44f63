"""Quick-pay mandates (钱包快付): a holder lets one merchant pull payments within caps.

The operator grants and revokes mandates for custodial holders (the service signs for them); the
mandate's merchant pulls with its merchant key or one of its terminals' keys (a transit gate, a
canteen till), or the operator does for it. A pull is signed by the merchant's custodial wallet;
its builder states the holder's token allowance to the QuickPay contract as data and Operations
tops it up when it is short (the holder's caps on the mandate, not the allowance, limit what is
pulled). The contract refuses a pull over the per-payment or daily cap, after expiry or
revocation, or for an order reference paid already: each becomes a 4xx problem naming the
contract's error.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from services.common.deps import ApiKeyDep, CtxDep, IdempotencyKey, OperatorKey, OpsDep
from services.common.keys import Role
from services.common.problems import Problem
from services.common.schemas import OperationOut, respond
from services.common.scope import check_read_any
from services.gateway.families.hardwallet.schemas import MandateIn, MandateOpOut, MandateOut, PullIn
from services.gateway.families.hardwallet.service import quickpay as service

router = APIRouter(prefix="/v1/mandates", tags=["quick-pay"])

MandateId = Annotated[int, Path(ge=1, lt=2**63)]

_MANDATE_READERS = (Role.OPERATOR, Role.AUDITOR, Role.REGULATOR, *service.BOUND_ROLES)


@router.post("", status_code=201, responses={202: {"model": MandateOpOut}})
def grant_mandate(
    body: MandateIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> MandateOpOut:
    """Grant ``merchant`` a mandate on the custodial ``holder``'s wallet (operator)."""
    op, mandate_id = service.grant_mandate(ctx, ops, key, idem, body)
    out = respond(op, response, done_status=201)
    return MandateOpOut(**out.model_dump(), mandate_id=mandate_id)


@router.get("/{mandate_id}")
def get_mandate(mandate_id: MandateId, ctx: CtxDep, key: ApiKeyDep) -> MandateOut:
    """A mandate as stored on chain, with what it pulled today (Beijing day)."""
    if key.role not in _MANDATE_READERS:
        raise Problem(403, "forbidden-role", "This key's role may not read mandates")
    m = service.mandate(ctx, mandate_id, key)
    check_read_any(ctx, key, m.holder, m.merchant)  # bound to an institution: its customers' only
    return service.mandate_out(ctx, m)


@router.post("/{mandate_id}/pulls", responses={202: {"model": OperationOut}})
def pull(
    mandate_id: MandateId,
    body: PullIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: ApiKeyDep,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Pull ``amount_fen`` for the order ``reference`` (the mandate's merchant key, one of its
    terminals, or the operator). The merchant's wallet must be custodial."""
    if key.role not in (Role.OPERATOR, *service.BOUND_ROLES):
        raise Problem(403, "forbidden-role", "Only the merchant, its terminals or the operator pull")
    m = service.mandate(ctx, mandate_id, key)
    return respond(service.pull(ctx, ops, key, idem, m, body.amount_fen, body.reference), response)


@router.post("/{mandate_id}/revoke", responses={202: {"model": OperationOut}})
def revoke(
    mandate_id: MandateId,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Revoke a mandate for its custodial holder (operator); no pull succeeds after this."""
    return respond(service.revoke_mandate(ctx, ops, key, idem, mandate_id), response)
