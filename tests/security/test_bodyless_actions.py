"""Actions that need nothing in their body work without one (issue 21): before, ``execute`` and a
merchant's refund page answered ``422 body: Field required`` unless the client sent ``{}``.

The routes come from each app's published OpenAPI schema: every POST or DELETE whose body is
absent, optional, or has no required field. Each is called over real HTTP, with a key of a role
its access-matrix row admits, once with no body at all and once with an empty body declared as
JSON; the answer may be anything but a refusal for the body (the placeholder ids may be a 404).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.security.access_matrix import MATRICES
from tests.security.test_access_matrix import World, gateway_world, operator_world  # noqa: F401


def _bodyless(schema: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    components = schema.get("components", {}).get("schemas", {})
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if method not in ("post", "delete", "put", "patch"):
                continue
            body = op.get("requestBody")
            if body is not None and body.get("required"):
                content = body.get("content", {})
                if "application/json" not in content:
                    continue  # a CSV upload: its body is the point
                ref = content["application/json"]["schema"].get("$ref", "")
                model = components.get(ref.rsplit("/", 1)[-1], {})
                if model.get("required") or model.get("minProperties"):
                    continue
            found.append((method.upper(), path))
    return found


def _refused_for_the_body(r: httpx.Response) -> bool:
    if r.status_code != 422 or not r.headers.get("content-type", "").startswith("application/problem+json"):
        return False
    return any(e.get("loc", [None])[0] == "body" for e in r.json().get("errors", []))


@pytest.mark.parametrize("service", ["operator", "gateway"])
def test_every_bodyless_action_works_without_a_body(request: pytest.FixtureRequest, service: str) -> None:
    world: World = request.getfixturevalue(f"{service}_world")
    routes = _bodyless(world.app.openapi())
    assert ("POST", "/v1/disbursements/{reference}/execute") in routes or service == "gateway"
    checked = []
    for method, path in routes:
        rule = MATRICES[service][(method, path)]
        role = sorted(rule.allow)[0] if rule.allow else sorted(rule.own)[0]
        url = path.format(**{**world.params, **world.overrides.get((method, path), {})})
        for extra in ({}, {"content": b"", "headers": {"Content-Type": "application/json"}}):
            headers = {"Idempotency-Key": str(uuid.uuid4()), **extra.get("headers", {})}
            r = world.clients[role].request(method, url, headers=headers, content=extra.get("content"))
            assert not _refused_for_the_body(r), f"{method} {path} as {role}: {r.text[:300]}"
            assert r.status_code < 500, f"{method} {path} as {role}: {r.status_code} {r.text[:300]}"
            if (method, path) in world.after and r.status_code < 400:
                world.after[(method, path)]()
        checked.append((method, path))
    assert len(checked) >= (20 if service == "operator" else 5), checked
