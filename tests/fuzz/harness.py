"""What both fuzz modules share: the Schemathesis configuration, the checks, and the key per role.

Every operation is called with a valid key of a role the route admits (read from the route's own
``require(...)`` dependency, so a role change in a route is followed here without a table to keep
in step), so the fuzzer gets past authentication and reaches validation, the database and the
chain. The checks assert, for every response: no 5xx; the status code is documented for the
operation; the body and the content type match what is documented; and every 4xx is an RFC 9457
problem document (``application/problem+json`` with ``type``, ``title`` and ``status``).

``XCPAY_FUZZ=long`` runs many more examples per operation and every database backend
(``make audit``); the default is the bounded run of ``make test`` on SQLite;
``XCPAY_FUZZ_EXAMPLES=<n>`` sets the examples per operation by hand. Every run is derandomized:
the same code is fuzzed with the same inputs.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import schemathesis
from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

LONG = os.environ.get("XCPAY_FUZZ", "") == "long"
# Examples per operation (explicit examples plus generated ones, valid and invalid). py-evm mines
# every accepted money-moving call, so the default stays small enough for `make test`: 20, the same
# derandomized ones every run (the operator's fuzz was a tenth of the suite's time at 40); the depth
# is in `make audit` (200 per operation on every backend).
MAX_EXAMPLES = int(os.environ.get("XCPAY_FUZZ_EXAMPLES", 200 if LONG else 20))
# No request may hang the suite: the services answer within their receipt timeout (10 s here).
REQUEST_TIMEOUT_S = 30

# (service title, "METHOD path") -> requests sent, for the summary at the end of the run.
RUNS: dict[tuple[str, str], int] = {}

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def config() -> schemathesis.Config:
    """Schemathesis' own settings: a fixed seed and a request timeout. The cases come from each
    operation's strategies (:func:`fuzz`) under :data:`FUZZ_SETTINGS`, not from the pytest plugin
    (its lazy ``from_fixture`` loader does not run under this pytest), so no phase is configured
    here: valid and invalid inputs are both drawn, the coverage phase's hundreds of boundary cases
    per operation are not (too many for a chain that mines each accepted call)."""
    return schemathesis.Config.from_dict({"seed": 0, "request-timeout": REQUEST_TIMEOUT_S})


def load_schema(url: str) -> Any:
    """The service's own published schema, fetched over HTTP as a client would."""
    return schemathesis.openapi.from_url(url + "/openapi.json", config=config(), timeout=REQUEST_TIMEOUT_S)


# -- checks --------------------------------------------------------------------------------------


def problem_document(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx (and 5xx) is ``application/problem+json`` with ``type``, ``title`` and ``status``
    (RFC 9457), and ``status`` repeats the HTTP status."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    assert content_type == "application/problem+json", (
        f"{response.status_code} answered as {content_type!r}, not application/problem+json"
    )
    try:
        doc = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"{response.status_code} body is not JSON: {response.content[:200]!r}") from exc
    assert isinstance(doc, dict), f"problem body is not an object: {doc!r}"
    missing = [k for k in ("type", "title", "status") if k not in doc]
    assert not missing, f"problem document lacks {missing}: {doc!r}"
    assert isinstance(doc["type"], str) and doc["type"], f"problem type is not a URI string: {doc!r}"
    assert isinstance(doc["title"], str) and doc["title"], f"problem title is empty: {doc!r}"
    assert doc["status"] == response.status_code, f"problem status {doc['status']} != {response.status_code}"
    return True


CHECKS: list[Callable[..., bool | None]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    problem_document,
]


def fuzz(
    schema: Any, method: str, path: str, key: str | None, path_parameters: dict[str, Any] | None = None
) -> int:
    """Fuzz one operation: valid and invalid inputs, each sent with ``key`` (the fuzzer's own
    X-API-Key values are replaced, so calls get past authentication). ``path_parameters`` pins
    path parameters (revoking or rotating API keys: a throwaway key's id, not the fuzzer's own
    keys'). Returns the examples run."""
    operation = schema[path][method.lower()]
    headers = {"X-API-Key": key} if key else None
    pinned: dict[str, Any] = {"headers": headers}
    if path_parameters:
        pinned["path_parameters"] = path_parameters
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE, **pinned),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE, **pinned),
    )
    calls = 0

    @FUZZ_SETTINGS
    @given(case=cases)
    def run(case: Any) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(checks=CHECKS, timeout=REQUEST_TIMEOUT_S)

    run()
    label = (schema.raw_schema["info"]["title"], f"{method} {path}")
    RUNS[label] = RUNS.get(label, 0) + calls
    return calls


# -- roles ---------------------------------------------------------------------------------------

# The role a fuzzed call uses when a route admits several: the broadest first.
ROLE_PREFERENCE = (
    "operator",
    "regulator",
    "auditor",
    "checker",
    "merchant",
    "officer",
    "terminal",
    "access-point",
    "admin",
    "holder",
)


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


def _admitted(dependant: Dependant) -> frozenset[str] | None:
    """The roles of the first ``require(...)`` check among the route's dependencies (its closure
    holds ``allowed``), or None when the route takes any key (or none)."""
    for sub in _dependencies(dependant):
        call = sub.call
        if call is None or not getattr(call, "__closure__", None):
            continue
        allowed = inspect.getclosurevars(call).nonlocals.get("allowed")
        if allowed:
            return frozenset(allowed)
    return None


def operations(routers: list[APIRouter]) -> list[tuple[str, str, str | None]]:
    """(METHOD, path, role) of every documented operation of a service, from its routers, so that
    pytest names each one; None as role for routes without ``require`` (any valid key)."""
    out: list[tuple[str, str, str | None]] = []
    for router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            allowed = _admitted(route.dependant)
            role = None if allowed is None else next(r for r in ROLE_PREFERENCE if r in allowed)
            out.extend((method.upper(), route.path_format, role) for method in sorted(route.methods))
    return out


def documented(schema: Any) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation the live schema documents."""
    return {(m.upper(), p) for p, item in schema.raw_schema["paths"].items() for m in item}
