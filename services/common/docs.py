"""``/docs`` that works offline, and an OpenAPI schema a person can use, for both services.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN, so it was blank on a machine without
the internet (the pilot's districts). Here Swagger UI's assets come from ``swagger-ui-dist``,
pinned in package.json and served from ``node_modules`` like the dashboard's Chart.js; the page
names no other host. ReDoc (which loads its script and fonts from CDNs too) is not served.

The schema gets, in one ``app.openapi`` wrapper:

- an API-key security scheme (``X-API-Key``) on every operation that takes the key, so that
  Swagger UI's Authorize button sets the header for every call;
- the ``Idempotency-Key`` header marked required on the operations that refuse a request without
  it (those depending on :func:`services.common.deps.get_idempotency_key`), optional elsewhere;
- readable ``operationId``s: the route function's name (``list_wallets``), prefixed with its
  tag where two routes share a name (``disbursements_cancel``, ``prepaid_cancel``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from enum import Enum
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRoute

from chain.paths import NODE_MODULES
from services.common.deps import get_idempotency_key
from services.common.problems import Problem

SWAGGER_UI = NODE_MODULES / "swagger-ui-dist"
ASSETS_PATH = "/docs/static"
# The files the page loads, and nothing else of the package.
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
SECURITY_SCHEME = "ApiKey"
IDEMPOTENCY_DOC = (
    "Required: the same key with the same body answers the first outcome and moves nothing again; "
    "with another body, 409 idempotency-key-reused. At most 200 characters."
)


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


def _routes(app: FastAPI) -> Iterator[APIRoute]:
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield route
        elif hasattr(route, "effective_route_contexts"):  # FastAPI 0.16x: included routers, lazily
            for ctx in route.effective_route_contexts():
                original = ctx.original_route
                if isinstance(original, APIRoute) and original.include_in_schema:
                    yield original


def _improve(app: FastAPI, schema: dict[str, Any]) -> None:
    """Security scheme, required Idempotency-Key and readable operation ids, in place."""
    routes = list(_routes(app))
    names = Counter(r.name for r in routes for _ in r.methods or ())
    by_operation: dict[tuple[str, str], APIRoute] = {
        (m.lower(), r.path_format): r for r in routes for m in r.methods or ()
    }
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key of the role the operation admits (POST /v1/api-keys, as the admin).",
    }
    seen: set[str] = set()
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            route = by_operation.get((method, path))
            if route is None:
                continue
            first_tag = route.tags[0] if route.tags else "api"
            tag_name = first_tag.value if isinstance(first_tag, Enum) else first_tag
            tag = str(tag_name).replace(" ", "_").replace("-", "_")
            operation_id = route.name if names[route.name] == 1 else f"{tag}_{route.name}"
            assert operation_id not in seen, f"two operations named {operation_id}"
            seen.add(operation_id)
            operation["operationId"] = operation_id
            needs_idempotency = any(d.call is get_idempotency_key for d in _dependencies(route.dependant))
            for param in operation.get("parameters", []):
                if param.get("in") != "header":
                    continue
                name = str(param.get("name", "")).lower()
                if name == "x-api-key":
                    operation["security"] = [{SECURITY_SCHEME: []}]
                    param["description"] = "or set it once with Authorize (the ApiKey scheme)"
                elif name == "idempotency-key" and needs_idempotency:
                    param["required"] = True
                    param["description"] = IDEMPOTENCY_DOC
                    param["schema"] = {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 200,
                        "title": "Idempotency-Key",
                        "examples": ["payroll-2026-05-run-1"],
                    }


def install(app: FastAPI) -> None:
    """Serve ``/docs`` from local assets and improve the schema (create the app with
    ``docs_url=None, redoc_url=None``; call before the routes are first served)."""
    generate = app.openapi
    done: list[int] = []

    def openapi() -> dict[str, Any]:
        schema = generate()
        if not (done and done[-1] == id(schema)):
            _improve(app, schema)
            done[:] = [id(schema)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} – API docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(ASSETS_PATH + "/{asset}", include_in_schema=False)
    def asset(asset: str) -> FileResponse:
        media_type = ASSETS.get(asset)
        path = SWAGGER_UI / asset
        if media_type is None or not path.is_file():
            raise Problem(404, "not-found", "No such file", asset)
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})
