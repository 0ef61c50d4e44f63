"""Turn revert data into :class:`chain.exceptions.ContractError` with the custom error's name and arguments.

The decoder is built from ABIs: every ``error`` entry gives a selector (first four bytes of the
keccak of its signature) mapped to its name and argument types. Solidity's built-in
``Error(string)`` and ``Panic(uint256)`` are always known.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from eth_utils.abi import collapse_if_tuple
from hexbytes import HexBytes

from chain.exceptions import ContractError

_BUILTIN: dict[bytes, tuple[str, list[str], list[str]]] = {
    function_signature_to_4byte_selector("Error(string)"): ("Error", ["string"], ["reason"]),
    function_signature_to_4byte_selector("Panic(uint256)"): ("Panic", ["uint256"], ["code"]),
}


class ErrorDecoder:
    """Maps 4-byte selectors to custom errors, built from one or more ABIs."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]] = ()) -> None:
        self._errors = dict(_BUILTIN)
        for abi in abis:
            self.add_abi(abi)

    def add_abi(self, abi: list[dict[str, Any]]) -> None:
        for entry in abi:
            if entry.get("type") != "error":
                continue
            types = [collapse_if_tuple(i) for i in entry.get("inputs", [])]
            selector = function_signature_to_4byte_selector(f"{entry['name']}({','.join(types)})")
            self._errors[selector] = (
                entry["name"],
                types,
                [i.get("name", "") for i in entry.get("inputs", [])],
            )

    def name_of(self, selector: bytes | str) -> str | None:
        """The name of the error with this 4-byte ``selector`` (bytes or hex), if known."""
        raw = bytes(HexBytes(selector))[:4]
        entry = self._errors.get(raw)
        return entry[0] if entry else None

    def known(self, name: str) -> bool:
        return any(n == name for n, _, _ in self._errors.values())

    def decode(self, data: str | bytes | None, tx_hash: str | None = None) -> ContractError:
        """Decode revert ``data``; unknown selectors and empty data still give a ContractError."""
        raw = bytes(HexBytes(data)) if data else b""
        hexdata = "0x" + raw.hex()
        if len(raw) < 4:
            return ContractError("UnknownRevert", (), (), hexdata, tx_hash)
        entry = self._errors.get(raw[:4])
        if entry is None:
            return ContractError("UnknownError", (hexdata,), ("data",), hexdata, tx_hash)
        name, types, names = entry
        try:
            values = abi_decode(types, raw[4:])
        except Exception:  # malformed payload: keep the raw data rather than guessing
            return ContractError(name, (hexdata,), ("data",), hexdata, tx_hash)
        pairs = zip(types, values, strict=True)
        values = tuple(to_checksum_address(v) if t == "address" else v for t, v in pairs)
        return ContractError(name, values, tuple(names), hexdata, tx_hash)

    def encode_expected(self, name: str, *args: Any) -> str:
        """Selector + encoded ``args`` for error ``name`` (tests compare revert data with it)."""
        from eth_abi import encode as abi_encode

        for selector, (n, types, _) in self._errors.items():
            if n == name:
                return "0x" + (selector + abi_encode(types, list(args))).hex()
        raise KeyError(f"no error named {name} in the known ABIs")
