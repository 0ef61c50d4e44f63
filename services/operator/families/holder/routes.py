"""The holder family's HTTP routes. Thin: validate, authorise, call ``service``, answer.

``/v1/holder/challenge`` and ``/v1/holder/session`` take no key (the guard lets them through,
``services/common/guard.py`` KEYLESS_ROUTES): they are how a holder gets one. Every other holder
route admits only a ``holder`` key and answers for that key's wallet alone: no route takes a
wallet, and a mandate of another wallet is a 404 ``mandate-not-found``. Operator and admin keys
are refused (403 ``forbidden-role``): they read wallets through the operator's routes, never as
a holder."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from services.common.audit import record
from services.common.context import refuse_retired
from services.common.deps import (
    CtxDep,
    IdempotencyKey,
    IndexerDep,
    OperatorKey,
    OpsDep,
    refuse_unknown_query,
    require,
)
from services.common.keys import Role
from services.common.models import ApiKey
from services.common.paging import Page, Paging
from services.common.problems import problem_response
from services.common.schemas import Address, OperationOut, respond
from services.operator.families.disburse.schemas import Reference, RowIndex
from services.operator.families.holder import belongings, service
from services.operator.families.holder.schemas import (
    ActionOut,
    BalanceOut,
    CardOut,
    ChallengeIn,
    ChallengeOut,
    DisbursementRowOut,
    HolderKeyIn,
    HolderKeyOut,
    MandateOut,
    MovementOut,
    PackageOut,
    RevokeOut,
    SessionIn,
    SessionsIn,
    VoucherOut,
)
from services.operator.families.prepaid.schemas import PackageId
from services.operator.families.vouchers.schemas import CampaignIndex, ProgrammeId

# A holder key reads its own wallet's records only: a query parameter a route does not take (a
# ``wallet=`` naming another wallet) is refused, not ignored (services/common/deps.py).
router = APIRouter(prefix="/v1/holder", tags=["holder"], dependencies=[Depends(refuse_unknown_query)])


def _holder_of_a_live_wallet(key: Annotated[ApiKey, Depends(require(Role.HOLDER))], ctx: CtxDep) -> ApiKey:
    """A holder key whose wallet was not retired by a recovery: a key of the lost wallet (it may
    be on the lost phone) reads and does nothing any more; the holder signs in with the new one."""
    if key.wallet is not None:
        refuse_retired(ctx, key.wallet, then="sign in with")
    return key


HolderKey = Annotated[ApiKey, Depends(_holder_of_a_live_wallet)]
_RETIRED: dict[int | str, dict[str, Any]] = {
    410: problem_response("The key's wallet was retired by a recovery (wallet-retired)")
}
MandateId = Annotated[int, Path(ge=0, lt=2**63)]
FAMILY_NAMES = Literal["cash", "prepaid", "disburse", "vouchers", "collective", "hardwallet"]


@router.post(
    "/challenge",
    status_code=status.HTTP_201_CREATED,
    responses={
        404: problem_response("The wallet is not registered (wallet-not-registered)"),
        410: problem_response("The wallet was retired by a recovery (wallet-retired)"),
        503: problem_response("The chain node or the database is unavailable"),
    },
)
def holder_challenge(body: ChallengeIn, ctx: CtxDep, request: Request) -> ChallengeOut:
    """An EIP-4361 (Sign-In with Ethereum) message for ``wallet`` to sign with ``personal_sign``:
    single-use, valid for five minutes. No key needed."""
    return service.create_challenge(ctx, body.wallet, request.url.netloc, str(request.base_url))


@router.post(
    "/session",
    status_code=status.HTTP_201_CREATED,
    responses={
        403: problem_response("Signed by another key than the wallet's (signature-not-wallet)"),
        409: problem_response("The challenge was used already (challenge-used)"),
        410: problem_response("The challenge expired (challenge-expired)"),
        503: problem_response("The database is unavailable"),
    },
)
def holder_session(body: SessionIn, ctx: CtxDep) -> HolderKeyOut:
    """The signed challenge in, a holder key out (role ``holder``, bound to the wallet that
    signed, valid for 15 minutes; send it as ``X-API-Key``). Refused: an unknown or altered
    message (``challenge-unknown``), a used one (``challenge-used``), an expired one
    (``challenge-expired``), a signature by another key (``signature-not-wallet``)."""
    row, key = service.open_session(ctx, body.message, body.signature)
    record(ctx.db, row, "holder.sign-in", f"wallet {row.wallet}", outcome="signed in")
    assert row.wallet is not None and row.expires_at is not None
    return HolderKeyOut(key=key, key_id=row.id, wallet=row.wallet, expires_at=row.expires_at)


@router.post("/keys", status_code=status.HTTP_201_CREATED, responses=_RETIRED)
def issue_holder_key(body: HolderKeyIn, ctx: CtxDep, key: OperatorKey) -> HolderKeyOut:
    """The operator issues a holder key for a custodial wallet (its holder has no key to sign a
    challenge with): shown once, stored hashed, expiring after ``ttl_minutes``."""
    row, clear = service.issue_custodial_key(ctx, key, body.wallet, timedelta(minutes=body.ttl_minutes))
    record(ctx.db, key, "holder.key.issue", f"key {row.id} wallet {body.wallet}", outcome="created")
    assert row.wallet is not None and row.expires_at is not None
    return HolderKeyOut(key=clear, key_id=row.id, wallet=row.wallet, expires_at=row.expires_at)


@router.get("/balance", responses=_RETIRED)
def holder_balance(ctx: CtxDep, key: HolderKey) -> BalanceOut:
    """The holder's balance, what holds keep, the tier's caps and what is left of today's."""
    return service.balance(ctx, service.own_wallet(key))


