"""The guard looks the API key up before the app runs, outside the app's exception handlers: a
database failure there must answer like the handlers (503 ``database-unavailable`` with
``Retry-After`` for an outage, a problem+json 500 for a bug), never a bare 500 or a dropped
connection. Seen under a PostgreSQL whose backends were killed (tests/e2e/test_faults.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from services.common import guard
from services.common.keys import authenticate
from services.common.models import ApiKey
from services.common.settings import Settings
from tests.processes import free_port


def _app(lookup: Callable[[str], ApiKey | None]) -> TestClient:
    app = FastAPI()

    @app.get("/v1/thing")
    def thing() -> dict[str, str]:
        return {"ok": "yes"}

    settings = Settings(database_url="sqlite://", manifest=Path("m.json"), rpc_url="in-process")
    guard.install(app, settings, lookup)
    return TestClient(app, raise_server_exceptions=False)


def _lookup_in(url: str) -> Callable[[str], ApiKey | None]:
    engine = create_engine(url)

    def lookup(presented: str) -> ApiKey | None:
        with Session(engine) as s:
            return authenticate(s, presented)

    return lookup


def test_a_database_server_that_is_gone_is_a_503_with_retry_after() -> None:
    # A real PostgreSQL driver connecting to a port where nothing listens: the outage the
    # handlers call database-unavailable.
    pytest.importorskip("psycopg")
    client = _app(_lookup_in(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"))
    r = client.get("/v1/thing", headers={"X-API-Key": "k" * 40})
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"] == "1"
    assert r.json()["type"].endswith(":database-unavailable")


def test_a_database_bug_during_the_key_lookup_is_a_problem_500(tmp_path: Path) -> None:
    # A database without the api_keys table: our bug, not an outage, so no "retry later".
    client = _app(_lookup_in(f"sqlite:///{tmp_path / 'empty.db'}"))
    r = client.get("/v1/thing", headers={"X-API-Key": "k" * 40})
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith(":internal-error")
    assert "retry-after" not in r.headers
