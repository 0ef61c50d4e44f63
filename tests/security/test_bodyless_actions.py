"""Actions that need nothing in their body work without one (issue 21): before, ``execute`` and a
merchant's refund page answered ``422 body: Field required`` unless the client sent ``{}``. And
an action that takes no body at all refuses one that says something (red team, LOW: the admin
key rotation accepted ``{"x": "\u0000"}`` and rotated the key): 422 ``unexpected-body``, nothing
changed; no body, an empty one and ``{}`` are accepted (services/common/deps.py).

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
        for extra in (
            {},
            {"content": b"", "headers": {"Content-Type": "application/json"}},
            {"content": b" { } ", "headers": {"Content-Type": "application/json"}},
        ):
            headers = {"Idempotency-Key": str(uuid.uuid4()), **extra.get("headers", {})}
            r = world.clients[role].request(method, url, headers=headers, content=extra.get("content"))
            assert not _refused_for_the_body(r), f"{method} {path} as {role}: {r.text[:300]}"
            assert r.status_code < 500, f"{method} {path} as {role}: {r.status_code} {r.text[:300]}"
            if (method, path) in world.after and r.status_code < 400:
                world.after[(method, path)]()
        checked.append((method, path))
    assert len(checked) >= (20 if service == "operator" else 5), checked


def _no_body(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """The actions whose operation declares no request body at all."""
    return [
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in ("post", "delete", "put", "patch") and "requestBody" not in op
    ]


# What a body-less action refused: JSON that says something, and what is not JSON at all.
_SAYS_SOMETHING = [
    (b'{"x": "\\u0000"}', "application/json"),
    (b'{"reason": "because"}', "application/json"),
    (b"[]", "application/json"),
    (b"null", "application/json"),
    (b"reason=because", "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize("service", ["operator", "gateway"])
def test_every_action_without_a_body_refuses_one_that_says_something(
    request: pytest.FixtureRequest, service: str
) -> None:
    world: World = request.getfixturevalue(f"{service}_world")
    routes = _no_body(world.app.openapi())
    assert ("POST", "/v1/api-keys/{key_id}/rotate") in routes or service == "gateway"
    assert ("POST", "/v1/cards/{card}/report-lost") in routes or service == "operator"
    for method, path in routes:
        rule = MATRICES[service][(method, path)]
        role = sorted(rule.allow)[0] if rule.allow else sorted(rule.own)[0]
        url = path.format(**{**world.params, **world.overrides.get((method, path), {})})
        for content, kind in _SAYS_SOMETHING:
            before = world.fingerprint()
            headers = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": kind}
            r = world.clients[role].request(method, url, headers=headers, content=content)
            assert r.status_code == 422, f"{method} {path} as {role} with {content!r}: {r.text[:300]}"
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["type"] == "urn:xcpay:problem:unexpected-body", r.text
            assert world.fingerprint() == before, f"{method} {path} changed something"
    assert len(routes) >= (30 if service == "operator" else 9), routes


def test_the_admin_key_rotation_refuses_a_body_and_keeps_the_key(request: pytest.FixtureRequest) -> None:
    """The red team's case, on a real key: refused in English and Chinese, the key still works."""
    world: World = request.getfixturevalue("operator_world")
    admin = world.clients["admin"]
    made = admin.post("/v1/api-keys", json={"role": "auditor", "label": "rotated?"})
    assert made.status_code == 201, made.text
    key_id, key = made.json()["id"], made.json()["key"]
    url = f"/v1/api-keys/{key_id}/rotate"
    for lang, title in (("en", "This action takes no request body"), ("zh-CN", "此操作不接受请求体")):
        r = admin.post(
            url,
            content=b'{"x":"\\u0000"}',
            headers={"Content-Type": "application/json", "Accept-Language": lang, "Idempotency-Key": "r1"},
        )
        assert r.status_code == 422, r.text
        assert (r.json()["type"], r.json()["title"]) == ("urn:xcpay:problem:unexpected-body", title)
    still = httpx.get(str(admin.base_url.join("/v1/audit/events")), headers={"X-API-Key": key})
    assert still.status_code == 200, still.text
