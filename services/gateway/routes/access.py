"""Door access: an access point asks whether a card may pass; every decision is logged.

1. The access point asks for a challenge: 32 random bytes, valid ``access_challenge_ttl_s``
   (30 s by default) and for this access point only.
2. The card signs it: EIP-712 ``Access(address card,bytes32 challenge)`` under the domain
   ``XcpayAccess`` version 1 with the chain id and the settlement contract
   (:func:`wallets.hardwallet.access_digest`; :meth:`wallets.hardwallet.HardWallet.sign_challenge`).
   The domain differs from the payment domain, so an access signature can never settle a payment,
   and it is bound to one chain and deployment.
3. The access point sends card, challenge and signature. The challenge is consumed first, in one
   conditional UPDATE (``used`` false -> true), so of two concurrent answers only one can pass;
   then the gateway checks expiry, the signature, the card's registration and status on chain
   (only ``active`` cards pass: lost, blocked or closed cards are denied) and the access list
   (the card's holder, or every card of its form). The answer is allow or deny with a reason,
   always HTTP 200, and is logged in ``access_decisions``.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from sqlalchemy import delete, select, update

from chain.clients.hardwallet import CardStatus
from chain.exceptions import ContractError
from services.common.audit import record
from services.common.context import ServiceContext
from services.common.deps import ApiKeyDep, CtxDep, OperatorKey, require
from services.common.keys import Role, create_key
from services.common.models import AccessChallenge, AccessDecision, AccessGrant, AccessPoint, ApiKey
from services.common.paging import Page, Paging, decode_cursor, encode_cursor
from services.common.problems import Problem
from services.gateway.schemas import (
    AccessIn,
    AccessPointIn,
    AccessPointOut,
    ChallengeOut,
    DecisionOut,
    GrantIn,
    GrantOut,
)
from wallets.hardwallet import ACCESS_DOMAIN_NAME, recover_access

router = APIRouter(tags=["door access"])

PointId = Annotated[str, Path(pattern=r"^AP-[0-9A-F]{8,16}$")]
_require_point = require(Role.ACCESS_POINT)


def _point_of(ctx: CtxDep, key: Annotated[ApiKey, Depends(_require_point)]) -> AccessPoint:
    with ctx.db.session() as s:
        row = s.scalar(select(AccessPoint).where(AccessPoint.api_key_id == key.id))
    if row is None:
        raise Problem(403, "not-an-access-point", "This key belongs to no registered access point")
    return row


PointDep = Annotated[AccessPoint, Depends(_point_of)]


# -- access points and their lists (operator) --------------------------------------------------


def _point(ctx: ServiceContext, point_id: str) -> AccessPoint:
    with ctx.db.session() as s:
        row = s.get(AccessPoint, point_id)
    if row is None:
        raise Problem(404, "access-point-not-found", "Access point not found", point_id)
    return row


def _point_out(ctx: ServiceContext, row: AccessPoint, key: str | None = None) -> AccessPointOut:
    with ctx.db.session() as s:
        grants = s.scalars(
            select(AccessGrant).where(AccessGrant.access_point_id == row.id).order_by(AccessGrant.id)
        ).all()
    return AccessPointOut(
        id=row.id,
        name=row.name,
        location=row.location,
        grants=[GrantOut(id=g.id, holder=g.holder, form=g.form) for g in grants],
        key=key,
    )


@router.post("/v1/access-points", status_code=201, tags=["door access"])
def create_access_point(body: AccessPointIn, ctx: CtxDep, key: OperatorKey) -> AccessPointOut:
    """Register an access point (operator). The answer holds its API key, once."""
    point_id = f"AP-{secrets.token_hex(5).upper()}"
    with ctx.db.session() as s:
        api_key, clear = create_key(s, Role.ACCESS_POINT, f"access point {point_id}")
        row = AccessPoint(id=point_id, name=body.name, location=body.location, api_key_id=api_key.id)
        s.add(row)
        s.commit()
    record(ctx.db, key, "access-point.create", point_id, outcome="created")
    return _point_out(ctx, row, clear)


@router.get("/v1/access-points/{point_id}")
def get_access_point(point_id: PointId, ctx: CtxDep, _: OperatorKey) -> AccessPointOut:
    """An access point and its access list."""
    return _point_out(ctx, _point(ctx, point_id))


@router.post("/v1/access-points/{point_id}/grants", status_code=201)
def add_grant(point_id: PointId, body: GrantIn, ctx: CtxDep, key: OperatorKey) -> AccessPointOut:
    """Add a holder (their cards) or a card form (every card of it) to the access list."""
    if (body.holder is None) == (body.form is None):
        raise Problem(422, "invalid-grant", "Give exactly one of holder and form")
    row = _point(ctx, point_id)
    with ctx.db.session() as s:
        exists = s.scalar(
            select(AccessGrant.id).where(
                AccessGrant.access_point_id == point_id,
                AccessGrant.holder.is_(None) if body.holder is None else AccessGrant.holder == body.holder,
                AccessGrant.form.is_(None) if body.form is None else AccessGrant.form == body.form,
            )
        )
        if exists is None:
            s.add(AccessGrant(access_point_id=point_id, holder=body.holder, form=body.form))
            s.commit()
    record(ctx.db, key, "access-grant.add", f"{point_id} {body.holder or body.form}", outcome="added")
    return _point_out(ctx, row)


@router.delete("/v1/access-points/{point_id}/grants/{grant_id}")  # ids: a 32-bit INTEGER column
def remove_grant(
    point_id: PointId, grant_id: Annotated[int, Path(ge=1, lt=2**31)], ctx: CtxDep, key: OperatorKey
) -> AccessPointOut:
    """Remove an entry from the access list."""
    row = _point(ctx, point_id)
    with ctx.db.session() as s:
        gone = s.execute(
            delete(AccessGrant).where(AccessGrant.id == grant_id, AccessGrant.access_point_id == point_id)
        ).rowcount
        s.commit()
    if not gone:
        raise Problem(404, "grant-not-found", "No such entry in this access list", str(grant_id))
    record(ctx.db, key, "access-grant.remove", f"{point_id} {grant_id}", outcome="removed")
    return _point_out(ctx, row)


@router.get("/v1/access-points/{point_id}/decisions")
def list_decisions(
    point_id: PointId,
    ctx: CtxDep,
    key: ApiKeyDep,
    paging: Paging,
) -> Page[DecisionOut]:
    """The access point's decision log, newest first (operator, auditor). Paged as every listing
    is (services/common/paging.py: its cursor, its ``invalid-cursor`` for one it did not issue),
    but by descending id, as a log is read."""
    if key.role not in (Role.OPERATOR, Role.AUDITOR):
        raise Problem(403, "forbidden-role", "Only the operator or the auditor read the access log")
    before = decode_cursor(DECISIONS, paging.cursor, int)
    _point(ctx, point_id)
    q = select(AccessDecision).where(AccessDecision.access_point_id == point_id)
    if before is not None:
        q = q.where(AccessDecision.id < before)
    with ctx.db.session() as s:
        rows = list(s.scalars(q.order_by(AccessDecision.id.desc()).limit(paging.limit + 1)).all())
    more = len(rows) > paging.limit
    rows = rows[: paging.limit]
    cursor = encode_cursor(DECISIONS, rows[-1].id) if more else None
    return Page[DecisionOut](items=[_decision_out(d) for d in rows], next_cursor=cursor, limit=paging.limit)


DECISIONS = "access-decisions"  # the listing's name in its cursors


def _decision_out(d: AccessDecision) -> DecisionOut:
    return DecisionOut(
        id=d.id,
        at=d.at,
        access_point=d.access_point_id,
        card=d.card,
        holder=d.holder,
        allowed=d.allowed,
        reason=d.reason,
    )


# -- the door (access point key) ---------------------------------------------------------------


@router.post("/v1/access/challenges", status_code=201)
def new_challenge(request: Request, ctx: CtxDep, point: PointDep) -> ChallengeOut:
    """A fresh single-use challenge for this access point, for the card to sign."""
    nonce = "0x" + secrets.token_bytes(32).hex()
    expires_at = int(time.time()) + int(request.app.state.settings.access_challenge_ttl_s)
    with ctx.db.session() as s:
        s.add(AccessChallenge(nonce=nonce, access_point_id=point.id, expires_at=expires_at))
        s.commit()
    domain = ctx.hardwallet.domain
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Access": [{"name": "card", "type": "address"}, {"name": "challenge", "type": "bytes32"}],
        },
        "primaryType": "Access",
        "domain": {
            "name": ACCESS_DOMAIN_NAME,
            "version": "1",
            "chainId": domain.chain_id,
            "verifyingContract": domain.verifying_contract,
        },
        "message": {"card": None, "challenge": nonce},
    }
    return ChallengeOut(challenge=nonce, expires_at=expires_at, typed_data=typed)


@router.post("/v1/access/decisions")
def decide(body: AccessIn, ctx: CtxDep, point: PointDep, response: Response) -> DecisionOut:
    """Allow or deny a card at this access point (always 200; the reason says why). Logged."""
    holder, reason = _judge(ctx, point, body)
    with ctx.db.session() as s:
        row = AccessDecision(
            access_point_id=point.id,
            card=body.card,
            holder=holder,
            nonce=body.challenge.lower(),
            allowed=reason == "on-access-list",
            reason=reason,
        )
        s.add(row)
        s.commit()
    return _decision_out(row)


def _judge(ctx: ServiceContext, point: AccessPoint, body: AccessIn) -> tuple[str | None, str]:
    """(the card's holder if known, the reason); ``on-access-list`` is the only allowing reason."""
    nonce = body.challenge.lower()
    with ctx.db.session() as s:
        consumed = s.execute(
            update(AccessChallenge)
            .where(
                AccessChallenge.nonce == nonce,
                AccessChallenge.access_point_id == point.id,
                AccessChallenge.used.is_(False),
            )
            .values(used=True)
        ).rowcount
        s.commit()
        challenge = s.get(AccessChallenge, nonce)
    if challenge is None or challenge.access_point_id != point.id:
        return None, "unknown-challenge"
    if not consumed:
        return None, "challenge-used"
    if time.time() > challenge.expires_at:
        return None, "challenge-expired"
    try:
        signer = recover_access(
            body.card, bytes.fromhex(nonce[2:]), bytes.fromhex(body.signature[2:]), ctx.hardwallet.domain
        )
    except Exception:
        return None, "invalid-signature"
    if signer != body.card:
        return None, "invalid-signature"
    try:
        info = ctx.hardwallet.card(body.card)
    except ContractError:
        return None, "unknown-card"
    if info.status != CardStatus.ACTIVE:
        return info.holder, f"card-{info.status.name.lower()}"
    form = info.form.name.lower()
    with ctx.db.session() as s:
        listed = s.scalar(
            select(AccessGrant.id)
            .where(
                AccessGrant.access_point_id == point.id,
                (AccessGrant.holder == info.holder) | (AccessGrant.form == form),
            )
            .limit(1)
        )
    return info.holder, "on-access-list" if listed is not None else "not-on-access-list"
