"""Signatures in both forms eth-account users hold: 65 bytes (r || s || v) and EIP-2098 compact
(64 bytes), which the API expands before the contracts (OpenZeppelin 5, 65 bytes only) see it."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from pydantic import TypeAdapter, ValidationError

from services.common.schemas import EcdsaSignature

SIGNATURE = TypeAdapter(EcdsaSignature)


def compact(signature: bytes) -> str:
    """EIP-2098: r || (yParity << 255 | s), from an eth-account signature (r || s || v)."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    y_parity = v - 27 if v >= 27 else v
    return "0x" + (r + ((y_parity << 255) | s).to_bytes(32, "big")).hex()


def test_compact_eth_account_signatures_are_expanded_to_what_eth_account_made() -> None:
    account = Account.from_key(b"\x07" * 32)
    parities = set()
    for i in range(40):  # until both parities (v 27 and 28) were seen
        message = encode_defunct(text=f"bill {i}")
        signed = account.sign_message(message)
        full = bytes(signed.signature)
        parities.add(full[64])
        expanded = SIGNATURE.validate_python(compact(full))
        assert expanded == "0x" + full.hex()
        assert Account.recover_message(message, signature=bytes.fromhex(expanded[2:])) == account.address
        if parities == {27, 28}:
            break
    assert parities == {27, 28}


def test_a_65_byte_signature_passes_unchanged_and_other_lengths_are_refused() -> None:
    full = "0x" + bytes(Account.from_key(b"\x07" * 32).sign_message(encode_defunct(text="x")).signature).hex()
    assert SIGNATURE.validate_python(full) == full
    for bad in ("0x" + "11" * 63, "0x" + "11" * 66, "0x" + "zz" * 65):
        with pytest.raises(ValidationError):
            SIGNATURE.validate_python(bad)
