"""Reading a transaction someone else signed (a self-custody wallet), before relaying it.

The service never changes such a transaction: it reads who signed it, where it goes, what it
calls and on which chain, decides whether to relay it, and then sends the very same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import rlp
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

from chain.exceptions import ChainError


class _LegacyTransaction(rlp.Serializable):
    """A signed legacy (pre-EIP-2718) transaction's RLP fields, as signed (eth-account has the
    same sedes only in a private module)."""

    fields = (
        ("nonce", rlp.sedes.big_endian_int),
        ("gasPrice", rlp.sedes.big_endian_int),
        ("gas", rlp.sedes.big_endian_int),
        ("to", rlp.sedes.Binary.fixed_length(20, allow_empty=True)),
        ("value", rlp.sedes.big_endian_int),
        ("data", rlp.sedes.binary),
        ("v", rlp.sedes.big_endian_int),
        ("r", rlp.sedes.big_endian_int),
        ("s", rlp.sedes.big_endian_int),
    )


class InvalidSignedTransaction(ChainError):
    """The bytes are not a signed transaction this service can read."""


@dataclass(frozen=True)
class SignedTx:
    raw: bytes
    hash: str
    sender: str
    to: str | None
    data: bytes
    value: int
    nonce: int
    chain_id: int | None  # None: a pre-EIP-155 legacy transaction, valid on every chain
    gas: int
    fees: dict[str, int]  # gasPrice, or maxFeePerGas and maxPriorityFeePerGas

    def as_call(self) -> dict[str, object]:
        """The transaction as ``eth_call`` parameters: the same sender, call, gas and fees."""
        return {
            "from": self.sender,
            "to": self.to,
            "data": self.data,
            "value": self.value,
            "gas": self.gas,
            **self.fees,
        }


def decode_signed(raw: bytes) -> SignedTx:
    """Decode ``raw`` (typed EIP-2718 or legacy) and recover its signer."""
    if not raw:
        raise InvalidSignedTransaction("empty transaction")
    chain_id: int | None
    try:
        if raw[0] < 0x7F:  # an EIP-2718 type byte
            fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
            chain_id = int(fields["chainId"])
        else:
            fields = rlp.decode(raw, _LegacyTransaction).as_dict()
            v = int(fields["v"])
            chain_id = (v - 35) // 2 if v >= 35 else None
        sender = Account.recover_transaction(raw)
    except Exception as exc:  # rlp, signature and type errors all mean "not readable"
        raise InvalidSignedTransaction(f"not a signed transaction: {exc}") from None
    to = bytes(fields.get("to") or b"")
    return SignedTx(
        raw=raw,
        hash="0x" + keccak(raw).hex(),
        sender=to_checksum_address(sender),
        to=to_checksum_address(to) if to else None,
        data=bytes(fields.get("data") or b""),
        value=int(fields.get("value", 0)),
        nonce=int(fields["nonce"]),
        chain_id=chain_id,
        gas=int(fields["gas"]),
        fees={k: int(fields[k]) for k in ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas") if k in fields},
    )
