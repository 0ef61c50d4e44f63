"""The paycodes family's HTTP routes: create, read, list and pay merchant payment codes, and the
codes as QR images. Thin: validate, authorise, call ``service``, answer."""

from __future__ import annotations

import io
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response

from services.common.deps import ApiKeyDep, CtxDep, IdempotencyKey, OpsDep, idempotency_key_of
from services.common.keys import Role
from services.common.paging import Page, Paging
from services.common.problems import Problem, problem_response
from services.common.schemas import Address
from services.common.scope import check_read_scope, read_filter
from services.operator.families.paycodes import service
from services.operator.families.paycodes.schemas import CodeId, CodeIn, CodeOut, PayIn
from services.operator.families.paycodes.service import may_act_for

router = APIRouter(prefix=service.PREFIX, tags=["payment codes"])

READERS = (Role.OPERATOR, Role.AUDITOR, Role.REGULATOR)  # and a merchant key, of its own codes

CREATE_CONFLICTS = problem_response(
    "reference-in-use: another code of this merchant holds this bill reference (open, being paid or "
    "paid; `code_id` names it); idempotency-key-reused: the key was first used with another body; "
    "merchant-frozen"
)


@router.post("", status_code=201, responses={409: CREATE_CONFLICTS})
def create_code(
    body: CodeIn,
    ctx: CtxDep,
    key: ApiKeyDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> CodeOut:
    """Create a static code (no amount) or a dynamic one (a bill: amount, optional reference, expiry)
    for a registered merchant (operator, or the merchant's own key).

    A merchant's bill reference is held by one code at a time and paid at most once: while a code
    with it is open, being paid or paid, another is refused (409 reference-in-use naming it); a code
    that expired unpaid gives it up. With an ``Idempotency-Key`` the same key and body answer with
    the same code; the same key with another body is a 409, as for every other write."""
    may_act_for(key, body.merchant, Role.OPERATOR)
    idem = idempotency_key_of(idempotency_key) if idempotency_key is not None else None
    return service.code_out(ctx, service.create_code(ctx, key, idem, body))


# The image routes come before /{code_id}: a code id never holds a dot, so "x.png" is an image.
@router.get("/{code_id}.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
def code_png(code_id: CodeId, ctx: CtxDep, key: ApiKeyDep) -> Response:
    """The code as a QR image (PNG). The image says what the code's JSON says: the same readers."""
    code = service.find_code(ctx, code_id)
    may_act_for(key, code.merchant, *READERS)
    check_read_scope(ctx, key, code.merchant)  # a key bound to an institution: its own merchants' codes
    buf = io.BytesIO()
    service.qr(code).save(buf, kind="png", scale=8, border=4)
    return Response(buf.getvalue(), media_type="image/png")


@router.get("/{code_id}.svg", response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}})
def code_svg(code_id: CodeId, ctx: CtxDep, key: ApiKeyDep) -> Response:
    """The code as a QR image (SVG). The image says what the code's JSON says: the same readers."""
    code = service.find_code(ctx, code_id)
    may_act_for(key, code.merchant, *READERS)
    check_read_scope(ctx, key, code.merchant)  # a key bound to an institution: its own merchants' codes
    buf = io.BytesIO()
    service.qr(code).save(buf, kind="svg", scale=8, border=4)
    return Response(buf.getvalue(), media_type="image/svg+xml")


@router.get("/{code_id}")
def get_code(code_id: CodeId, ctx: CtxDep, key: ApiKeyDep) -> CodeOut:
    """The code, its status (active, paying, paid, expired) and every payment with its transaction."""
    code = service.find_code(ctx, code_id)
    may_act_for(key, code.merchant, *READERS)
    check_read_scope(ctx, key, code.merchant)  # a key bound to an institution: its own merchants' codes
    return service.code_out(ctx, code_id)


PAY_CONFLICTS = problem_response(
    "code-already-paid, code-expired, merchant-frozen; card-payment-duplicate, card-payment-shortfall; "
    "signed transactions: transaction-already-known (the node has it already, mined or waiting, or "
    "another payment recorded it: a transaction pays one bill, ever) and nonce-not-next (its nonce "
    "is not the sender's next: `nonce`, `next_nonce`)"
)


@router.post("/{code_id}/pay", responses={202: {"model": CodeOut}, 409: PAY_CONFLICTS})
def pay_code(
    code_id: CodeId,
    body: PayIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: ApiKeyDep,
    idem: IdempotencyKey,
    response: Response,
) -> CodeOut:
    """Pay a code. Custodial form: the operator pays from the payer's custodial wallet. Signed
    transaction: the payer's own signed DigitalCash transfer to the merchant, relayed unchanged
    (the operator, or the merchant's own key at the counter, submits it)."""
    # decided before the code is looked up, so that a 404 tells a merchant nothing
    if body.form in ("custodial", "voucher") and key.role != Role.OPERATOR:
        raise Problem(403, "forbidden-role", "Only the operator pays from custodial wallets")
    if key.role == Role.MERCHANT:  # another merchant's code and a missing one: the same 403
        may_act_for(key, service.merchant_of(ctx, code_id) or "", Role.OPERATOR)
    code = service.find_code(ctx, code_id)
    if body.form not in ("custodial", "voucher"):
        may_act_for(key, code.merchant, Role.OPERATOR)
    op = service.pay(ctx, ops, key, idem, code, body)
    response.status_code = 200 if op.status == "confirmed" else 202
    return service.code_out(ctx, code.id)


# -- listing (issue 21: find what you created) --------------------------------------------------


@router.get("", summary="List and search payment codes")
def list_codes(
    ctx: CtxDep,
    key: ApiKeyDep,
    paging: Paging,
    merchant: Annotated[Address | None, Query()] = None,
    status: Annotated[Literal["active", "paying", "paid", "expired"] | None, Query()] = None,
    reference: Annotated[
        str | None, Query(min_length=1, max_length=64, description="the bill reference")
    ] = None,
    kind: Annotated[Literal["static", "dynamic"] | None, Query()] = None,
) -> Page[CodeOut]:
    """The codes, by id, each as ``GET /v1/payment-codes/{code_id}`` reads it. The same readers: the
    operator, the auditor, the regulator; a merchant key its own codes only (another merchant's
    filter is refused, as a read of its code is)."""
    if key.role == Role.MERCHANT:
        merchant = merchant or key.wallet
    may_act_for(key, merchant or "", *READERS)
    return service.list_codes(
        ctx,
        paging,
        merchant=merchant,
        status=status,
        reference=reference,
        kind=kind,
        serves=read_filter(ctx, key),
    )
