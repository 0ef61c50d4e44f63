"""One exception module for the chain layer, with a root class (as web3.py does).

A reverted transaction or call surfaces as :class:`ContractError` carrying the contract's custom
error name and its decoded arguments, e.g. ``WalletFrozen(wallet='0x...')``.
"""

from __future__ import annotations

from typing import Any


class ChainError(Exception):
    """Root of every error raised by the chain layer."""


class CompilationError(ChainError):
    """The Solidity compiler refused the sources; the message names file, line and reason."""


class CompilerNotFound(ChainError):
    """Neither a native solc of the pinned version nor the solc-js wrapper is usable."""


class ManifestError(ChainError):
    """A deployment manifest is missing, unreadable or belongs to another chain."""


class NodeUnavailable(ChainError):
    """The JSON-RPC node did not answer (down, refused, timed out)."""


class NodeRefused(ChainError):
    """The node refused a signed transaction (fees, nonce, gas, signature), and does not hold it:
    those bytes can never be mined. The message is the node's own text (for the log; tell callers
    its meaning, never the text, which may echo raw bytes and balances)."""


class TransactionTimeout(ChainError):
    """A sent transaction was not mined within the configured wait."""

    def __init__(self, tx_hash: str, waited_s: float) -> None:
        super().__init__(f"transaction {tx_hash} not mined after {waited_s:.1f}s")
        self.tx_hash = tx_hash


class ContractError(ChainError):
    """A contract reverted with a custom error (or a plain reason / panic).

    ``name`` is the Solidity error name (``"WalletFrozen"``), ``args`` its decoded arguments in
    declaration order, ``arg_names`` their names; ``tx_hash`` is set when the revert happened in a
    mined transaction rather than during estimation.
    """

    def __init__(
        self,
        name: str,
        args: tuple[Any, ...] = (),
        arg_names: tuple[str, ...] = (),
        data: str = "0x",
        tx_hash: str | None = None,
    ) -> None:
        self.name = name
        self.args_tuple = tuple(args)
        self.arg_names = tuple(arg_names)
        self.data = data
        self.tx_hash = tx_hash
        super().__init__(self.signature)

    @property
    def signature(self) -> str:
        """Human-readable form, e.g. ``WalletFrozen(wallet=0xAbc...)``."""
        parts = [
            f"{n}={_fmt(v)}" if n else _fmt(v)
            for n, v in zip(self.arg_names or ("",) * len(self.args_tuple), self.args_tuple, strict=False)
        ]
        return f"{self.name}({', '.join(parts)})"

    @property
    def args_dict(self) -> dict[str, Any]:
        """Arguments by name (positional names ``arg0``... when the ABI does not name them)."""
        names = self.arg_names or tuple(f"arg{i}" for i in range(len(self.args_tuple)))
        return dict(zip(names, self.args_tuple, strict=False))


def _fmt(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


class OutOfGas(ContractError):
    """A mined transaction ran out of its gas limit (it would have gone through with more gas).

    A ContractError so that every caller that maps refusals maps this one too; it is never a
    contract's own answer, and the limit of that function is estimated from then on.
    """

    def __init__(self, gas: int, tx_hash: str | None = None) -> None:
        super().__init__("OutOfGas", (gas,), ("gas",), "0x", tx_hash)
