"""Our Merkle trees are OpenZeppelin's ``StandardMerkleTree``, checked with the npm library itself.

The Node script loads the ``dump()`` we publish (``StandardMerkleTree.load``), takes its root and
every proof, and builds its own tree from the same values: roots, proofs and whole dumps must be
equal to ours, for 1, 2, 3, 5 (odd) and 8 leaves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chain.clients.disburse import LEAF_ENCODING as BATCH_LEAF
from chain.clients.disburse import Row, batch_id, leaf_hash, merkle_tree
from chain.clients.vouchers import LEAF_ENCODING as GRANT_LEAF
from chain.clients.vouchers import Grant
from chain.clients.vouchers import leaf_hash as grant_leaf_hash
from chain.clients.vouchers import merkle_tree as grant_tree
from chain.merkle import MerkleTree, verify
from chain.paths import NODE_MODULES

SCRIPT = Path(__file__).parent / "js" / "merkle_check.js"
ADDRESSES = [f"0x{(i * 0x1111111 + 0xABC):040x}" for i in range(1, 9)]

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_MODULES / "@openzeppelin" / "merkle-tree").is_dir(),
    reason="needs Node.js and the npm @openzeppelin/merkle-tree package (npm ci)",
)


def run_library(dump: dict[str, Any], values: list[Any] | None = None) -> dict[str, Any]:
    """What @openzeppelin/merkle-tree says about ``dump`` (loaded) and about ``values`` (built;
    the dump's own values by default). Raises CalledProcessError if the library refuses the dump."""
    if values is None:
        values = [v["value"] for v in dump["values"]]
    out = subprocess.run(
        [str(shutil.which("node")), str(SCRIPT)],
        input=json.dumps({"dump": dump, "values": values, "leafEncoding": dump["leafEncoding"]}),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
    )
    return json.loads(out.stdout)


def library(tree: MerkleTree) -> dict[str, Any]:
    """What the library says about our tree's dump and about the same values."""
    return run_library(tree.dump())


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_batch_tree_is_the_standard_tree(n: int) -> None:
    rows = [Row(ADDRESSES[i], 100 * (i + 1) + 7) for i in range(n)]
    bid = batch_id(ADDRESSES[0], "payroll-2026-11")
    tree = merkle_tree(bid, rows)
    answer = library(tree)
    root = "0x" + tree.root.hex()
    assert answer["builtRoot"] == root
    assert answer["loadedRoot"] == root
    assert answer["builtDump"] == tree.dump()
    assert all(answer["verified"])
    assert answer["proofs"] == [["0x" + p.hex() for p in tree.proof(i)] for i in range(n)]
    for i, r in enumerate(rows):  # the leaf the contract hashes is the library's leaf
        assert tree.leaf(i) == leaf_hash(bid, i, r.recipient, r.amount)
        assert verify(tree.proof(i), tree.root, tree.leaf(i))


@pytest.mark.parametrize("n", [3, 7])
def test_campaign_tree_is_the_standard_tree(n: int) -> None:
    grants = [Grant(ADDRESSES[i], 5_000 + i) for i in range(n)]
    tree = grant_tree(42, grants)
    answer = library(tree)
    assert answer["builtRoot"] == answer["loadedRoot"] == "0x" + tree.root.hex()
    assert answer["builtDump"] == tree.dump()
    assert answer["proofs"] == [["0x" + p.hex() for p in tree.proof(i)] for i in range(n)]
    assert [tree.leaf(i) for i in range(n)] == [
        grant_leaf_hash(42, i, g.holder, g.amount) for i, g in enumerate(grants)
    ]
    assert tree.dump()["leafEncoding"] == list(GRANT_LEAF)


def test_root_does_not_depend_on_row_order_of_equal_leaves() -> None:
    """Sorted leaves: the same leaf set gives the same root whatever order the values come in."""
    values = [(b"\x01" * 32, i, ADDRESSES[i], 10 + i) for i in range(5)]
    assert MerkleTree(values, BATCH_LEAF).root == MerkleTree(values[::-1], BATCH_LEAF).root


def test_a_tampered_dump_is_refused_by_the_library() -> None:
    tree = merkle_tree(batch_id(ADDRESSES[0], "x"), [Row(a, 1) for a in ADDRESSES[:3]])
    dump = tree.dump()
    values = [v["value"] for v in dump["values"]]
    dump["values"][1]["value"][3] = "2"
    with pytest.raises(subprocess.CalledProcessError) as info:
        run_library(dump, values)
    assert "Merkle tree does not contain the expected value" in info.value.stderr
