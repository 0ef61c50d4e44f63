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
   always HTTP 200, and is logged in ``access_decisions`` (``service.decide``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from services.common.deps import ApiKeyDep, CtxDep, OperatorKey, require
from services.common.keys import Role
from services.common.models import AccessPoint, ApiKey
from services.common.paging import Page, Paging
from services.common.problems import Problem
from services.gateway.families.hardwallet.schemas import (
    AccessIn,
    AccessPointIn,
    AccessPointOut,
    ChallengeOut,
    DecisionOut,
    GrantIn,
)
from services.gateway.families.hardwallet.service import access as service

router = APIRouter(tags=["door access"])

PointId = Annotated[str, Path(pattern=r"^AP-[0-9A-F]{8,16}$")]
_require_point = require(Role.ACCESS_POINT)


def _point_of(ctx: CtxDep, key: Annotated[ApiKey, Depends(_require_point)]) -> AccessPoint:
    return service.point_of(ctx, key)


PointDep = Annotated[AccessPoint, Depends(_point_of)]


# -- access points and their lists (operator) --------------------------------------------------


@router.post("/v1/access-points", status_code=201, tags=["door access"])
def create_access_point(body: AccessPointIn, ctx: CtxDep, key: OperatorKey) -> AccessPointOut:
    """Register an access point (operator). The answer holds its API key, once."""
    return service.create_point(ctx, key, body)


@router.get("/v1/access-points/{point_id}")
def get_access_point(point_id: PointId, ctx: CtxDep, key: OperatorKey) -> AccessPointOut:
    """An access point and its access list (a key bound to an institution: the points its
    institution created only, 403 ``institution-scope`` otherwise)."""
    row = service.point(ctx, point_id)
    service.check_point_scope(ctx, key, row, write=False)
    return service.point_out(ctx, row)


@router.post("/v1/access-points/{point_id}/grants", status_code=201)
def add_grant(point_id: PointId, body: GrantIn, ctx: CtxDep, key: OperatorKey) -> AccessPointOut:
    """Add a holder (their cards) or a card form (every card of it) to the access list."""
    if (body.holder is None) == (body.form is None):
        raise Problem(422, "invalid-grant", "Give exactly one of holder and form")
    return service.add_grant(ctx, key, point_id, body)


@router.delete("/v1/access-points/{point_id}/grants/{grant_id}")  # ids: a 32-bit INTEGER column
def remove_grant(
    point_id: PointId, grant_id: Annotated[int, Path(ge=1, lt=2**31)], ctx: CtxDep, key: OperatorKey
) -> AccessPointOut:
    """Remove an entry from the access list."""
    return service.remove_grant(ctx, key, point_id, grant_id)


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
    return service.decisions(ctx, key, point_id, paging)


# -- the door (access point key) ---------------------------------------------------------------


@router.post("/v1/access/challenges", status_code=201)
def new_challenge(request: Request, ctx: CtxDep, point: PointDep) -> ChallengeOut:
    """A fresh single-use challenge for this access point, for the card to sign."""
    return service.new_challenge(ctx, point, int(request.app.state.settings.access_challenge_ttl_s))


@router.post("/v1/access/decisions")
def decide(body: AccessIn, ctx: CtxDep, point: PointDep) -> DecisionOut:
    """Allow or deny a card at this access point (always 200; the reason says why). Logged."""
    return service.decide(ctx, point, body)
