"""The guard in front of both services: what an unauthenticated, internet-facing client meets first.

One pure ASGI middleware (:class:`Guard`, installed by :func:`install` in both apps) does, in
this order, before any route or FastAPI body parsing runs:

1. gives the request an id (a well-formed ``X-Request-ID`` header, else a new one), returned as a
   header and in every problem body, and on every log line written while it runs;
2. refuses a request that repeats ``X-API-Key`` or ``Idempotency-Key`` (400), then rate-limits
   per client address (a token bucket; 429 with ``Retry-After``);
3. on ``/v1/`` routes (but the holder's sign-in, :data:`KEYLESS_ROUTES`), checks the API key
   *before reading a byte of the body* (401), refuses a holder key outside the holder routes
   (403), then
   rate-limits per key (429);
4. refuses a body larger than the route's limit from its ``Content-Length`` and while it streams
   (413): ``max_upload_bytes`` for the CSV upload routes (paths ending in ``/csv``),
   ``max_body_bytes`` for every other route;
5. refuses a JSON body nested deeper than ``max_json_depth`` (400) with a linear scan, before any
   recursive parser sees it (a deeply nested body overflowed the C stack: see
   :func:`restore_recursion_limit`), and a JSON object that names a key twice (400): parsers
   disagree on which value wins (Python's takes the last, others the first), so a proxy or a log
   could read another amount than the service pays;
6. adds ``X-Content-Type-Options: nosniff`` (and a few like it) to every answer, and
   ``Cache-Control: no-store`` to every answer of a request that carried a key or a ``/v1/`` path;
7. writes one access-log line (``xcpay.access``): method, path (never the query), status, time,
   client address, the key's id (never the key), request id.

The body, once read and checked, is handed to the app from memory: at most the route's limit is
ever held.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import anyio
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from services.common import i18n
from services.common.logs import request_id as request_id_var
from services.common.models import ApiKey
from services.common.problems import PROBLEM_JSON, TYPE_PREFIX, database_unavailable
from services.common.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("xcpay.access")
log = logging.getLogger("xcpay.guard")

# py_ecc (imported by eth_account) raises the recursion limit to 100,000 on import, so that a
# recursive parser given a deeply nested document overflows the C stack (SIGSEGV, the whole
# process) instead of raising RecursionError. 10,000 leaves the in-process EVM room for nested
# calls and stays far inside an 8 MiB thread stack.
SANE_RECURSION_LIMIT = 10_000

# Headers a request sends at most once (their value decides who acts, and which operation).
_SINGLE_HEADERS = (b"x-api-key", b"idempotency-key")
UPLOAD_ROUTE = re.compile(r"/csv/?$")  # the CSV uploads keep a larger limit
# The /v1/ routes a client reaches without a key: a holder's sign-in, which is how a holder gets
# a key (the signature over a single-use challenge is the credential; rate limits still apply).
KEYLESS_ROUTES = frozenset({"/v1/holder/challenge", "/v1/holder/session"})
# A holder key (a resident's, bound to one wallet) reaches the holder routes and nothing else:
# decided here, once for both apps, so that no route that admits "a key that owns this wallet"
# (a wallet's page, its operations) ever answers a holder by accident.
HOLDER_PREFIX = "/v1/holder/"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# A JSON string (closed or not: an open one runs to the end, the parser refuses it there) or a bracket.
_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")


def restore_recursion_limit() -> None:
    """Bring the recursion limit back to a sane value after py_ecc raised it (call after imports)."""
    if sys.getrecursionlimit() > SANE_RECURSION_LIMIT:
        sys.setrecursionlimit(SANE_RECURSION_LIMIT)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def json_duplicate_key(body: bytes) -> str | None:
    """The first key a JSON object of ``body`` names twice, if any. A body that is not JSON at
    all is left to the route's own parser (which answers 422)."""
    if not body.strip():
        return None
    try:
        json.loads(body, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as dup:
        return dup.key
    except ValueError:  # not JSON (or not UTF-8): the route's validation says so
        return None
    return None


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether the JSON text ``body`` nests arrays and objects deeper than ``limit``. Linear, no
    recursion; brackets inside strings do not count. Not a validator: the parser still is one."""
    depth = 0
    for m in _JSON_TOKENS.finditer(body):
        c = body[m.start()]
        if c in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif c in _CLOSE:
            depth -= 1
    return False


class TokenBuckets:
    """One token bucket per name (a client address, a key id): ``rate`` tokens a second up to
    ``burst``; a request takes one. Bounded memory: the least recently seen names are dropped
    beyond ``max_names`` (a dropped bucket comes back full, which only ever admits more)."""

    def __init__(self, rate: float, burst: int, max_names: int = 100_000) -> None:
        self.rate, self.burst, self.max_names = rate, float(burst), max_names
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # name -> (tokens, at)

    def take(self, name: str, now: float | None = None) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there is."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.pop(name, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[name] = (tokens, now)
        while len(self._buckets) > self.max_names:
            self._buckets.popitem(last=False)
        return wait


def problem_response(
    status: int, slug: str, title: str, detail: str, rid: str, accept_language: str | None = None
) -> tuple[int, bytes, str]:
    """The guard's own problem answers, in the language the request prefers (services.common.i18n)."""
    doc: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": rid,
    }
    lang = i18n.answer_language(doc, accept_language)
    return status, json.dumps(i18n.localize(doc, lang), ensure_ascii=False).encode(), lang


