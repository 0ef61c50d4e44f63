"""What the typed contract clients share: the constructor every one of them had written out again
(the web3 connection, a :class:`~chain.sender.Transactor`, the family's contract and the token),
the contract's address, and the EIP-712 domain of the contracts that check signed messages.

A client names its contract once (``CONTRACT``); the rest of it is its own calls and views.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from eth_abi import encode
from eth_hash.auto import keccak
from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract

from chain.manifest import Manifest
from chain.sender import Transactor

_DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
#: The ``EIP712Domain`` entry of an ``eth_signTypedData_v4`` message's ``types``.
DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


class ContractClient:
    """One family's contract and the token beside it; writes take the signing account explicitly.

    ``tx`` may be shared between clients (one nonce tracker per process); without one, the client
    makes its own that decodes the errors and events of every contract in the manifest.
    """

    #: The contract's name in the manifest.
    CONTRACT: ClassVar[str]

    def __init__(self, w3: Web3, manifest: Manifest, tx: Transactor | None = None) -> None:
        self.w3 = w3
        self.manifest = manifest
        self.tx = tx or Transactor(w3, manifest.error_decoder(), manifest.event_decoder(w3))
        self.contract: Contract = manifest.contract(w3, self.CONTRACT)
        self.cash: Contract = manifest.contract(w3, "DigitalCash")

    @property
    def address(self) -> str:
        """The contract's address (the spender a holder's or a payer's allowance names)."""
        return str(self.contract.address)


@dataclass(frozen=True)
class Eip712Domain:
    """An EIP-712 domain (name, version, chain id, verifying contract): binds a signature to one
    chain and one contract. A subclass names the domain (``NAME``, ``VERSION``) as the contract's
    ``EIP712`` constructor does."""

    NAME: ClassVar[str]
    VERSION: ClassVar[str]

    chain_id: int
    verifying_contract: str

    def separator(self) -> bytes:
        return keccak(
            encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [
                    keccak(_DOMAIN_TYPE.encode()),
                    keccak(self.NAME.encode()),
                    keccak(self.VERSION.encode()),
                    self.chain_id,
                    self.verifying_contract,
                ],
            )
        )

    def as_dict(self) -> dict[str, Any]:
        """The domain as wallets and ``eth_signTypedData_v4`` take it."""
        return {
            "name": self.NAME,
            "version": self.VERSION,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.verifying_contract),
        }
