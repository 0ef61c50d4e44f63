"""Errors as ``application/problem+json`` (RFC 9457), each with a stable ``type``.

A contract's custom error becomes a 4xx that names it; a node that does not answer is a 503;
nothing a caller sends can produce a 500 with a stack trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from chain.exceptions import ContractError, NodeUnavailable, TransactionTimeout
from chain.families import ErrorAnswer, contract_errors
from services.common import humanize, i18n

log = logging.getLogger("xcpay.problems")

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:xcpay:problem:"


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(self, status: int, slug: str, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": TYPE_PREFIX + self.slug, "title": self.title, "status": self.status}
        if self.detail:
            doc["detail"] = self.detail
        if instance:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc


# Errors no one family owns -> (HTTP status, stable slug, title): OpenZeppelin's pause and access
# control (every family contract), and the platform's own answers in the same shape.
PLATFORM_ERRORS: dict[str, ErrorAnswer] = {
    "EnforcedPause": (409, "system-paused", "The system is paused"),
    "ExpectedPause": (409, "system-not-paused", "The system is not paused"),
    # Not a contract's answer: a row-bounded gas limit was too low (chain/gas.py); the function is
    # estimated from then on, so sending it again goes through.
    "OutOfGas": (503, "out-of-gas", "The transaction ran out of gas; send it again"),
    "WalletBatchRowRefused": (422, "wallet-batch-row-refused", "A row of the wallet batch was refused"),
    "WalletBatchSize": (422, "wallet-batch-size", "A wallet batch has 1 to 200 rows"),
    # The service's own key lacks a role: a deployment fault, not the caller's.
    "AccessControlUnauthorizedAccount": (503, "signer-lacks-role", "The service's signing key lacks a role"),
}

# Contract custom error -> (HTTP status, stable slug, title): each family's table
# (chain/families.py) and the platform's.
CONTRACT_ERRORS: dict[str, ErrorAnswer] = {**contract_errors(), **PLATFORM_ERRORS}


def contract_problem(err: ContractError, **extra: Any) -> Problem:
    """The problem of a contract's custom error: its slug and title from ``CONTRACT_ERRORS``, its
    ``detail`` the error as a person reads it (money in yuan and fen, times in Beijing time, states
    and roles by name: services/common/humanize.py), ``error`` the machine's values unchanged."""
    status, slug, title = CONTRACT_ERRORS.get(err.name, (422, "contract-error", "The contract refused"))
    args = jsonable(err.args_dict)
    return Problem(
        status,
        slug,
        title,
        detail=humanize.contract_detail(err.name, args),
        error={"name": err.name, "args": args},
        **extra,
    )


# Roles whose keys see every wallet: their problem details name wallets by their display names.
_NAMING_ROLES = frozenset({"admin", "operator", "regulator", "auditor"})


def _humanize_contract_detail(body: dict[str, Any], request: Request, lang: str) -> None:
    """Render a contract refusal's ``detail`` again in the answer's language, with the display
    names of the wallets it mentions when the caller's key may see them (one indexed query; a
    failing lookup leaves the addresses alone). The ``error`` field keeps the machine's values."""
    error = body.get("error")
    if not (
        isinstance(error, dict) and isinstance(error.get("name"), str) and isinstance(error.get("args"), dict)
    ):
        return
    name, args = error["name"], error["args"]
    if not str(body.get("detail", "")).startswith(name + "("):
        return  # a detail of its own (a row of a batch, a stored text): kept
    names: dict[str, str] = {}
    key = getattr(request.state, "api_key", None)
    ctx = getattr(request.app.state, "ctx", None)
    if key is not None and key.role in _NAMING_ROLES and ctx is not None:
        try:
            with ctx.db.session() as s:
                names = humanize.wallet_names(s, humanize.addresses_in(args))
        except Exception as exc:  # the names are a courtesy; the answer goes out without them
            log.info("no wallet names for a problem detail: %s", exc)
    body["detail"] = humanize.contract_detail(name, args, lang, names)


# What a node's refusal of a transaction means, by the words nodes use (py-evm, geth, anvil): the
# caller is told what was refused, never the node's own text (raw sender bytes, gas figures,
# balances, the node's address), which goes to the log.
_NODE_REFUSALS = (
    (("nonce", "already known"), "its nonce is used already or out of order"),
    (("cannot afford", "insufficient funds", "balance"), "the sender cannot pay for the gas"),
    (("underpriced", "fee cap", "max fee", "priority fee", "base fee", "gas price"), "its fee is too low"),
    (("intrinsic gas", "gas limit", "exceeds block gas", "out of gas"), "its gas limit does not fit"),
    (("chain id", "chainid", "invalid sender", "signature"), "it is signed wrongly or for another chain"),
)


