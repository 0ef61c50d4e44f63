"""Unattended devices (可乐机、咖啡机、再生资源回收箱): thin routes over ``service``.

A vending machine (a terminal of its merchant, with the terminal's key) uploads the card-signed
pre-authorisation of a maximum (``POST /v1/devices/preauths``), then completes it with the real
amount (``.../complete``; above the maximum: 422 completion-above-authorized) or releases it on a
failed dispense (``.../release``); either once (409 preauth-not-open). After its deadline it can
only be released, which the gateway's worker does by itself. A recycling bin (a terminal of the
programme's merchant) pays a person (``POST /v1/devices/payouts``) from the programme's budget,
at most its daily cap per person, each drop reference once. The operator sets up programmes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from services.common.deps import ApiKeyDep, CtxDep, IdempotencyKey, OperatorKey, OpsDep
from services.common.keys import Role
from services.common.problems import Problem, problem_response
from services.common.schemas import OperationOut, respond
from services.common.scope import check_operator_scope, check_read_any
from services.gateway.families.devices import service
from services.gateway.families.devices.schemas import (
    CompleteIn,
    FundIn,
    PayoutIn,
    PayoutOut,
    PreAuthIn,
    PreAuthOut,
    ProgrammeIn,
    ProgrammeOpOut,
    ProgrammeOut,
)
from services.gateway.families.hardwallet.routes.terminals import TerminalDep, TerminalKey

router = APIRouter(prefix="/v1/devices", tags=["unattended devices"])

PreAuthId = Annotated[int, Path(ge=1, lt=2**63)]
ProgrammeId = Annotated[int, Path(ge=1, lt=2**63)]


def _status(out: PreAuthOut | PayoutOut, response: Response, done: int = 200) -> None:
    response.status_code = 202 if out.status == "pending" else done


@router.post("/preauths", status_code=201, responses={202: {"model": PreAuthOut}})
def upload_preauth(
    body: PreAuthIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: TerminalKey,
    terminal: TerminalDep,
    idem: IdempotencyKey,
    response: Response,
) -> PreAuthOut:
    """Hold up to ``max_amount_fen`` of the card's holder for this machine (terminal key). The
    same card counter uploaded again answers with its first upload (``replayed``)."""
    if body.merchant != terminal.merchant:
        raise Problem(
            403,
            "payment-for-another-merchant",
            "A device uploads pre-authorisations to its own merchant only",
        )
    out = service.upload_preauth(ctx, ops, key, terminal, idem, body)
    _status(out, response, 200 if out.replayed else 201)
    return out


@router.get("/preauths/{preauth_id}")
def get_preauth(preauth_id: PreAuthId, ctx: CtxDep, key: ApiKeyDep) -> PreAuthOut:
    """A pre-authorisation and its state on chain (its merchant's devices, the operator, the auditor)."""
    row = service.preauth_row(ctx, key, preauth_id)
    check_read_any(ctx, key, row.holder, row.merchant)  # bound to an institution: its customers'
    return service.preauth_out(ctx, row)


@router.post("/preauths/{preauth_id}/complete", responses={202: {"model": PreAuthOut}})
def complete(
    preauth_id: PreAuthId,
    body: CompleteIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: TerminalKey,
    idem: IdempotencyKey,
    response: Response,
) -> PreAuthOut:
    """Complete with what was really dispensed (at most the maximum): the merchant is paid, the
    rest goes back to the holder (the machine's terminal key)."""
    row = service.preauth_row(ctx, key, preauth_id)
    out = service.finish_preauth(ctx, ops, key, idem, row, body.amount_fen)
    _status(out, response)
    return out


@router.post("/preauths/{preauth_id}/release", responses={202: {"model": PreAuthOut}})
def release(
    preauth_id: PreAuthId, ctx: CtxDep, ops: OpsDep, key: ApiKeyDep, idem: IdempotencyKey, response: Response
) -> PreAuthOut:
    """Release the whole hold to the holder: a failed dispense (the machine's terminal key) or the
    operator for a holder."""
    if key.role not in (Role.TERMINAL, Role.OPERATOR):
        raise Problem(403, "forbidden-role", "Only the device or the operator releases")
    row = service.preauth_row(ctx, key, preauth_id)
    # Two tiers (red team rt3): an operator key releases only holds between its own institution's
    # customers (the holder's money, the merchant's sale): 403 ``institution-scope`` otherwise.
    check_operator_scope(ctx, key, row.holder, row.merchant)
    out = service.finish_preauth(ctx, ops, key, idem, row, None)
    _status(out, response)
    return out


@router.post("/programmes", status_code=201, responses={202: {"model": ProgrammeOpOut}})
def create_programme(
    body: ProgrammeIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey, response: Response
) -> ProgrammeOpOut:
    """A recycling programme: its sponsor, the merchant whose bins pay from it, the daily cap per
    person (operator). The sponsor must be a customer of the key's institution (403
    ``institution-scope``, red team rt3: institution 2 named institution 1's wallet)."""
    check_operator_scope(ctx, key, body.sponsor)
    op, programme_id = service.create_programme(ctx, ops, key, idem, body)
    out = respond(op, response, done_status=201)
    return ProgrammeOpOut(**out.model_dump(), programme_id=programme_id)


@router.get("/programmes/{programme_id}")
def get_programme(programme_id: ProgrammeId, ctx: CtxDep, key: ApiKeyDep) -> ProgrammeOut:
    """A programme as stored on chain (the operator, the auditor, the regulator, its merchant's keys)."""
    if key.role in (Role.TERMINAL, Role.MERCHANT):  # another's and a missing one: the same 403
        try:
            out = service.programme_out(ctx, programme_id)
        except Problem:
            out = None
        if out is None or key.wallet != out.merchant:
            raise Problem(403, "not-your-programme", "A merchant's key reads its own programmes only")
        return out
    if key.role not in (Role.OPERATOR, Role.AUDITOR, Role.REGULATOR):
        raise Problem(403, "forbidden-role", "This key's role may not read programmes")
    out = service.programme_out(ctx, programme_id)
    check_read_any(ctx, key, out.sponsor, out.merchant)  # bound to an institution: its customers'
    return out


@router.post("/programmes/{programme_id}/fund", responses={202: {"model": OperationOut}})
def fund_programme(
    programme_id: ProgrammeId,
    body: FundIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Fund the programme from its custodial sponsor's wallet (operator)."""
    return respond(service.fund_programme(ctx, ops, key, idem, programme_id, body.amount_fen), response)


@router.post("/programmes/{programme_id}/close", responses={202: {"model": OperationOut}})
def close_programme(
    programme_id: ProgrammeId,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Close the programme: what is left of its budget goes back to the sponsor (operator)."""
    return respond(service.close_programme(ctx, ops, key, idem, programme_id), response)


@router.post(
    "/payouts",
    status_code=201,
    responses={
        202: {"model": PayoutOut},
        409: problem_response(
            "payout-duplicate (the drop reference was paid already on other terms), payout-in-progress"
        ),
    },
)
def payout(
    body: PayoutIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: TerminalKey,
    terminal: TerminalDep,
    idem: IdempotencyKey,
    response: Response,
) -> PayoutOut:
    """A recycling bin pays a person (a wallet, or a card's holder) from its merchant's programme
        (terminal key). The same drop reference again answers with its first payout (``replayed``); on
    other terms (recipient or amount) it is a 409 ``payout-duplicate``."""
    out = service.payout(ctx, ops, key, terminal, idem, body)
    _status(out, response, 200 if out.replayed else 201)
    return out
