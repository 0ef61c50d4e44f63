"""Merkle trees that OpenZeppelin's ``MerkleProof`` verifies (sorted-pair keccak, no padding).

Leaves are given already hashed. Each level pairs neighbours; an odd last node moves up
unchanged. A proof is the list of siblings from the leaf up, so ``MerkleProof.verify`` (which
hashes each pair in sorted order) recomputes the root.
"""

from __future__ import annotations

from eth_hash.auto import keccak


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


class MerkleTree:
    """A tree over ``leaves`` (32-byte hashes) in the given order; ``proof(i)`` is leaf i's proof."""

    def __init__(self, leaves: list[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            level = self.levels[-1]
            up = [_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                up.append(level[-1])
            self.levels.append(up)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def proof(self, index: int) -> list[bytes]:
        if not 0 <= index < len(self.levels[0]):
            raise IndexError(f"no leaf {index}")
        siblings = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                siblings.append(level[sibling])
            index //= 2
        return siblings


def verify(proof: list[bytes], root: bytes, leaf: bytes) -> bool:
    node = leaf
    for sibling in proof:
        node = _pair(node, sibling)
    return node == root