@router.get("/history", responses=_RETIRED)
def holder_history(
    ctx: CtxDep,
    indexer: IndexerDep,
    key: HolderKey,
    paging: Paging,
    direction: Annotated[Literal["in", "out"] | None, Query()] = None,
    family: Annotated[FAMILY_NAMES | None, Query()] = None,
) -> Page[MovementOut]:
    """Every movement of the holder's cash, oldest first, with the counterparty's name, the
    family and what the transaction did. A filtered page may be short: stop on ``next_cursor``."""
    indexer.catch_up()
    items, cursor = service.history(ctx, service.own_wallet(key), paging, direction, family)
    return Page[MovementOut](items=items, next_cursor=cursor, limit=paging.limit)


@router.get(
    "/history/export", response_class=Response, responses={**_RETIRED, 200: {"content": {"text/csv": {}}}}
)
def holder_history_export(ctx: CtxDep, indexer: IndexerDep, key: HolderKey) -> Response:
    """The whole history as CSV (a spreadsheet's formulas are defused)."""
    indexer.catch_up()
    text = service.history_csv(ctx, service.own_wallet(key))
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="history.csv"'},
    )


@router.get("/mandates", responses=_RETIRED)
def holder_mandates(ctx: CtxDep, indexer: IndexerDep, key: HolderKey) -> list[MandateOut]:
    """The holder's quick-pay mandates (revoked and expired ones too)."""
    indexer.catch_up()
    return service.mandates(ctx, service.own_wallet(key))


@router.post("/mandates/{mandate_id}/revoke", responses={**_RETIRED, 202: {"model": RevokeOut}})
def holder_revoke_mandate(
    mandate_id: MandateId,
    ctx: CtxDep,
    ops: OpsDep,
    key: HolderKey,
    idem: IdempotencyKey,
    response: Response,
) -> RevokeOut:
    """Revoke one of the holder's mandates at once. Custodial wallet: the service signs the
    revocation with the holder's key (an operation; confirmed means no pull passes any more).
    Self-custody: nothing is sent; the answer is the call to sign and send (``sign_yourself``)."""
    wallet = service.own_wallet(key)
    if belongings.stored(ctx, key, idem) is None:  # a replay gets its first outcome
        service.own_mandate(ctx, wallet, mandate_id)
    if service.custody_of(ctx, wallet) != "custodial":
        return RevokeOut(mandate=mandate_id, sign_yourself=service.revoke_unsigned(ctx, mandate_id))
    op = service.revoke_custodial(ops, key, idem, wallet, mandate_id)
    return RevokeOut(mandate=mandate_id, operation=respond(op, response))


@router.get("/packages", responses=_RETIRED)
def holder_packages(ctx: CtxDep, indexer: IndexerDep, key: HolderKey) -> list[PackageOut]:
    """The prepaid packages the holder bought, with sessions used and what is still held."""
    indexer.catch_up()
    return service.packages(ctx, service.own_wallet(key))


@router.post(
    "/packages/{package_id}/consume",
    responses={
        **_RETIRED,
        202: {"model": ActionOut},
        404: problem_response("Not a package of the holder's (package-not-found)"),
        409: problem_response("The package is no longer open (package-closed)"),
    },
)
def holder_consume(
    package_id: PackageId,
    body: SessionsIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: HolderKey,
    idem: IdempotencyKey,
    response: Response,
) -> ActionOut:
    """Confirm ``sessions`` attended at the merchant: their held share goes to the merchant (the
    prepaid family's rule, ``PrepaidEscrow.consume``). Custodial: the service signs for the
    holder. Self-custody: nothing is sent; the answer is the call to sign (``sign_yourself``)."""
    wallet = service.own_wallet(key)
    if belongings.stored(ctx, key, idem) is None:  # a replay gets its first outcome
        belongings.own_package(ctx, wallet, package_id)
    if service.custody_of(ctx, wallet) != "custodial":
        call = belongings.consume_unsigned(ctx, package_id, body.sessions)
        return ActionOut(subject=str(package_id), sign_yourself=call)
    op = belongings.consume(ops, key, idem, package_id, body.sessions)
    return ActionOut(subject=str(package_id), operation=respond(op, response))


