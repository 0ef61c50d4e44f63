"""Fuzz every operation of the hard-wallet gateway's OpenAPI schema over real HTTP.

Each operation gets valid and invalid inputs (Schemathesis, derandomized) with a key of a role it
admits: the operator's, or a terminal's or access point's key created through the gateway's own
API. Asserted for every response: no 5xx, a documented status code, a body and content type as
documented, and a problem document for every error (see :mod:`tests.fuzz.harness`).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis

from services.gateway.families import MODULES
from services.gateway.routes import ROUTERS
from tests.fuzz import harness
from tests.gateway.conftest import Gateway

OPERATIONS = harness.operations([*ROUTERS, *(r for m in MODULES for r in m.routers)])


@pytest.fixture(scope="module")
def gateway_keys(gateway: Gateway) -> dict[str | None, str]:
    """A key per role the gateway's routes admit; routes taking any key get the operator's."""
    operator = gateway.clients["operator"].headers["X-API-Key"]
    r = gateway.post("operator", "/v1/terminals", {"merchant": gateway.merchant(), "location": "fuzz"})
    assert r.status_code == 201, r.text
    terminal = r.json()["key"]
    r = gateway.post("operator", "/v1/access-points", {"name": "fuzz door"})
    assert r.status_code == 201, r.text
    point = r.json()["key"]
    return {None: operator, "operator": operator, "terminal": terminal, "access-point": point}


@pytest.fixture(scope="module")
def gateway_schema(gateway: Gateway) -> Any:
    """The schema the running gateway publishes at /openapi.json."""
    return harness.load_schema(gateway.url)


def test_the_problem_check_tells_a_problem_document_from_any_other_error(gateway: Gateway) -> None:
    """The custom check passes the gateway's real 401 and fails a plain JSON error, a problem
    document without a title, and one whose status differs from the HTTP status."""
    real = requests.get(gateway.url + "/v1/terminals", timeout=harness.REQUEST_TIMEOUT_S)
    assert real.status_code == 401
    assert harness.problem_document(None, schemathesis.Response.from_any(real), None)

    def answer(status: int, content_type: str, body: bytes) -> schemathesis.Response:
        return schemathesis.Response(status, {"content-type": [content_type]}, body, real.request, 0.0, True)

    problem = "application/problem+json"
    bad = [
        (answer(404, "application/json", b'{"detail": "Not Found"}'), "not application/problem"),
        (answer(404, problem, b'{"type": "urn:x", "status": 404}'), "lacks"),
        (answer(409, problem, b'{"type": "urn:x", "title": "t", "status": 400}'), "status 400 != 409"),
        (answer(422, problem, b"<html></html>"), "not JSON"),
    ]
    for response, reason in bad:
        with pytest.raises(AssertionError, match=reason):
            harness.problem_document(None, response, None)


def test_every_documented_operation_is_fuzzed(gateway_schema: Any) -> None:
    """The live schema documents exactly the operations fuzzed below: none escapes the fuzz."""
    assert harness.documented(gateway_schema) == {(m, p) for m, p, _ in OPERATIONS}


@pytest.mark.parametrize(("method", "path", "role"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_operation_keeps_its_contract(
    method: str, path: str, role: str | None, gateway_schema: Any, gateway_keys: dict[str | None, str]
) -> None:
    """No input makes this operation answer outside its documented contract."""
    assert harness.fuzz(gateway_schema, method, path, gateway_keys[role]) > 0
