"""The in-process chain estimates gas with one run, not py-evm's binary search (about 14 runs).

py-evm's ``Chain.__init__`` installs binary search on the chain *instance* when its class has no
estimator, so an estimator set only on the class was never used by a fresh process's chain (it
appeared after the first snapshot revert, which builds a new chain object).
"""

from __future__ import annotations

from typing import Any

import pytest

from chain import backends
from chain.accounts import dev_account


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A fresh process's situation (no estimator on the class yet), the one-run estimator counted."""
    calls: list[int] = []
    one_run = backends._estimate_in_one_run

    def counting(state: Any, transaction: Any) -> int:
        calls.append(1)
        return one_run(state, transaction)

    chain_class = type(backends.new_tester().backend.chain)
    monkeypatch.setattr(chain_class, "gas_estimator", None)
    monkeypatch.setattr(backends, "_estimate_in_one_run", counting)
    return calls


def test_a_new_chain_estimates_with_one_run_from_its_first_estimate(counted: list[int]) -> None:
    w3 = backends.in_process()
    gas = w3.eth.estimate_gas({"from": dev_account(0).address, "to": dev_account(1).address, "value": 1})
    assert gas >= 21_000
    assert len(counted) == 1


def test_the_one_run_estimator_stays_after_a_snapshot_revert(counted: list[int]) -> None:
    tester = backends.new_tester()
    w3 = backends.in_process(tester)
    tester.revert_to_snapshot(tester.take_snapshot())  # builds a new py-evm chain object
    w3.eth.estimate_gas({"from": dev_account(0).address, "to": dev_account(1).address, "value": 1})
    assert len(counted) == 1
