"""The persisted node of `make run` keeps its genesis across restarts, however long the chain.

anvil writes a fresh block-0 entry into its state file on every start, and on load whichever
comes last became block 0: its hash changed from one start to the next while block 1 still named
the first as its parent, and the services refused their own database as another chain's (red team,
2026-11-26: after a few hundred blocks, two restarts in four). ``chain.processes.anvil_cmd``
repairs the file before each start (``repair_anvil_state``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from chain.processes import anvil_cmd, free_port, stop_persisting_node, wait_for_rpc


def _rpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    answer = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=30
    )
    return answer.json()["result"]


def _genesis_entries(state: Path) -> list[dict[str, Any]]:
    blocks = json.loads(state.read_text())["blocks"]
    return [b for b in blocks if int(b["header"]["number"], 16) == 0]


def test_a_persisted_node_keeps_its_genesis_across_restarts_past_the_pruned_history(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    genesis, height = None, 0
    for start in range(6):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(anvil_cmd(port, state), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_rpc(url, proc)
            assert int(_rpc(url, "eth_blockNumber"), 16) == height  # nothing lost
            block0 = _rpc(url, "eth_getBlockByNumber", ["0x0", False])["hash"]
            genesis = genesis or block0
            assert block0 == genesis
            if height:
                assert _rpc(url, "eth_getBlockByNumber", ["0x1", False])["parentHash"] == genesis
            _rpc(url, "anvil_mine", [hex(200)])  # past the 128 blocks' states the node keeps
            height += 200
            if start:  # repaired before this start: the chain's own genesis alone (anvil writes on exit)
                assert len(_genesis_entries(state)) == 1
        finally:
            stop_persisting_node(proc, url)
