"""Merkle trees built exactly as OpenZeppelin's ``StandardMerkleTree`` (``@openzeppelin/merkle-tree``).

Why the standard: a claimant, auditor or explorer rebuilds a campaign's root, loads its published
tree and takes any proof with the library they already use, instead of learning ours. With the
library's default options:

- a leaf is ``keccak256(keccak256(abi.encode(value)))`` for the tree's ``leafEncoding`` (the
  double-hashed leaf the contracts' ``leafHash`` computes);
- leaf hashes are sorted (ascending bytes) before the tree is built, so the root does not depend on
  the order of the values;
- the tree is one flat array of ``2n - 1`` nodes, root first: leaf ``i`` (in sorted order) sits at
  ``len - 1 - i`` and node ``k`` hashes its children ``2k + 1`` and ``2k + 2`` as a sorted pair,
  which is what ``MerkleProof.verify`` recomputes on chain.

``dump()`` is the library's ``standard-v1`` JSON, so ``StandardMerkleTree.load(dump)`` in
JavaScript gives the same root and proofs (tests/chain/test_merkle_standard.py checks it with the
npm package itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import encode
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

FORMAT = "standard-v1"


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def standard_leaf(leaf_encoding: Sequence[str], value: Sequence[Any]) -> bytes:
    """The library's ``standardLeafHash``: keccak256(keccak256(abi.encode(value)))."""
    return keccak(keccak(encode(list(leaf_encoding), list(value))))


def _json_value(kind: str, item: Any) -> Any:
    """A value as the library's dumps carry it: numbers as decimal strings (JSON has no uint256),
    bytes as 0x hex, addresses as given (ours are checksummed already; bytes get checksummed)."""
    if kind == "address":
        return item if isinstance(item, str) else to_checksum_address(item)
    if kind.startswith(("uint", "int")):
        return str(int(item))
    if isinstance(item, bytes | bytearray):
        return "0x" + bytes(item).hex()
    return item


class MerkleTree:
    """A ``StandardMerkleTree`` over ``values`` (each a tuple of ``leaf_encoding``).

    ``proof(i)`` is value i's proof (i counts the values as given, not the sorted leaves), the
    siblings from the leaf up, as the library's ``getProof(i)`` returns them.
    """

    def __init__(self, values: Sequence[Sequence[Any]], leaf_encoding: Sequence[str]) -> None:
        if not values:
            raise ValueError("a Merkle tree needs at least one leaf")
        self.leaf_encoding = list(leaf_encoding)
        self.values = [tuple(v) for v in values]
        hashes = [standard_leaf(self.leaf_encoding, v) for v in self.values]
        order = sorted(range(len(hashes)), key=lambda i: hashes[i])
        size = 2 * len(hashes) - 1
        self.tree: list[bytes] = [b""] * size
        self.tree_index = [0] * len(hashes)
        for position, value_index in enumerate(order):
            self.tree_index[value_index] = size - 1 - position
            self.tree[size - 1 - position] = hashes[value_index]
        for k in range(size - 1 - len(hashes), -1, -1):
            self.tree[k] = _pair(self.tree[2 * k + 1], self.tree[2 * k + 2])

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def leaf(self, index: int) -> bytes:
        """Value ``index``'s leaf hash."""
        return self.tree[self.tree_index[index]]

    def proof(self, index: int) -> list[bytes]:
        if not 0 <= index < len(self.values):
            raise IndexError(f"no leaf {index}")
        k = self.tree_index[index]
        siblings = []
        while k > 0:
            siblings.append(self.tree[k + 1 if k % 2 else k - 1])
            k = (k - 1) // 2
        return siblings

    def dump(self) -> dict[str, Any]:
        """The library's ``dump()``: ``StandardMerkleTree.load`` reads it back (root, every proof)."""
        return {
            "format": FORMAT,
            "leafEncoding": self.leaf_encoding,
            "tree": ["0x" + node.hex() for node in self.tree],
            "values": [
                {
                    "value": [_json_value(t, x) for t, x in zip(self.leaf_encoding, v, strict=True)],
                    "treeIndex": self.tree_index[i],
                }
                for i, v in enumerate(self.values)
            ],
        }


def verify(proof: list[bytes], root: bytes, leaf: bytes) -> bool:
    """``MerkleProof.verify``: fold the proof over the leaf in sorted pairs."""
    node = leaf
    for sibling in proof:
        node = _pair(node, sibling)
    return node == root
