"""The security suites run the services' own fixtures (tests/services' ``api``, tests/gateway's
``gateway``: uvicorn on a free port, an in-process chain, a fresh database), once for the package
rather than once per module: the access matrix and the secrets flows both only add keys and
records, and two deployments fewer keep the package inside its time budget.

They run on SQLite only (the fixtures' ``db_kind`` given as "sqlite"): every guard and every
secret checked here lives in Python above the database layer (the same queries run on PostgreSQL
in tests/services and tests/gateway), and a SQLite file is what test_secrets.py scans byte by
byte for keys at rest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chain.compiler import CompileResult
from tests.gateway import conftest as gateway_fixtures
from tests.gateway.conftest import Gateway
from tests.services import conftest as services_fixtures
from tests.services.conftest import Api

DB_KIND = "sqlite"


@pytest.fixture(scope="package")
def api(compiled: CompileResult, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from services_fixtures.api.__wrapped__(DB_KIND, compiled, tmp_path_factory)


@pytest.fixture(scope="package")
def gateway(compiled: CompileResult, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from gateway_fixtures.gateway.__wrapped__(DB_KIND, compiled, tmp_path_factory)
