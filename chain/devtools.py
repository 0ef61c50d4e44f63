"""Test and demo helpers that work on every local backend: time travel and snapshots.

In-process chains use eth-tester directly; HTTP nodes (anvil, Hardhat) take the
``evm_*`` methods. Never used by the services: a production network has no time travel.
"""

from __future__ import annotations

from typing import Any

from web3 import Web3

from chain.backends import TesterProvider


def _tester(w3: Web3) -> Any:
    return w3.provider.ethereum_tester if isinstance(w3.provider, TesterProvider) else None


def _rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    response = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if "error" in response:
        raise RuntimeError(f"{method} failed: {response['error']}")
    return response.get("result")


def increase_time(w3: Web3, seconds: int) -> None:
    """Move the chain's clock forward and mine a block with the new time."""
    tester = _tester(w3)
    if tester is not None:
        tester.time_travel(tester.get_block_by_number("pending")["timestamp"] + seconds)
        tester.mine_blocks(1)
    else:
        _rpc(w3, "evm_increaseTime", [seconds])
        _rpc(w3, "evm_mine", [])


def snapshot(w3: Web3) -> Any:
    tester = _tester(w3)
    return tester.take_snapshot() if tester is not None else _rpc(w3, "evm_snapshot", [])


def revert(w3: Web3, snapshot_id: Any) -> None:
    tester = _tester(w3)
    if tester is not None:
        tester.revert_to_snapshot(snapshot_id)
    else:
        _rpc(w3, "evm_revert", [snapshot_id])
