"""The refunds family's HTTP routes: refunds of code payments, daily merchant statements (JSON and
CSV settlement files) and the spot-check robot. Thin: validate, authorise, call the service."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import select

from services.common.deps import ApiKeyDep, CtxDep, IdempotencyKey, OperatorKey, OpsDep, ReaderKey
from services.common.keys import Role
from services.common.paging import Page, Paging, paginate
from services.common.problems import Problem, problem_response
from services.common.refunds import REFUND_CONFLICTS as CONFLICTS
from services.common.refunds import MerchantRefund, RefundIn, RefundOut, find_refund, refund_out
from services.common.schemas import Address, Day
from services.common.scope import check_platform_key, check_read_scope
from services.operator.families.paycodes.schemas import CodeId
from services.operator.families.paycodes.service import find_code, may_act_for, merchant_of
from services.operator.families.refunds import service, spotcheck, statements
from services.operator.families.refunds.schemas import SpotCheckReport, Statement

router = APIRouter(tags=["refunds and statements"])

READERS = (Role.OPERATOR, Role.AUDITOR, Role.REGULATOR)  # and a merchant key, of its own

REFUND_CONFLICTS = problem_response(CONFLICTS)


@router.post(
    "/v1/payment-codes/{code_id}/payments/{payment_id}/refunds",
    status_code=201,
    responses={202: {"model": RefundOut}, 409: REFUND_CONFLICTS},
)
def refund_code_payment(
    code_id: CodeId,
    payment_id: Annotated[int, Path(ge=1, lt=2**31)],
    body: RefundIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: ApiKeyDep,
    idem: IdempotencyKey,
    response: Response,
) -> RefundOut:
    """Refund all or part of a payment of a code (any payer form): the merchant's own key, or the
    operator. The voucher share goes back to the programme, the rest to the payer; never more in
    total than was paid (on chain: ``MerchantRefunds``). The same ``Idempotency-Key`` and body
    answer with the same refund."""
    if key.role == Role.MERCHANT:  # another merchant's code and a missing one: the same 403
        may_act_for(key, merchant_of(ctx, code_id) or "", Role.OPERATOR)
    code = find_code(ctx, code_id)
    may_act_for(key, code.merchant, Role.OPERATOR)
    row = service.refund_code_payment(ctx, ops, key, idem, code, payment_id, body.amount_fen, body.reason)
    response.status_code = 201 if row.status == "confirmed" else 202
    return refund_out(row)


@router.get("/v1/refunds/{refund_id}")
def get_refund(refund_id: Annotated[int, Path(ge=1, lt=2**31)], ctx: CtxDep, key: ApiKeyDep) -> RefundOut:
    """One refund: a merchant key reads its own only (another's and a missing one: the same 403)."""
    with ctx.db.session() as s:
        merchant = s.scalar(select(MerchantRefund.merchant).where(MerchantRefund.id == refund_id))
    if key.role == Role.MERCHANT:
        may_act_for(key, merchant or "", *READERS)
    else:
        may_act_for(key, "", *READERS)
    if merchant is not None:
        check_read_scope(ctx, key, merchant)
    return refund_out(find_refund(ctx, refund_id))


@router.get("/v1/refunds", summary="List refunds")
def list_refunds(
    ctx: CtxDep,
    key: ApiKeyDep,
    paging: Paging,
    merchant: Annotated[Address | None, Query()] = None,
    code_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{8,24}$")] = None,
) -> Page[RefundOut]:
    """Refunds by id; a merchant key sees its own only."""
    if key.role == Role.MERCHANT:
        merchant = merchant or key.wallet
    may_act_for(key, merchant or "", *READERS)
    if key.institution is not None and merchant is None:
        raise Problem(
            422,
            "merchant-required",
            "Name one of your merchants",
            "a key bound to an institution lists the refunds of one of its merchants at a time",
        )
    if merchant is not None:
        check_read_scope(ctx, key, merchant)
    service.sync(ctx)
    q = select(MerchantRefund)
    if merchant is not None:
        q = q.where(MerchantRefund.merchant == merchant)
    if code_id is not None:
        q = q.where(MerchantRefund.code_id == code_id)
    with ctx.db.session() as s:
        rows, cursor = paginate(s, q, MerchantRefund.id, paging, "refunds")
    return Page[RefundOut](items=[refund_out(r) for r in rows], next_cursor=cursor, limit=paging.limit)


@router.get(
    "/v1/merchants/{merchant}/statements/{day}",
    responses={200: {"model": Statement, "content": {"text/csv": {}}}},
)
def merchant_statement(
    merchant: Address,
    day: Day,
    ctx: CtxDep,
    key: ApiKeyDep,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    """A merchant's statement of one Beijing day (per code and terminal: payments, vouchers,
    refunds, net; fen and yuan) as JSON, or as a CSV settlement file (``format=csv``). The
    merchant's own key, the operator, the auditor, the regulator."""
    may_act_for(key, merchant, *READERS)
    check_read_scope(ctx, key, merchant)
    if day > dt.date.today() + dt.timedelta(days=1):
        raise Problem(422, "day-in-future", "The day has not begun", day.isoformat())
    st = statements.statement(ctx, merchant, day)
    if format == "csv":
        name = f"statement-{merchant}-{day.isoformat()}.csv"
        return Response(
            statements.as_csv(st),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return Response(st.model_dump_json(), media_type="application/json")


@router.post("/v1/spot-checks/run", responses={200: {"model": SpotCheckReport}})
def run_spot_checks(ctx: CtxDep, ops: OpsDep, key: OperatorKey) -> SpotCheckReport:
    """Run today's spot check now (the worker runs it on its schedule): a 1-fen probe payment to
    every active static code and every active terminal not probed yet today (a terminal: the
    robot's probe card pays its merchant, settled as the terminal's upload would be), refunded at
    once. Idempotent per day: a second run probes only new targets (and finishes probes a stopped
    run left). Answers the day's report."""
    check_platform_key(key, "the spot-check robot")
    return spotcheck.run(ctx, ops)


@router.get("/v1/spot-checks/{day}")
def spot_check_report(day: Day, ctx: CtxDep, key: ReaderKey) -> SpotCheckReport:
    """A day's spot-check report: coverage and pass rate, per area and per merchant category."""
    check_platform_key(key, "the spot-check robot")
    return spotcheck.report(ctx, day)
