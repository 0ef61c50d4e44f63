"""Quick-pay mandates: reading one as its key may, granting, pulling and revoking for custodial wallets."""

from __future__ import annotations

from chain.clients.hardwallet import Mandate
from chain.exceptions import ContractError
from services.common.context import ServiceContext, refuse_retired
from services.common.keys import Role
from services.common.models import ApiKey, Operation
from services.common.operations import Operations, perform
from services.common.problems import Problem, contract_problem
from services.gateway.families.hardwallet.schemas import MandateIn, MandateOut

BOUND_ROLES = (Role.MERCHANT, Role.TERMINAL)  # keys bound to one merchant's wallet


def mandate(ctx: ServiceContext, mandate_id: int, key: ApiKey | None = None) -> Mandate:
    """The mandate. For a merchant's or terminal's ``key``, one of another merchant and one that
    does not exist are the same 403 (mandate ids are sequential: a 404 would tell which exist)."""
    m: Mandate | None
    try:
        m = ctx.quickpay.mandate(mandate_id)
    except ContractError as exc:
        if key is not None and key.role in BOUND_ROLES and exc.name == "QuickPayUnknownMandate":
            m = None
        else:
            raise contract_problem(exc) from None
    if key is not None and key.role in BOUND_ROLES and (m is None or key.wallet != m.merchant):
        raise Problem(403, "not-your-merchant", "A merchant's key reads and pulls only its own mandates")
    assert m is not None
    return m


def mandate_out(ctx: ServiceContext, m: Mandate) -> MandateOut:
    """The mandate as stored on chain, with what it pulled today (Beijing day)."""
    return MandateOut(
        id=m.id,
        holder=m.holder,
        merchant=m.merchant,
        per_payment_cap_fen=m.per_payment_cap,
        daily_cap_fen=m.daily_cap,
        expires_at=m.expires_at,
        revoked=m.revoked,
        spent_today_fen=ctx.quickpay.spent_today(m.id),
        total_pulled_fen=m.total_pulled,
    )


def grant_mandate(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, body: MandateIn
) -> tuple[Operation, int | None]:
    """Grant for the custodial holder; the answer's mandate id comes from ``MandateGranted``."""
    ctx.custodial(body.holder)
    refuse_retired(ctx, body.holder, "mandate holder")
    op, _ = perform(ops, "gateway.mandate.grant", key, idem, body.model_dump(), target=body.merchant)
    mandate_id = None
    for e in (op.result or {}).get("events", []):
        if e["name"] == "MandateGranted":
            mandate_id = int(e["args"]["id"])
    return op, mandate_id


def pull(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, m: Mandate, amount: int, reference: str
) -> Operation:
    """Pull for the mandate's merchant, whose wallet must be custodial (the service signs)."""
    ctx.custodial(m.merchant)
    request = {
        "mandate": m.id,
        "holder": m.holder,
        "merchant": m.merchant,
        "amount_fen": amount,
        "reference": reference,
    }
    op, _ = perform(ops, "gateway.mandate.pull", key, idem, request, target=str(m.id))
    return op


def revoke_mandate(
    ctx: ServiceContext, ops: Operations, key: ApiKey, idem: str, mandate_id: int
) -> Operation:
    """Revoke for the custodial holder: no pull succeeds after this."""
    m = mandate(ctx, mandate_id)
    ctx.custodial(m.holder)
    request = {"mandate": mandate_id, "holder": m.holder}
    op, _ = perform(ops, "gateway.mandate.revoke", key, idem, request, target=str(mandate_id))
    return op