@router.post(
    "/packages/{package_id}/cancel",
    responses={
        **_RETIRED,
        202: {"model": ActionOut},
        404: problem_response("Not a package of the holder's (package-not-found)"),
        409: problem_response("The package is no longer open (package-closed)"),
    },
)
def holder_cancel_package(
    package_id: PackageId, ctx: CtxDep, ops: OpsDep, key: HolderKey, idem: IdempotencyKey, response: Response
) -> ActionOut:
    """Cancel a package: the unused held part comes back, less the package's cancellation fee
    (``PrepaidEscrow.cancel``). Custodial: signed by the service; self-custody: the call to sign."""
    wallet = service.own_wallet(key)
    if belongings.stored(ctx, key, idem) is None:  # a replay gets its first outcome
        belongings.own_package(ctx, wallet, package_id)
    if service.custody_of(ctx, wallet) != "custodial":
        return ActionOut(subject=str(package_id), sign_yourself=belongings.cancel_unsigned(ctx, package_id))
    op = belongings.cancel(ops, key, idem, package_id)
    return ActionOut(subject=str(package_id), operation=respond(op, response))


# -- cards ---------------------------------------------------------------------------------------


@router.get("/cards", responses=_RETIRED)
def holder_cards(ctx: CtxDep, indexer: IndexerDep, key: HolderKey) -> list[CardOut]:
    """The holder's hard-wallet cards (card, SIM, wearable): status, reserve, and after a loss
    report when it was made and when its grace period ends."""
    indexer.catch_up()
    return belongings.cards(ctx, service.own_wallet(key))


@router.post(
    "/cards/{card}/report-lost",
    responses={
        **_RETIRED,
        202: {"model": OperationOut},
        404: problem_response("Not a card of the holder's (card-not-found)"),
        409: problem_response("The card is lost or closed already (card-wrong-status)"),
    },
)
def holder_report_card_lost(
    card: Address, ctx: CtxDep, ops: OpsDep, key: HolderKey, idem: IdempotencyKey, response: Response
) -> OperationOut:
    """Report one of the holder's cards lost: payments it signs from now on never settle; those
    signed before settle within the grace period (``grace_ends_at``), after which the reserve can
    return to the wallet. Sent for the holder whatever the custody (the contract takes the
    holder's or an operator's call)."""
    wallet = service.own_wallet(key)
    custodial = service.custody_of(ctx, wallet) == "custodial"
    return respond(belongings.report_lost(ctx, ops, key, idem, wallet, card, custodial), response)


# -- vouchers ------------------------------------------------------------------------------------


@router.get("/vouchers", responses=_RETIRED)
def holder_vouchers(ctx: CtxDep, indexer: IndexerDep, key: HolderKey) -> list[VoucherOut]:
    """The voucher programmes the holder holds a grant of or may claim one from: balance, expiry,
    the spend rule, and where it pays (categories and merchants)."""
    indexer.catch_up()
    return belongings.vouchers(ctx, service.own_wallet(key))


@router.post(
    "/vouchers/{programme_id}/claims/{index}",
    responses={
        **_RETIRED,
        202: {"model": OperationOut},
        404: problem_response("Not a campaign grant of the holder's (leaf-not-found)"),
        409: problem_response("Claimed already (already-claimed)"),
    },
)
def holder_claim_voucher(
    programme_id: ProgrammeId,
    index: CampaignIndex,
    ctx: CtxDep,
    ops: OpsDep,
    key: HolderKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Claim one of the holder's campaign grants (listed under ``claimable``): the voucher
    balance is theirs from now on."""
    wallet = service.own_wallet(key)
    if belongings.stored(ctx, key, idem) is None:  # a replay gets its first outcome
        belongings.own_leaf(ctx, wallet, programme_id, index)
    return respond(belongings.claim_voucher(ctx, ops, key, idem, wallet, programme_id, index), response)


# -- disbursements -------------------------------------------------------------------------------


@router.get("/disbursements", responses=_RETIRED)
def holder_disbursements(ctx: CtxDep, key: HolderKey) -> list[DisbursementRowOut]:
    """The payroll and subsidy rows addressed to the holder (approved batches), newest batch
    first: payer, purpose, amount, status, and whether the holder may claim it now."""
    return belongings.disbursements(ctx, service.own_wallet(key))


@router.post(
    "/disbursements/{reference}/rows/{index}/claim",
    responses={
        **_RETIRED,
        202: {"model": OperationOut},
        404: problem_response("Not a row of the holder's (row-not-found)"),
        409: problem_response("Nothing to claim on this row now (row-not-claimable)"),
    },
)
def holder_claim_row(
    reference: Reference,
    index: RowIndex,
    request: Request,
    ctx: CtxDep,
    ops: OpsDep,
    key: HolderKey,
    idem: IdempotencyKey,
    response: Response,
) -> OperationOut:
    """Claim the holder's row: an unpaid row of a Merkle batch, or a payout exception whose cause
    is gone (registered, unfrozen, under the cap again). The money goes only to the holder."""
    wallet = service.own_wallet(key)
    op = belongings.claim_row(ctx, ops, key, idem, wallet, reference, index)
    if op.status == "confirmed":  # the rows' record follows the events, as the runner's does
        request.app.state.runner.apply_events(reference, op.result or {})
    return respond(op, response)
