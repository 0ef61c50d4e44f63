"""A pytest plugin for `make test-contracts`: at the end, what was checked, by contract family.

Rules are the behaviour tests under tests/contracts (one rule, one test, named for the behaviour);
invariants are the stateful property tests under tests/properties (each checks its family's
invariants after every step of many random sequences).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

FAMILY_OF_FILE = {
    "test_wallet_registry": "token",
    "test_digital_cash": "token",
    "test_cash_invariants": "token",
    "test_prepaid_escrow": "prepaid",
    "test_prepaid_invariants": "prepaid",
    "test_disbursement": "disburse",
    "test_disbursement_invariants": "disburse",
    "test_collective_fund": "collective",
    "test_collective_invariants": "collective",
    "test_voucher_programmes": "vouchers",
    "test_voucher_invariants": "vouchers",
    "test_hardwallet_settlement": "hardwallet",
    "test_quickpay": "hardwallet",
    "test_hardwallet_invariants": "hardwallet",
}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"rules": [0, 0], "invariants": [0, 0]})
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call" and outcome != "error":
                continue
            path = report.nodeid.split("::")[0]
            stem = path.rsplit("/", 1)[-1].removesuffix(".py")
            family = FAMILY_OF_FILE.get(stem, stem.removeprefix("test_"))
            kind = "invariants" if "/properties/" in path else "rules"
            counts[family][kind][0 if outcome == "passed" else 1] += 1
    tr = terminalreporter
    tr.section("checked, by contract family")
    tr.write_line(f"{'family':<12} {'rules':>14} {'invariant machines':>20}")
    for family in sorted(counts):
        rules, inv = counts[family]["rules"], counts[family]["invariants"]
        cell = lambda ok, bad: f"{ok} ok" + (f", {bad} FAILED" if bad else "")  # noqa: E731
        tr.write_line(f"{family:<12} {cell(*rules):>14} {cell(*inv):>20}")
