"""Door access: access points, their lists, challenges and the allow-or-deny judgement."""

from __future__ import annotations

import secrets
import time
from typing import Any, cast

from sqlalchemy import delete, select, update
from sqlalchemy.engine import CursorResult

from chain.clients.hardwallet import CardStatus
from chain.exceptions import ContractError
from services.common.audit import record
from services.common.context import ServiceContext
from services.common.keys import Role, create_key
from services.common.models import AccessPoint, ApiKey
from services.common.paging import Page, PageQuery, decode_cursor, encode_cursor
from services.common.problems import Problem
from services.common.scope import acts_for_institution, institution_of
from services.gateway.families.hardwallet.models import AccessChallenge, AccessDecision, AccessGrant
from services.gateway.families.hardwallet.schemas import (
    AccessIn,
    AccessPointIn,
    AccessPointOut,
    ChallengeOut,
    DecisionOut,
    GrantIn,
    GrantOut,
)
from wallets.hardwallet import ACCESS_DOMAIN_NAME, recover_access

DECISIONS = "access-decisions"  # the decision log's name in its cursors


def point_of(ctx: ServiceContext, key: ApiKey) -> AccessPoint:
    """The access point an access-point key belongs to."""
    with ctx.db.session() as s:
        row = s.scalar(select(AccessPoint).where(AccessPoint.api_key_id == key.id))
    if row is None:
        raise Problem(403, "not-an-access-point", "This key belongs to no registered access point")
    return row


def point(ctx: ServiceContext, point_id: str) -> AccessPoint:
    with ctx.db.session() as s:
        row = s.get(AccessPoint, point_id)
    if row is None:
        raise Problem(404, "access-point-not-found", "Access point not found", point_id)
    return row


def point_institution(ctx: ServiceContext, row: AccessPoint) -> int:
    """The institution whose customer the access point serves: the one the key that created it
    acted for, recorded on the point's own key (institution #1 when a platform key created it)."""
    with ctx.db.session() as s:
        point_key = s.get(ApiKey, row.api_key_id)
    return (point_key.institution if point_key is not None else None) or 1


def check_point_scope(ctx: ServiceContext, key: ApiKey, row: AccessPoint, *, write: bool) -> None:
    """Two tiers (red team rt3): a key bound to an institution reads, and an operator key changes,
    only the access points its institution created (403 ``institution-scope``). The platform's
    own keys (unbound: operator, auditor, regulator) read all; an unbound operator key acts for
    institution #1."""
    if write:
        if not acts_for_institution(key):
            return
        mine = institution_of(key)
    elif key.institution is None:
        return
    else:
        mine = key.institution
    theirs = point_institution(ctx, row)
    if theirs != mine:
        raise Problem(
            403,
            "institution-scope",
            "The access point is another institution's",
            f"this key acts for institution {mine}; access point {row.id} is institution {theirs}'s",
        )


def point_out(ctx: ServiceContext, row: AccessPoint, key: str | None = None) -> AccessPointOut:
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


def create_point(ctx: ServiceContext, key: ApiKey, body: AccessPointIn) -> AccessPointOut:
    """A new access point and its key, shown once."""
    point_id = f"AP-{secrets.token_hex(5).upper()}"
    with ctx.db.session() as s:
        # The point's key records the institution it was created for (two tiers: see check_point_scope).
        api_key, clear = create_key(
            s, Role.ACCESS_POINT, f"access point {point_id}", institution=key.institution
        )
        row = AccessPoint(id=point_id, name=body.name, location=body.location, api_key_id=api_key.id)
        s.add(row)
        s.commit()
    record(ctx.db, key, "access-point.create", point_id, outcome="created")
    return point_out(ctx, row, clear)


def add_grant(ctx: ServiceContext, key: ApiKey, point_id: str, body: GrantIn) -> AccessPointOut:
    """Add the entry unless the list has it already (adding twice is one entry)."""
    row = point(ctx, point_id)
    check_point_scope(ctx, key, row, write=True)
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
    return point_out(ctx, row)


