"""Typed FastAPI dependencies shared by the services (full-stack FastAPI template style).

They are ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, one thread hop
each (an issuance had five before its route's own), and none of these blocks (the one that may
read the database hands that read to a thread itself)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from services.common.context import ServiceContext
from services.common.indexer import Indexer
from services.common.keys import Role, authenticate
from services.common.models import ApiKey
from services.common.operations import Operations
from services.common.problems import Problem

# A body a body-less action accepts: none, or an empty JSON object (what a client that always sends
# JSON sends for "nothing"; it carries no field, so nothing of it can be ignored).
_NOTHING = re.compile(rb"\s*(\{\s*\})?\s*")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def refuse_undeclared_body(request: Request) -> None:
    """Every route of both apps (installed once, by ``services.common.shell.create_app``): an action
    that takes no body (its route declares none: revoke, rotate, pause, approve, close...) refuses
    one that says something, 422 ``unexpected-body``, rather than acting as if it had not been
    sent (red team: ``{"x": "\\u0000"}`` rotated an admin key). No body, an empty body and ``{}``
    are accepted. A route that reads its body itself declares it in ``openapi_extra`` (the CSV
    uploads) and is left alone."""
    if request.method not in _BODY_METHODS:
        return
    route = request.scope.get("route")
    if getattr(route, "body_field", True) is not None:  # a declared body (or not a FastAPI route)
        return
    if "requestBody" in (getattr(route, "openapi_extra", None) or {}):
        return
    body = await request.body()  # buffered by the guard already, at most XCPAY_MAX_BODY_BYTES
    if _NOTHING.fullmatch(body):
        return
    raise Problem(
        422,
        "unexpected-body",
        "This action takes no request body",
        "send no body (or an empty JSON object {}); this route reads nothing from it",
    )


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route reads: its own and its dependencies' (paging's, ...)."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def refuse_unknown_query(request: Request) -> None:
    """A router's dependency: a query parameter the route does not read is a 422
    ``unknown-query-parameter``, not silently ignored. The holder's routes have it (red team, LOW:
    ``/v1/holder/history?wallet=<another wallet>`` answered with the caller's own history, as if
    the other wallet's): a holder key reads its own wallet only, and no holder route takes a
    wallet; saying so beats an answer that looks like another's records."""
    if not request.query_params:
        return
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise Problem(
            422,
            "unknown-query-parameter",
            "The request names a query parameter this route does not take",
            f"unknown: {', '.join(unknown)[:200]}; this route takes: {takes}",
            unknown=unknown[:20],
        )


async def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


async def get_ops(request: Request) -> Operations:
    return request.app.state.ops  # type: ignore[no-any-return]


async def get_indexer(request: Request) -> Indexer:
    return request.app.state.indexer  # type: ignore[no-any-return]


CtxDep = Annotated[ServiceContext, Depends(get_ctx)]
OpsDep = Annotated[Operations, Depends(get_ops)]
IndexerDep = Annotated[Indexer, Depends(get_indexer)]


async def get_api_key(
    request: Request, ctx: CtxDep, x_api_key: Annotated[str | None, Header()] = None
) -> ApiKey:
    """The request's key. The guard (services/common/guard.py) authenticated it already on the
    ``/v1/`` routes, before the body was read; other routes (the dashboard's data) are checked here."""
    checked = getattr(request.state, "api_key", None)
    if checked is not None:
        return checked  # type: ignore[no-any-return]
    if not x_api_key:
        raise Problem(401, "missing-api-key", "Missing API key", "send the X-API-Key header")
    key = await run_in_threadpool(_authenticate, ctx, x_api_key)
    if key is None:
        raise Problem(401, "invalid-api-key", "Invalid API key")
    if key.role == Role.HOLDER:  # a resident's key: the /v1/holder routes only (see the guard)
        raise Problem(
            403, "forbidden-role", "This key's role may not do this", "a holder key reaches only /v1/holder/"
        )
    return key


def _authenticate(ctx: ServiceContext, presented: str) -> ApiKey | None:
    with ctx.db.session() as s:
        return authenticate(s, presented)


ApiKeyDep = Annotated[ApiKey, Depends(get_api_key)]


def require(*roles: Role) -> Callable[[ApiKey], Awaitable[ApiKey]]:
    """A dependency admitting only keys of ``roles``."""
    allowed = {str(r) for r in roles}

    async def check(key: ApiKeyDep) -> ApiKey:
        if key.role not in allowed:
            raise Problem(
                403,
                "forbidden-role",
                "This key's role may not do this",
                f"role {key.role!r} is not one of {sorted(allowed)}",
            )
        return key

    return check


async def get_idempotency_key(idempotency_key: Annotated[str | None, Header()] = None) -> str:
    return idempotency_key_of(idempotency_key)


def idempotency_key_of(idempotency_key: str | None) -> str:
    """The ``Idempotency-Key`` header's value, checked (a 400 problem when missing or too long)."""
    if idempotency_key is None or not idempotency_key.strip():
        raise Problem(
            400,
            "missing-idempotency-key",
            "Missing Idempotency-Key",
            "this request moves money or changes chain state; send an Idempotency-Key header",
        )
    if len(idempotency_key) > 200:
        raise Problem(400, "invalid-idempotency-key", "Idempotency-Key too long", "at most 200 characters")
    return idempotency_key


# The roles that read any party's records. Every other key reads its own: a merchant, officer or
# terminal key speaks for one wallet, a checker key for its wallet and the payers it is an officer
# of (the disburse family decides that); a door reader reads nothing.
READER_ROLES = (Role.OPERATOR, Role.REGULATOR, Role.AUDITOR)


def reader_or_owner(key: ApiKey, owns: bool) -> None:
    """Reads of one party's data: the reader roles see everything; any other key sees only what
    is its own (``owns``, decided by the caller before it looks anything up where it can)."""
    if key.role not in READER_ROLES and not owns:
        raise Problem(
            403, "not-yours", "This key may read only its own records", f"role {key.role!r} does not own this"
        )


IdempotencyKey = Annotated[str, Depends(get_idempotency_key)]
OperatorKey = Annotated[ApiKey, Depends(require(Role.OPERATOR))]
AdminKey = Annotated[ApiKey, Depends(require(Role.ADMIN))]
RegulatorKey = Annotated[ApiKey, Depends(require(Role.REGULATOR))]
AuditorKey = Annotated[ApiKey, Depends(require(Role.AUDITOR))]
OperatorOrRegulatorKey = Annotated[ApiKey, Depends(require(Role.OPERATOR, Role.REGULATOR))]
CheckerKey = Annotated[ApiKey, Depends(require(Role.CHECKER))]
ReaderKey = Annotated[ApiKey, Depends(require(*READER_ROLES))]
RegulatorOrAuditorKey = Annotated[ApiKey, Depends(require(Role.REGULATOR, Role.AUDITOR))]
MerchantKey = Annotated[ApiKey, Depends(require(Role.MERCHANT))]