def node_refusal(exc: BaseException) -> str:
    """A safe description of why a node refused a transaction (see ``_NODE_REFUSALS``)."""
    text = str(exc).lower()
    log.info("node refused a transaction: %s", exc)
    for words, meaning in _NODE_REFUSALS:
        if any(w in text for w in words):
            return f"the node refused the transaction: {meaning}"
    return "the node refused the transaction"


def problem_from_stored(error: dict[str, Any], **extra: Any) -> Problem:
    """Rebuild the problem of a failed operation from what was stored."""
    rest = {k: v for k, v in error.items() if k not in {"status", "slug", "title", "detail"}}
    return Problem(
        int(error.get("status", 422)),
        str(error.get("slug", "contract-error")),
        str(error.get("title", "Operation failed")),
        detail=str(error.get("detail", "")),
        **{**rest, **extra},
    )


def jsonable(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or value is None:  # most values: no ABC checks (hot: events)
        return value
    if kind is dict:
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Mapping):  # web3's AttributeDict too (struct arguments of events)
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class ProblemDocument(BaseModel):
    """The body of every error answer, as the OpenAPI schema documents it."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="stable per failure: urn:xcpay:problem:<slug>")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = Field(default=None, description="the X-Request-ID of the answer, for the logs")


_PROBLEM_DESCRIPTIONS = {
    400: "The body cannot be read (not UTF-8), or a header is missing or invalid (Idempotency-Key)",
    401: "Missing or unknown API key",
    403: "The key's role, or the party it speaks for, may not do this",
    404: "Not found",
    409: "Conflicts with the current state (on chain, or an Idempotency-Key reused for another request)",
    413: "The body is larger than this route's limit (XCPAY_MAX_BODY_BYTES, or _MAX_UPLOAD_BYTES for CSV)",
    422: "The request is invalid, or a contract rule refused it",
    429: "Too many requests from this client address or API key; retry after Retry-After seconds",
    503: "The chain node or the database is unavailable, or the transaction was not mined in time",
}


def problem_response(description: str) -> dict[str, Any]:
    """A route's own problem answer for ``responses=`` (a status the defaults below do not cover)."""
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _problem_statuses(operation: dict[str, Any]) -> list[int]:
    """The error statuses an operation can answer, read from what it takes: any parameter or body
    can be invalid (422), a path names something that may not exist (404), an X-API-Key header
    means authentication, roles, chain state and the node (401, 403, 404, 409, 422, 503), and an
    Idempotency-Key header may be missing and a body may not be readable at all or nest too deep
    (400), too large (413); and any may be rate-limited (429)."""
    params = operation.get("parameters", [])
    where = {p.get("in") for p in params}
    headers = {str(p.get("name", "")).lower() for p in params if p.get("in") == "header"}
    statuses: set[int] = {429}  # the guard's rate limits (services/common/guard.py), when on
    if params or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        statuses.add(413)  # the guard's body limit
    if "path" in where:
        statuses.add(404)
    if "x-api-key" in headers:
        statuses |= {401, 403, 404, 409, 422, 503}
    if "idempotency-key" in headers or "requestBody" in operation:
        statuses.add(400)
    return sorted(statuses)


