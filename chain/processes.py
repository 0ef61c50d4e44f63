"""Local node and service processes for `make run`, the tests and the benchmarks.

One place that starts anvil (Foundry's local node, pinned from npm) on a free port, waits until it
answers, and always stops it (terminate, then kill) on the way out.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import rlp
from eth_utils import keccak

from chain.accounts import DEV_ACCOUNT_COUNT, DEV_MNEMONIC
from chain.backends import http
from chain.paths import NODE_MODULES, PROJECT_ROOT

ANVIL = NODE_MODULES / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
ANVIL_HARDFORK = "cancun"  # the EVM version the contracts are compiled for


def free_port() -> int:
    """A free local port: any (the kernel's choice), or one of ``XCPAY_PORT_RANGE`` ("low-high")
    when set, so that processes started on a shared machine stay inside the ports they were given."""
    span = os.environ.get("XCPAY_PORT_RANGE", "")
    if not span:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    low, high = (int(x) for x in span.split("-"))
    ports = list(range(low, high + 1))
    random.shuffle(ports)  # two callers racing for the next port rarely pick the same one
    for port in ports:
        with socket.socket() as s, suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port
    raise RuntimeError(f"no free port in XCPAY_PORT_RANGE={span}")


def wait_for_rpc(url: str, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 60.0) -> None:
    """Until a JSON-RPC node answers at ``url`` (fails early if ``proc`` exits)."""
    w3 = http(url, timeout_s=2)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"node process exited with code {proc.returncode}")
        try:
            _ = w3.eth.block_number
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"no JSON-RPC node answered at {url} within {timeout_s:.0f}s")


def wait_for_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 90.0) -> None:
    """Until ``url`` answers 200 (a service's /healthz); fails early if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f}s")


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)


@contextmanager
def running(
    cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` from the project root for the duration of the block; output to ``log`` or nowhere."""
    if log is None:
        proc = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    else:
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop(proc)


# Blocks whose state anvil keeps for reads at a past block (``eth_call`` at a block number). anvil
# keeps a full copy of the chain's state for each block, up to 500 of them by default: ~4 MB a
# block once 10,000 wallets are registered, so the node held 1.3-2 GB after a 10,000-person
# payroll (bench_disburse), most of the stack's memory. Blocks, receipts and logs are all kept;
# only older states go. The services read past state only just behind the head: a reverted
# transaction's parent block (``Transactor.revert_error``) and the reconciliation's block, the
# event index's cursor, caught up right before (after a restart no past state survives anyway).
NODE_STATE_HISTORY = 128


# Header fields in RLP order (Cancun; Prague's requestsHash when present): anvil's state file
# keeps headers as JSON, and a block's hash is the keccak of their RLP.
_HEADER_FIELDS = (
    "parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom",
    "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce",
    "baseFeePerGas", "withdrawalsRoot", "blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot",
    "requestsHash",
)  # fmt: skip
_HEADER_INTS = {
    "difficulty",
    "number",
    "gasLimit",
    "gasUsed",
    "timestamp",
    "baseFeePerGas",
    "blobGasUsed",
    "excessBlobGas",
}


def _header_hash(header: dict[str, Any]) -> str:
    items = [
        int(header[k], 16) if k in _HEADER_INTS else bytes.fromhex(header[k].removeprefix("0x"))
        for k in _HEADER_FIELDS
        if header.get(k) is not None
    ]
    return "0x" + keccak(rlp.encode(items)).hex()


def repair_anvil_state(state: Path) -> int:
    """Keep only the chain's own genesis in anvil's state file; the number of entries removed.

    anvil 1.x builds a fresh genesis block on every start (stamped with that start's time) and
    writes it into the state file beside the loaded chain's, so the file gains a block-0 entry per
    restart; on load, whichever of them comes last becomes block 0. Block 0's hash then changes
    from one start to the next while block 1 still names the first as its parent: the services
    refuse their own database as another chain's, and outside clients see another chain (red
    team, 2026-11-26). The genesis kept is block 1's parent (the earliest one on a chain of only
    block 0)."""
    if not state.exists():
        return 0
    doc = json.loads(state.read_text())
    blocks = doc.get("blocks") or []
    genesis = [b for b in blocks if int(b["header"]["number"], 16) == 0]
    if len(genesis) <= 1:
        return 0
    first = next((b["header"] for b in blocks if int(b["header"]["number"], 16) == 1), None)
    keep = next(
        (b for b in genesis if first is not None and _header_hash(b["header"]) == first["parentHash"]), None
    )
    keep = keep or min(genesis, key=lambda b: int(b["header"]["timestamp"], 16))
    doc["blocks"] = [b for b in blocks if b is keep or int(b["header"]["number"], 16) != 0]
    tmp = state.with_name(state.name + ".repair")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, state)
    return len(genesis) - 1


def anvil_cmd(port: int, state: Path | None = None) -> list[str]:
    """anvil on ``port`` with the development accounts; with ``state`` it loads that file on start
    (when it exists, first repaired: :func:`repair_anvil_state`) and writes it on exit
    (SIGINT/SIGTERM), blocks, receipts and logs included. The states of the last
    ``NODE_STATE_HISTORY`` blocks are kept for reads at a past block."""
    cmd = [str(ANVIL), "--port", str(port), "--silent", "--hardfork", ANVIL_HARDFORK]
    cmd += ["--mnemonic", DEV_MNEMONIC, "--accounts", str(DEV_ACCOUNT_COUNT)]
    cmd += ["--prune-history", str(NODE_STATE_HISTORY)]
    if state is None:
        return cmd
    repair_anvil_state(state)
    return [*cmd, "--state", str(state)]


def stop_persisting_node(proc: subprocess.Popen[bytes], url: str, timeout_s: float = 120.0) -> None:
    """Stop an anvil that writes its state on exit, without losing a block.

    Mining stops first: anvil can lose a block it mines while it writes its state on SIGTERM (the
    fault tests saw a payroll chunk paid on chain whose block and events were gone after the
    restart). Then SIGTERM, and time to write a large state file.
    """
    if proc.poll() is not None:
        return
    no_mining = {"jsonrpc": "2.0", "id": 1, "method": "evm_setAutomine", "params": [False]}
    with suppress(httpx.HTTPError):  # not answering: SIGTERM still makes it write its state
        httpx.post(url, json=no_mining, timeout=5)
    stop(proc, timeout_s)


@contextmanager
def anvil_node(port: int | None = None, state: Path | None = None) -> Iterator[str]:
    """A real anvil process from the npm package; yields its URL once it answers."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with running(anvil_cmd(port, state)) as proc:
        wait_for_rpc(url, proc)
        yield url
