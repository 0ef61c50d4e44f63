"""The load test (scripts/load_test.py) in small: a few concurrent clients mixing reads, issuance,
voucher spends and offline-payment uploads, with idempotency keys and deliberate retries. The
script rebuilds every balance from the answers it got and compares it with the chain, and asks the
auditor's reconciliation; it exits 1 on any mismatch, any 5xx other than 503, or a replay answered
differently. No figure here is timed: `make test` checks correctness under concurrency only; the
README quotes the full run (50 clients, 60 s)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from chain.paths import PROJECT_ROOT
from tests.databases import BACKENDS, postgres_admin_url

pytestmark = pytest.mark.slow


# `make test` runs a short version on SQLite (4 clients, 5 s); `make audit` the longer one (8 clients,
# 15 s) on every database (marked `long`); `make bench` the full one (50 clients, 60 s).
CASES = [pytest.param("sqlite", 4, 5, id="short-sqlite")] + [
    pytest.param(kind, 8, 15, id=f"long-{kind}", marks=pytest.mark.long) for kind in BACKENDS
]


@pytest.mark.parametrize(("db_kind", "clients", "seconds"), CASES)
def test_concurrent_clients_leave_every_balance_reconciled(
    db_kind: str, clients: int, seconds: int, tmp_path: Path
) -> None:
    out = tmp_path / "load.json"
    cmd = [sys.executable, "scripts/load_test.py", "--clients", str(clients), "--duration", str(seconds)]
    cmd += ["--baseline", "0"]
    cmd += ["--out", str(out)]
    if db_kind == "postgresql":
        cmd += ["--database", str(postgres_admin_url())]
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    result = json.loads(out.read_text())
    assert result["ok"] and result["reconciliation"] == "clean"
    assert result["balance_mismatches"] == [] and result["server_errors"] == []
    loaded = result["phases"][f"{clients} clients"]
    for action in ("read", "issue", "spend", "offline"):  # every kind of request was exercised
        assert loaded[action]["answers"] > 0, loaded
    answered_ok = sum(n for status, n in loaded["all"]["outcomes"].items() if status.startswith("2"))
    assert answered_ok > 0, loaded["all"]
    # The CPU each process spent per answer (Linux /proc): the stack's own processes were found.
    cpu = result["cpu_ms_per_answer"][f"{clients} clients"]
    assert {"load client", "operator", "gateway", "anvil"} <= set(cpu), cpu
    assert all(ms >= 0 for ms in cpu.values()) and cpu["operator"] > 0, cpu


def test_the_mix_names_known_actions_only() -> None:
    sys.path.insert(0, str(PROJECT_ROOT))
    from scripts.load_test import parse_mix

    assert parse_mix("read=1") == {"read": 1.0}
    assert parse_mix("read=0.5,offline") == {"read": 0.5, "offline": 1.0}
    with pytest.raises(argparse.ArgumentTypeError, match="unknown action"):
        parse_mix("reads=1")


def test_a_run_of_one_kind_of_request_reports_no_goal_rows() -> None:
    """The goals are set for the mixed load: a run with ``--mix read=1`` measures the cost of
    reads and must not write rows that say the mixed goals were met or missed."""
    from scripts.load_test import MIX, parse_mix, targets

    loaded = {"per_s": 200.0, "p99_ms": 100.0, "outcomes": {"200": 10}}
    phases = {"8 clients": {"all": loaded}, "1 client": {"all": loaded}}
    assert targets(phases, 8, [], {"verdict": "clean"}, parse_mix("read=1")) == []
    assert targets(phases, 8, [], {"verdict": "clean", "discrepancies": []}, MIX) != []
