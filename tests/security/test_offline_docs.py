"""``/docs`` works offline on both services (issue 21): the page names no other host, Swagger UI's
files are served by the service itself from the pinned ``swagger-ui-dist``, and in a real
headless Chromium that may reach nothing but the service, the page renders and its Authorize
button sets the API key for a call. The published schema carries the API-key scheme, the
required ``Idempotency-Key``, readable operation ids and examples of the main request bodies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from services.common.guard import KEYLESS_ROUTES
from tests.gateway.conftest import Gateway
from tests.services.conftest import Api
from tests.services.test_dashboard import needs_chromium

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


@pytest.fixture(params=["operator", "gateway"])
def service(request: pytest.FixtureRequest) -> tuple[str, httpx.Client, httpx.Client]:
    """(base URL, an anonymous client, an operator's client) of each service."""
    if request.param == "operator":
        api: Api = request.getfixturevalue("api")
        return api.url, api.clients["anonymous"], api.operator
    gw: Gateway = request.getfixturevalue("gateway")
    return gw.url, httpx.Client(base_url=gw.url, timeout=60), gw.clients["operator"]


def _urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:(]\s*["']([^"']+)["']""", html)


def test_docs_name_no_other_host_and_its_files_are_served(
    service: tuple[str, httpx.Client, httpx.Client],
) -> None:
    _, anonymous, _ = service
    r = anonymous.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = _urls(r.text)
    assert len(urls) >= 4, urls  # the script, the stylesheet, the favicon, the schema
    for u in urls:
        assert not urlparse(u).netloc, f"/docs names another host: {u}"
    assert "cdn" not in r.text.lower()
    for name, media_type in ASSETS.items():
        assert f"/docs/static/{name}" in r.text, name
        asset = anonymous.get(f"/docs/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(media_type), name
    assert len(anonymous.get("/docs/static/swagger-ui-bundle.js").content) > 500_000  # the real bundle
    for other in ("package.json", "index.html", "..%2F..%2Fpyproject.toml", "swagger-ui-bundle.js.map"):
        r = anonymous.get(f"/docs/static/{other}")
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json"), (
            other
        )
    assert anonymous.get("/redoc").status_code == 404  # ReDoc loads its script and fonts from CDNs


def test_the_schema_has_the_key_scheme_idempotency_ids_and_examples(
    service: tuple[str, httpx.Client, httpx.Client],
) -> None:
    _, anonymous, _ = service
    schema = anonymous.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schema["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    ids = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            ids.append(op["operationId"])
            assert re.fullmatch(r"[a-z][a-z0-9_]*", op["operationId"]), op["operationId"]
            if path in KEYLESS_ROUTES:  # the holder's sign-in: how a holder gets a key
                assert "security" not in op, (method, path)
            elif path.startswith("/v1/"):
                assert op.get("security") == [{"ApiKey": []}], (method, path)
    assert len(ids) == len(set(ids))
    paths = schema["paths"]
    if "/v1/wallets" in paths:  # the operator
        assert paths["/v1/wallets"]["get"]["operationId"] == "list_wallets"
        assert paths["/v1/wallets"]["post"]["operationId"] == "create_wallet"
        cancels = {paths[p]["post"]["operationId"] for p in paths if p.endswith("/cancel")}
        assert {"disbursements_cancel", "prepaid_cancel", "collectives_cancel"} <= cancels
        idem = {p["name"]: p for p in paths["/v1/wallets"]["post"]["parameters"]}["idempotency-key"]
        assert idem["required"] is True and idem["schema"]["maxLength"] == 200
        code = {p["name"]: p for p in paths["/v1/payment-codes"]["post"]["parameters"]}
        assert code["idempotency-key"]["required"] is False  # accepted there, not required
        bodies = [
            "/v1/wallets",
            "/v1/disbursements",
            "/v1/voucher-programs",
            "/v1/payment-codes",
            "/v1/issuance",
        ]
    else:
        idem = {p["name"]: p for p in paths["/v1/cards"]["post"]["parameters"]}["idempotency-key"]
        assert idem["required"] is True
        bodies = ["/v1/cards", "/v1/terminals", "/v1/mandates"]
    components = schema["components"]["schemas"]
    for path in bodies:
        ref = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        model = components[ref.rsplit("/", 1)[-1]]
        assert model.get("examples"), f"{path}: no example body"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.services.test_dashboard import CHROMIUM

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


@needs_chromium
def test_docs_render_offline_and_authorize_sets_the_key(
    service: tuple[str, httpx.Client, httpx.Client], chromium: Any
) -> None:
    url, _, operator = service
    key = str(operator.headers["X-API-Key"])
    tag, operation, path = (
        ("wallets", "list_wallets", "/v1/wallets")
        if "/v1/wallets" in operator.get("/openapi.json").json()["paths"]
        else ("terminals", "list_terminals", "/v1/terminals")
    )
    context = chromium.new_context(viewport={"width": 1280, "height": 1600})
    page = context.new_page()
    page.set_default_timeout(20_000)
    elsewhere: list[str] = []

    def only_the_service(route: Any) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:  # offline: nothing else answers
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_service)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sent: list[dict[str, str]] = []
    page.on("request", lambda req: sent.append(req.headers) if req.url.split("?")[0].endswith(path) else None)
    try:
        page.goto(f"{url}/docs")
        page.wait_for_selector(".swagger-ui .information-container .title")
        page.click(".swagger-ui .auth-wrapper .authorize")
        page.fill(".swagger-ui .dialog-ux input[type=text], .swagger-ui .dialog-ux input[type=password]", key)
        page.click(".swagger-ui .dialog-ux .auth-btn-wrapper .authorize")
        page.click(".swagger-ui .dialog-ux .btn-done")
        block = page.locator(f"#operations-{tag}-{operation}")
        block.locator(".opblock-summary").first.click()
        block.locator(".try-out__btn").click()
        block.locator(".execute").click()
        status = block.locator(".live-responses-table tbody .response-col_status").first
        status.wait_for()
        assert status.inner_text().strip().startswith("200"), status.inner_text()
        assert sent and sent[-1].get("x-api-key") == key
        assert elsewhere == [] and errors == [], (elsewhere, errors)
    finally:
        context.close()


def test_every_documented_example_body_is_valid() -> None:
    """An example that its own model refuses would teach a person a 422."""
    from pydantic import BaseModel

    from services.gateway.families import MODULES as GATEWAY_MODULES
    from services.gateway.routes import ROUTERS as GATEWAY
    from services.operator.families import MODULES as OPERATOR_MODULES
    from services.operator.routes import ROUTERS as OPERATOR

    families = [r for m in (*OPERATOR_MODULES, *GATEWAY_MODULES) for r in m.routers]
    checked = 0
    for router in (*OPERATOR, *GATEWAY, *families):
        for route in router.routes:
            for param in getattr(getattr(route, "dependant", None), "body_params", []):
                body = param.field_info.annotation
                if isinstance(body, type) and issubclass(body, BaseModel):
                    for ex in body.model_json_schema().get("examples", []):
                        body.model_validate(ex)
                        checked += 1
    assert checked >= 12
