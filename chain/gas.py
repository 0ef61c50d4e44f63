"""Gas limits known in advance for the calls whose cost is bounded by their rows.

``eth_estimateGas`` runs a call several times on the node (anvil searches for the limit): for a
200-row ``payChunk`` that was ~343 ms of a chunk whose whole bare batch (build, sign, send, mine)
takes ~146 ms. The functions below cost at most a fixed part plus a fixed amount per row, so their
limit is computed instead: measured worst cases (``tests/chain/test_gas_bounds.py`` checks every
bound against real transactions at the slowest path of each row) with a margin.

A bound that turns out too low is never silent: the transaction reverts, the sender reads it as
:class:`chain.exceptions.OutOfGas` (not as whatever the starved call reverted with), and that
function is estimated from then on (:class:`chain.sender.Transactor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import function_signature_to_4byte_selector
from web3.contract.contract import ContractFunction
from web3.utils.abi import abi_to_signature


@dataclass(frozen=True)
class RowBound:
    """``base + per_row * len(args[rows_arg])``."""

    base: int
    per_row: int
    rows_arg: int

    def limit(self, args: tuple[Any, ...]) -> int:
        return self.base + self.per_row * len(args[self.rows_arg])


# Measured on the cancun EVM, per row of a 200-row call at its costliest path. The limit must
# cover what a call needs while it runs, before its refunds: a payChunk row whose recipient is over
# its tier's balance cap (an exception with revert data, its debit written and refunded) uses
# 98,843 gas net but needs ~124,000 while it runs; a paid fresh wallet 54,348. pushClaims 69,174
# net (17-sibling proofs, ~900 more per sibling), addRows 2,152, registerBatch 51,752. A 200-row
# call must fit the node's block (anvil's default is 30,000,000 gas).
BOUNDS: dict[str, RowBound] = {
    "payChunk(bytes32,uint256,(address,uint96)[])": RowBound(150_000, 130_000, 2),
    "pushClaims(bytes32,(uint256,address,uint96,bytes32[])[])": RowBound(150_000, 110_000, 1),
    "addRows(bytes32,(address,uint96)[])": RowBound(150_000, 5_000, 1),
    # Per chunk (of up to MAX_ROWS rows): what a full addRows is bounded at.
    "addChunks(bytes32,(address,uint96)[][])": RowBound(150_000, 1_150_000, 1),
    "registerBatch((address,uint8,uint8,uint16,bytes32)[])": RowBound(100_000, 80_000, 0),
    # A card payment settles at ~39,000 gas net in a full batch; its costliest path (the token
    # refuses the merchant: the payment's writes done, then undone) stays far below 170,000. A full
    # batch (MAX_BATCH = 100) is then bounded at 17.15 M gas: the estimate of a 100-payment
    # settle was ~380 ms of an upload's ~500 ms on anvil.
    "settle((address,address,uint256,uint64,uint64,bytes)[])": RowBound(150_000, 170_000, 0),
}


def signature(fn: ContractFunction) -> str:
    """The canonical signature of ``fn`` (``name(types)``, structs as tuples)."""
    return abi_to_signature(fn.abi)


def bound(fn: ContractFunction) -> int | None:
    """The gas limit of ``fn`` from its rows, or None when it has no known bound."""
    known = BOUNDS.get(signature(fn))
    return None if known is None else known.limit(tuple(fn.args or ()))


def selectors() -> dict[bytes, str]:
    """The 4-byte selector of every bounded function, to its signature."""
    return {function_signature_to_4byte_selector(s): s for s in BOUNDS}
