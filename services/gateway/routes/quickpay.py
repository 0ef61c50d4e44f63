"""Quick-pay mandates (钱包快付): a holder lets one merchant pull payments within caps.

The operator grants and revokes mandates for custodial holders (the service signs for them); the
mandate's merchant pulls with its merchant key or one of its terminals' keys (a transit gate, a
canteen till), or the operator does for it. A pull is signed by the merchant's custodial wallet;
before it, the service tops up the holder's token allowance to the QuickPay contract when it is
short (the holder's caps on the mandate, not the allowance, limit what is pulled). The contract
refuses a pull over the per-payment or daily cap, after expiry or revocation, or for an order
reference paid already: each becomes a 4xx problem naming the contract's error.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from chain.clients.hardwallet import order_ref
from chain.exceptions import ContractError
from services.common.context import ServiceContext
from services.common.deps import ApiKeyDep, CtxDep, IdempotencyKey, OperatorKey, OpsDep
from services.common.keys import Role
from services.common.models import ApiKey
from services.common.operations import Call, builder, perform
from services.common.problems import Problem, contract_problem
from services.common.schemas import OperationOut, respond
from services.gateway.schemas import MandateIn, MandateOpOut, MandateOut, PullIn

router = APIRouter(prefix="/v1/mandates", tags=["quick-pay"])

MandateId = Annotated[int, Path(ge=1, lt=2**63)]


_MANDATE_READERS = (Role.OPERATOR, Role.AUDITOR, Role.REGULATOR, Role.MERCHANT, Role.TERMINAL)
_BOUND = (Role.MERCHANT, Role.TERMINAL)


def _mandate(ctx: ServiceContext, mandate_id: int, key: ApiKey | None = None) -> Any:
    """The mandate. For a merchant's or terminal's ``key``, one of another merchant and one that
    does not exist are the same 403 (mandate ids are sequential: a 404 would tell which exist)."""
    try:
        m = ctx.quickpay.mandate(mandate_id)
    except ContractError as exc:
        if key is not None and key.role in _BOUND and exc.name == "QuickPayUnknownMandate":
            m = None
        else:
            raise contract_problem(exc) from None
    if key is not None and key.role in _BOUND and (m is None or key.wallet != m.merchant):
        raise Problem(403, "not-your-merchant", "A merchant's key reads and pulls only its own mandates")
    return m


@router.post("", status_code=201, responses={202: {"model": MandateOpOut}})
def grant_mandate(
    body: MandateIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> MandateOpOut:
    """Grant ``merchant`` a mandate on the custodial ``holder``'s wallet (operator)."""
    ctx.custodial(body.holder)
    op, _ = perform(ops, "gateway.mandate.grant", key, idem, body.model_dump(), target=body.merchant)
    out = respond(op, response, done_status=201)
    mandate_id = None
    for e in (op.result or {}).get("events", []):
        if e["name"] == "MandateGranted":
            mandate_id = int(e["args"]["id"])
    return MandateOpOut(**out.model_dump(), mandate_id=mandate_id)


@builder("gateway.mandate.grant")
def _grant(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    fn = ctx.quickpay.contract.functions.grant(
        req["merchant"], req["per_payment_cap_fen"], req["daily_cap_fen"], req["expires_at"]
    )
    return Call(ctx.custodial(req["holder"]), fn)


@router.get("/{mandate_id}")
def get_mandate(mandate_id: MandateId, ctx: CtxDep, key: ApiKeyDep) -> MandateOut:
    """A mandate as stored on chain, with what it pulled today (Beijing day)."""
    if key.role not in _MANDATE_READERS:
        raise Problem(403, "forbidden-role", "This key's role may not read mandates")
    m = _mandate(ctx, mandate_id, key)
    return MandateOut(
        id=m.id,
        holder=m.holder,
        merchant=m.merchant,
        per_payment_cap_fen=m.per_payment_cap,
        daily_cap_fen=m.daily_cap,
        expires_at=m.expires_at,
        revoked=m.revoked,
        spent_today_fen=ctx.quickpay.spent_today(mandate_id),
        total_pulled_fen=m.total_pulled,
    )


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
    if key.role not in (Role.OPERATOR, *_BOUND):
        raise Problem(403, "forbidden-role", "Only the merchant, its terminals or the operator pull")
    m = _mandate(ctx, mandate_id, key)
    ctx.custodial(m.merchant)
    request = {
        "mandate": mandate_id,
        "holder": m.holder,
        "merchant": m.merchant,
        "amount_fen": body.amount_fen,
        "reference": body.reference,
    }
    op, _ = perform(ops, "gateway.mandate.pull", key, idem, request, target=str(mandate_id))
    return respond(op, response)


@builder("gateway.mandate.pull")
def _pull(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    qp = ctx.quickpay.contract
    ctx.ensure_allowance(req["holder"], qp.address, req["amount_fen"])
    fn = qp.functions.pull(req["mandate"], req["amount_fen"], order_ref(req["reference"]))
    return Call(ctx.custodial(req["merchant"]), fn)


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
    m = _mandate(ctx, mandate_id)
    ctx.custodial(m.holder)
    op, _ = perform(
        ops,
        "gateway.mandate.revoke",
        key,
        idem,
        {"mandate": mandate_id, "holder": m.holder},
        target=str(mandate_id),
    )
    return respond(op, response)


@builder("gateway.mandate.revoke")
def _revoke(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    return Call(ctx.custodial(req["holder"]), ctx.quickpay.contract.functions.revoke(req["mandate"]))
