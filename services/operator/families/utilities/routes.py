"""Utility bills (水电燃气缴费): thin routes over ``service``.

Billers are registered by the operator with their account-number rule; a biller (its merchant
key) or the operator posts bills; a resident pays by account number (``.../pay``, a custodial
wallet) or through a payment code (``.../code``, then ``/v1/payment-codes/{id}/pay`` in any payer
form), or authorises an auto-debit (a QuickPay mandate with the biller's cap) that the background
worker runs on the biller's debit day. The biller reads its daily settlement file as CSV.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response

from services.common.deps import ApiKeyDep, CtxDep, IdempotencyKey, OperatorKey, OpsDep
from services.common.keys import Role
from services.common.schemas import Day
from services.common.scope import check_read_scope
from services.operator.families.utilities import service
from services.operator.families.utilities.schemas import (
    AutoDebitIn,
    AutoDebitOut,
    BillerIn,
    BillerOut,
    BillIn,
    BillOut,
    CodeForBillIn,
    PayBillIn,
    RunOut,
)

router = APIRouter(tags=["utility bills"])

BillerId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$")]
Account = Annotated[str, Path(min_length=1, max_length=64)]
READERS = (Role.OPERATOR, Role.AUDITOR, Role.REGULATOR)  # and the biller's own merchant key


@router.post("/v1/billers", status_code=201)
def register_biller(body: BillerIn, ctx: CtxDep, _: OperatorKey) -> BillerOut:
    """Register a water, power or gas biller: its custodial merchant wallet, its account-number
    rule (a regular expression), its auto-debit cap and debit day (operator)."""
    return service.biller_out(service.register_biller(ctx, body))


@router.get("/v1/billers/{biller_id}")
def get_biller(biller_id: BillerId, ctx: CtxDep, key: ApiKeyDep) -> BillerOut:
    service.admit(key, *READERS)
    b = service.biller(ctx, biller_id)
    service.may_act(key, b, *READERS)
    return service.biller_out(b)


@router.post("/v1/billers/{biller_id}/bills", status_code=201)
def create_bill(biller_id: BillerId, body: BillIn, ctx: CtxDep, key: ApiKeyDep) -> BillOut:
    """A bill of one account for one period (the biller's key or the operator); one per period."""
    service.admit(key, Role.OPERATOR)
    b = service.biller(ctx, biller_id)
    service.may_act(key, b, Role.OPERATOR)
    return service.bill_out(ctx, service.create_bill(ctx, b, body))


@router.get("/v1/billers/{biller_id}/accounts/{account}/bills")
def account_bills(biller_id: BillerId, account: Account, ctx: CtxDep, key: ApiKeyDep) -> list[BillOut]:
    """An account's bills by period, each with its status and payment."""
    service.admit(key, *READERS)
    b = service.biller(ctx, biller_id)
    service.may_act(key, b, *READERS)
    check_read_scope(ctx, key, b.wallet)  # a key bound to an institution: its own billers' accounts
    return service.account_bills(ctx, b, account)


@router.post("/v1/billers/{biller_id}/accounts/{account}/pay", responses={202: {"model": BillOut}})
def pay_bill(
    biller_id: BillerId,
    account: Account,
    body: PayBillIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> BillOut:
    """Pay the account's bill (``period``, or its oldest open one) from the resident's custodial
    wallet (operator). 409 bill-not-open when it is paid or being paid another way."""
    b = service.biller(ctx, biller_id)
    out = service.pay_bill(
        ctx, ops, key, idem, b, service.open_bill(ctx, b, account, body.period), body.payer
    )
    response.status_code = 200 if out.status == "paid" else 202
    return out


@router.post("/v1/billers/{biller_id}/accounts/{account}/code", status_code=201)
def code_for_bill(
    biller_id: BillerId,
    account: Account,
    ctx: CtxDep,
    key: ApiKeyDep,
    body: Annotated[CodeForBillIn | None, Body()] = None,
) -> BillOut:
    """A payment code for the account's bill (the biller's key or the operator): the resident pays
    it at ``/v1/payment-codes/{code_id}/pay`` in any payer form; an unpaid code that expires gives
    the bill back."""
    service.admit(key, Role.OPERATOR)
    b = service.biller(ctx, biller_id)
    service.may_act(key, b, Role.OPERATOR)
    body = body or CodeForBillIn()
    return service.code_for_bill(
        ctx, key, b, service.open_bill(ctx, b, account, body.period), body.expires_in_s
    )


@router.post("/v1/billers/{biller_id}/autodebits", status_code=201)
def set_up_autodebit(
    biller_id: BillerId, body: AutoDebitIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, idem: IdempotencyKey
) -> AutoDebitOut:
    """A resident's auto-debit of one account: a QuickPay mandate from their custodial wallet to
    the biller, capped at the biller's cap (operator)."""
    return service.set_up_autodebit(ctx, ops, key, idem, service.biller(ctx, biller_id), body)


@router.post("/v1/billers/{biller_id}/autodebits/{autodebit_id}/revoke")
def revoke_autodebit(
    biller_id: BillerId,
    autodebit_id: Annotated[int, Path(ge=1, lt=2**31)],
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
) -> AutoDebitOut:
    """Revoke the auto-debit's mandate for its custodial holder (operator)."""
    return service.revoke_autodebit(ctx, ops, key, idem, service.biller(ctx, biller_id), autodebit_id)


@router.post("/v1/utilities/autodebit-runs")
def run_autodebits(ctx: CtxDep, ops: OpsDep, _: OperatorKey) -> RunOut:
    """Run the scheduled auto-debits now (what the background worker does every round)."""
    return service.run_due(ctx, ops)


@router.get(
    "/v1/billers/{biller_id}/settlements/{day}.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def settlement_file(biller_id: BillerId, day: Day, ctx: CtxDep, key: ApiKeyDep) -> Response:
    """The biller's settlement file of ``day`` (Beijing): every bill paid that day, with its
    channel, transaction and block (the biller's key, the operator, the auditor, the regulator)."""
    service.admit(key, *READERS)
    b = service.biller(ctx, biller_id)
    service.may_act(key, b, *READERS)
    check_read_scope(ctx, key, b.wallet)  # as a merchant statement: the biller's institution only
    body = service.settlement_csv(service.settlement_rows(ctx, b, day))
    return Response(
        body,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{b.id}-{day.isoformat()}.csv"'},
    )