def _document_problems(app: FastAPI) -> None:
    """Declare the problem responses of every operation in the OpenAPI schema, in place of
    FastAPI's default 422 body (which these services never send), so that clients and the schema
    fuzz (tests/fuzz) see the answers the services really give. A status a route declares itself
    (``responses=``) is kept."""
    generate = app.openapi
    done: list[int] = []  # id() of the schema last completed (FastAPI regenerates it if routes change)

    def openapi() -> dict[str, Any]:
        schema = generate()
        if done and done[-1] == id(schema):
            return schema
        ref = {"$ref": "#/components/schemas/Problem"}
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                default_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
                if default_422.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                    del responses["422"]
                for status in _problem_statuses(operation):
                    responses.setdefault(
                        str(status),
                        {
                            "description": _PROBLEM_DESCRIPTIONS[status],
                            "content": {PROBLEM_JSON: {"schema": ref}},
                        },
                    )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = ProblemDocument.model_json_schema()
        if "HTTPValidationError" not in json.dumps(schema["paths"]):
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
        done[:] = [id(schema)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _response(problem: Problem, request: Request) -> JSONResponse:
    body = problem.body(str(request.url.path))
    rid = getattr(request.state, "request_id", None)  # set by the guard (services/common/guard.py)
    if rid:
        body["request_id"] = rid
    lang = i18n.answer_language(body, request.headers.get("accept-language"))
    _humanize_contract_detail(body, request, lang)
    i18n.localize(body, lang)
    return JSONResponse(
        body, status_code=problem.status, media_type=PROBLEM_JSON, headers={"Content-Language": lang}
    )


# SQLite's words for a database it cannot write or reach now; PostgreSQL's SQLSTATE classes for a
# lost connection (08), exhausted resources (53), an operator intervention such as a killed
# backend (57) and a transaction rolled back for a conflict (40).
_SQLITE_OUTAGE = ("readonly", "read-only", "locked", "busy", "disk", "unable to open", "full")
_POSTGRES_OUTAGE = ("08", "53", "57", "40")


def database_unavailable(exc: DBAPIError) -> bool:
    """Whether a database error is an outage worth retrying, rather than a bug."""
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        return str(sqlstate)[:2] in _POSTGRES_OUTAGE
    if isinstance(exc, OperationalError) and type(exc.orig).__module__.startswith("psycopg"):
        return True  # no SQLSTATE from psycopg: the connection itself failed
    if isinstance(exc, OperationalError):
        message = str(exc.orig).lower()
        return any(word in message for word in _SQLITE_OUTAGE)
    return False


def install(app: FastAPI) -> None:
    _document_problems(app)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return _response(exc, request)

    @app.exception_handler(ContractError)
    async def _contract(request: Request, exc: ContractError) -> JSONResponse:
        return _response(contract_problem(exc), request)

    @app.exception_handler(NodeUnavailable)
    async def _node(request: Request, exc: NodeUnavailable) -> JSONResponse:
        log.warning("node unavailable on %s: %s", request.url.path, exc)  # the node's address stays here
        detail = "the chain node did not answer; retry later (with the same Idempotency-Key)"
        return _response(Problem(503, "node-unavailable", "The chain node is unavailable", detail), request)

    @app.exception_handler(TransactionTimeout)
    async def _timeout(request: Request, exc: TransactionTimeout) -> JSONResponse:
        return _response(
            Problem(
                503,
                "transaction-timeout",
                "The transaction was not mined in time",
                f"transaction {exc.tx_hash} is not mined yet; its operation finishes when it is",
            ),
            request,
        )

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        # A database that refuses writes (a read-only file, a full disk) or a connection that
        # dropped (a restarted server, a killed backend) is the service's outage, not the
        # caller's fault: the caller retries with the same Idempotency-Key and gets one outcome.
        # Anything else (a missing table, bad SQL) is our bug: a 500, never "retry later".
        if not database_unavailable(exc):
            log.exception("database error on %s", request.url.path)
            return _response(
                Problem(500, "internal-error", "Internal error", "the error was logged"), request
            )
        log.warning("database unavailable on %s: %s", request.url.path, exc.orig, exc_info=exc)
        return _database_unavailable(request)

    @app.exception_handler(SQLAlchemyTimeoutError)
    async def _pool_exhausted(request: Request, exc: SQLAlchemyTimeoutError) -> JSONResponse:
        log.warning("no database connection free on %s: %s", request.url.path, exc)
        return _database_unavailable(request)

    def _database_unavailable(request: Request) -> JSONResponse:
        problem = Problem(
            503,
            "database-unavailable",
            "The database is unavailable",
            "the request was not completed; retry it later with the same Idempotency-Key",
        )
        response = _response(problem, request)
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses (PostgreSQL: a NUL character in a query parameter, a number
        # beyond a column's range) came from the caller. Request bodies with a NUL are refused
        # earlier, at validation (services.common.schemas.Strict), before any intent is recorded;
        # this is the safety net. The driver's message (with the SQL) stays in the log.
        log.info("database refused a value on %s: %s", request.url.path, exc.orig)
        return _response(
            Problem(
                422,
                "unstorable-value",
                "A value the database cannot store",
                "a text with a NUL character, or a number beyond what the field holds",
            ),
            request,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return _response(
            Problem(422, "invalid-request", "The request is invalid", detail, errors=errors), request
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 400: FastAPI could not read the body (e.g. not UTF-8) before any validation ran.
        slug = {400: "bad-request", 404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(
            exc.status_code, "http-error"
        )
        return _response(Problem(exc.status_code, slug, str(exc.detail)), request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _response(Problem(500, "internal-error", "Internal error", "the error was logged"), request)