def remove_grant(ctx: ServiceContext, key: ApiKey, point_id: str, grant_id: int) -> AccessPointOut:
    row = point(ctx, point_id)
    check_point_scope(ctx, key, row, write=True)
    with ctx.db.session() as s:
        gone = cast(
            CursorResult[Any],
            s.execute(
                delete(AccessGrant).where(AccessGrant.id == grant_id, AccessGrant.access_point_id == point_id)
            ),
        ).rowcount  # a DML statement's result
        s.commit()
    if not gone:
        raise Problem(404, "grant-not-found", "No such entry in this access list", str(grant_id))
    record(ctx.db, key, "access-grant.remove", f"{point_id} {grant_id}", outcome="removed")
    return point_out(ctx, row)


def decisions(ctx: ServiceContext, key: ApiKey, point_id: str, paging: PageQuery) -> Page[DecisionOut]:
    """The decision log, newest first: paged as every listing is (its cursor, its
    ``invalid-cursor`` for one it did not issue), but by descending id, as a log is read."""
    before = decode_cursor(DECISIONS, paging.cursor, int)
    check_point_scope(ctx, key, point(ctx, point_id), write=False)
    q = select(AccessDecision).where(AccessDecision.access_point_id == point_id)
    if before is not None:
        q = q.where(AccessDecision.id < before)
    with ctx.db.session() as s:
        rows = list(s.scalars(q.order_by(AccessDecision.id.desc()).limit(paging.limit + 1)).all())
    more = len(rows) > paging.limit
    rows = rows[: paging.limit]
    cursor = encode_cursor(DECISIONS, rows[-1].id) if more else None
    return Page[DecisionOut](items=[decision_out(d) for d in rows], next_cursor=cursor, limit=paging.limit)


def decision_out(d: AccessDecision) -> DecisionOut:
    return DecisionOut(
        id=d.id,
        at=d.at,
        access_point=d.access_point_id,
        card=d.card,
        holder=d.holder,
        allowed=d.allowed,
        reason=d.reason,
    )


def new_challenge(ctx: ServiceContext, at: AccessPoint, ttl_s: int) -> ChallengeOut:
    """A fresh single-use challenge for this access point and the EIP-712 message the card signs."""
    nonce = "0x" + secrets.token_bytes(32).hex()
    expires_at = int(time.time()) + ttl_s
    with ctx.db.session() as s:
        s.add(AccessChallenge(nonce=nonce, access_point_id=at.id, expires_at=expires_at))
        s.commit()
    domain = ctx.hardwallet.domain
    typed: dict[str, object] = {
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


def decide(ctx: ServiceContext, at: AccessPoint, body: AccessIn) -> DecisionOut:
    """Judge the card at this access point and log the decision."""
    holder, reason = _judge(ctx, at, body)
    with ctx.db.session() as s:
        row = AccessDecision(
            access_point_id=at.id,
            card=body.card,
            holder=holder,
            nonce=body.challenge.lower(),
            allowed=reason == "on-access-list",
            reason=reason,
        )
        s.add(row)
        s.commit()
    return decision_out(row)


def _judge(ctx: ServiceContext, at: AccessPoint, body: AccessIn) -> tuple[str | None, str]:
    """(the card's holder if known, the reason); ``on-access-list`` is the only allowing reason."""
    nonce = body.challenge.lower()
    with ctx.db.session() as s:
        consumed = cast(
            CursorResult[Any],
            s.execute(
                update(AccessChallenge)
                .where(
                    AccessChallenge.nonce == nonce,
                    AccessChallenge.access_point_id == at.id,
                    AccessChallenge.used.is_(False),
                )
                .values(used=True)
            ),
        ).rowcount  # a DML statement's result
        s.commit()
        challenge = s.get(AccessChallenge, nonce)
    if challenge is None or challenge.access_point_id != at.id:
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
                AccessGrant.access_point_id == at.id,
                (AccessGrant.holder == info.holder) | (AccessGrant.form == form),
            )
            .limit(1)
        )
    return info.holder, "on-access-list" if listed is not None else "not-on-access-list"