class Guard:
    """The ASGI middleware described in the module docstring."""

    def __init__(
        self, app: ASGIApp, settings: Settings, authenticate: Callable[[str], ApiKey | None]
    ) -> None:
        self.app = app
        self.settings = settings
        self.authenticate = authenticate
        self.limited = settings.rate_limited
        self.by_address = TokenBuckets(settings.rate_per_address_per_s, settings.rate_burst_per_address)
        self.by_key = TokenBuckets(settings.rate_per_key_per_s, settings.rate_burst_per_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        offered = headers.get("x-request-id", "")
        rid = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        client = (scope.get("client") or ("unknown", 0))[0]
        private = "x-api-key" in headers or path.startswith("/v1/")
        seen: dict[str, Any] = {"status": 0, "key": None}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                extra = [
                    (b"x-request-id", rid.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dict(extra)]
                if private:
                    kept = [(k, v) for k, v in kept if k.lower() != b"cache-control"]
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = kept + extra
            await send(message)

        async def refuse(
            status: int, slug: str, title: str, detail: str, more: Sequence[tuple[bytes, bytes]] = ()
        ) -> None:
            _, body, lang = problem_response(status, slug, title, detail, rid, headers.get("accept-language"))
            start = [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"content-language", lang.encode()),
            ]
            await send_with_headers(
                {"type": "http.response.start", "status": status, "headers": [*start, *more]}
            )
            await send_with_headers({"type": "http.response.body", "body": body})

        try:
            await self._guarded(
                scope, receive, send_with_headers, refuse, headers, method, path, client, seen
            )
        finally:
            key = seen["key"]
            access_log.info(
                "%s %s %s",
                method,
                path,
                seen["status"],
                extra={
                    "event": "access",
                    "method": method,
                    "path": path,
                    "status": seen["status"],
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "client": client,
                    "key_id": key.id if key is not None else None,
                    "role": key.role if key is not None else None,
                },
            )
            request_id_var.reset(token)

    async def _guarded(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        refuse: Callable[..., Awaitable[None]],
        headers: dict[str, str],
        method: str,
        path: str,
        client: str,
        seen: dict[str, Any],
    ) -> None:
        s = self.settings
        names = [k.lower() for k, _ in scope.get("headers", [])]
        repeated = [h.decode() for h in _SINGLE_HEADERS if names.count(h) > 1]
        if repeated:
            # Which one would count? A proxy may check the first, the service read the last: a
            # request that sends either twice is refused, not guessed at (red team 10).
            await refuse(
                400,
                "repeated-header",
                "A header that must come once came more than once",
                f"send {', '.join(repeated)} once",
            )
            return
        if self.limited and (wait := self.by_address.take(f"addr:{client}")):
            await self._too_many(refuse, wait, "this client address")
            return
        if path.startswith("/v1/") and path not in KEYLESS_ROUTES:
            presented = headers.get("x-api-key", "")
            if not presented:
                await refuse(401, "missing-api-key", "Missing API key", "send the X-API-Key header")
                return
            try:
                key = await anyio.to_thread.run_sync(self.authenticate, presented)
            except (DBAPIError, SQLAlchemyTimeoutError) as exc:
                # The key lookup runs here, outside the app's exception handlers: a database that
                # dropped its connection (a killed backend, a restarted server) must answer as the
                # handlers would (503, retry), not fall through to a bare 500.
                await self._database_failed(refuse, path, exc)
                return
            if key is None:
                await refuse(401, "invalid-api-key", "Invalid API key", "unknown, revoked or expired")
                return
            seen["key"] = key
            scope["state"]["api_key"] = key
            if key.role == "holder" and not path.startswith(HOLDER_PREFIX):
                await refuse(
                    403,
                    "forbidden-role",
                    "This key's role may not do this",
                    f"a holder key reaches only the {HOLDER_PREFIX} routes",
                )
                return
            if self.limited and (wait := self.by_key.take(f"key:{key.id}")):
                await self._too_many(refuse, wait, "this API key")
                return
        limit = s.max_upload_bytes if UPLOAD_ROUTE.search(path) else s.max_body_bytes
        too_large = (413, "body-too-large", "The request body is too large", f"at most {limit} bytes here")
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await refuse(400, "bad-request", "Invalid Content-Length", "not a number")
                return
            if int(declared) > limit:
                await refuse(*too_large)
                return
        if method not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await refuse(*too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if not headers.get("content-type", "").startswith("text/csv") and json_depth_exceeds(
            body, s.max_json_depth
        ):
            depth = f"at most {s.max_json_depth} levels of arrays and objects"
            await refuse(400, "json-too-deep", "The JSON body nests too deep", depth)
            return
        if "json" in headers.get("content-type", ""):
            duplicate = json_duplicate_key(body)
            if duplicate is not None:
                shown = duplicate if len(duplicate) <= 64 else duplicate[:64] + "…"
                await refuse(
                    400,
                    "json-duplicate-key",
                    "The JSON body names a key twice",
                    f"the key {shown!r} appears twice in one object; send each key once",
                )
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _database_failed(
        refuse: Callable[..., Awaitable[None]], path: str, exc: DBAPIError | SQLAlchemyTimeoutError
    ) -> None:
        if isinstance(exc, SQLAlchemyTimeoutError) or database_unavailable(exc):
            log.warning("database unavailable checking the key on %s: %s", path, exc)
            detail = "the request was not completed; retry it later with the same Idempotency-Key"
            await refuse(
                503, "database-unavailable", "The database is unavailable", detail, [(b"retry-after", b"1")]
            )
        else:
            log.exception("database error checking the key on %s", path)
            await refuse(500, "internal-error", "Internal error", "the error was logged")

    @staticmethod
    async def _too_many(refuse: Callable[..., Awaitable[None]], wait: float, who: str) -> None:
        seconds = max(1, math.ceil(wait))
        await refuse(
            429,
            "rate-limited",
            "Too many requests",
            f"too many requests from {who}; retry after {seconds} s",
            [(b"retry-after", str(seconds).encode())],
        )


def install(app: FastAPI, settings: Settings, authenticate: Callable[[str], ApiKey | None]) -> None:
    """Put the guard in front of ``app`` (outermost of the app's own middleware)."""
    restore_recursion_limit()
    app.add_middleware(Guard, settings=settings, authenticate=authenticate)  # type: ignore[arg-type]
