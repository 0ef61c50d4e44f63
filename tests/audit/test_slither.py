"""`make audit` inside `make test`: Slither over every contract with the project's compiler. A new
High or Medium finding, or a Low/Informational one not explained in audit/slither-triage.md, fails."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chain.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_slither_finds_nothing_new_in_the_contracts() -> None:
    done = subprocess.run(
        [sys.executable, "audit/run_slither.py"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert "no High/Medium finding" in done.stdout
