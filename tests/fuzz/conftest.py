"""The running services of tests/services and tests/gateway, reused: the same uvicorn servers on a
free port, an in-process chain and a fresh database per module.

`make test` fuzzes on SQLite only: a second backend would double the fuzz's cost there (about a
minute per backend), and the suites of tests/services and tests/gateway already run every route on
PostgreSQL. ``XCPAY_FUZZ=long`` (``make audit``) fuzzes every backend present with many more
examples; that is where PostgreSQL's own refusals showed (a NUL character in a text, an id beyond
a 32-bit INTEGER column), which SQLite accepts or refuses differently.
"""

from __future__ import annotations

import pytest

from tests.databases import BACKENDS
from tests.fuzz.harness import LONG, MAX_EXAMPLES, RUNS
from tests.gateway.conftest import gateway
from tests.services.conftest import api

__all__ = ["api", "db_kind", "gateway"]


@pytest.fixture(scope="module", params=BACKENDS if LONG else ["sqlite"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How much was fuzzed: operations and requests per service."""
    for title in sorted({t for t, _ in RUNS}):
        ops = {op: n for (t, op), n in RUNS.items() if t == title}
        terminalreporter.write_line(
            f"schema fuzz, {title}: {len(ops)} operations, {sum(ops.values())} requests "
            f"(at most {MAX_EXAMPLES} examples per operation, plus shrinking)"
        )
