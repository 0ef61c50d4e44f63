"""An outside client against the node `make run` starts: Foundry's `cast` (pinned from npm) reads,
estimates, sends and filters on it with the contracts deployed, as any standard tool would.

The stack is `make run`'s own (scripts/run.py: the local anvil node with its state file, the
deployment, the operator service, the gateway) on free ports; a custodial wallet is registered and
given cash through the operator API, so the chain holds what a running system holds.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account

from chain.accounts import dev_account
from chain.manifest import Manifest
from chain.paths import NODE_MODULES, PROJECT_ROOT
from chain.processes import free_port
from tests.e2e.test_operator_processes import RUN_START_S, Client, service_env, wait_run_up

pytestmark = pytest.mark.slow

CAST = NODE_MODULES / "@foundry-rs" / "cast-linux-amd64" / "bin" / "cast"
ISSUED_FEN = 12_345
ZERO = "0x" + "00" * 20


@dataclass
class Stack:
    rpc: str
    manifest: Manifest
    wallet: str  # a registered custodial wallet holding ISSUED_FEN

    @property
    def cash(self) -> str:
        return self.manifest.address("DigitalCash")


def cast(stack: Stack | None, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """``cast ARGS`` against the stack's node (``None``: an offline command)."""
    rpc = ["--rpc-url", stack.rpc] if stack is not None else []
    done = subprocess.run([str(CAST), *args, *rpc], capture_output=True, text=True, timeout=120)
    if ok:
        assert done.returncode == 0, f"cast {' '.join(args)}: {done.stderr}"
    return done


def cast_json(stack: Stack, *args: str) -> Any:
    return json.loads(cast(stack, *args).stdout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("conformance")
    node_port, api_port = free_port(), free_port()
    env = service_env(
        tmp, "", api_port, XCPAY_NODE_PORT=str(node_port), XCPAY_NODE_STATE=str(tmp / "chain.json")
    )
    del env["XCPAY_RPC_URL"]
    log = tmp / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "scripts/run.py"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{api_port}"
        wait_run_up(log, proc, RUN_START_S)
        api = Client(url)
        wallet = api.wallet()
        r = api.post("operator", "/v1/issuance", {"to": wallet, "amount_fen": ISSUED_FEN})
        assert r.status_code == 200, r.text
        yield Stack(f"http://127.0.0.1:{node_port}", Manifest.load(tmp / "manifest.json"), wallet)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)


def test_chain_id_and_net_version_name_the_same_chain(stack: Stack) -> None:
    assert cast(stack, "chain-id").stdout.strip() == str(stack.manifest.chain_id)
    assert json.loads(cast(stack, "rpc", "net_version").stdout) == str(stack.manifest.chain_id)


def test_call_reads_a_balance(stack: Stack) -> None:
    out = cast_json(stack, "call", "--json", stack.cash, "balanceOf(address)(uint256)", stack.wallet)
    assert [int(v) for v in out] == [ISSUED_FEN]


def test_call_from_an_address_without_ether_is_answered(stack: Stack) -> None:
    penniless = Account.create().address
    assert int(cast(stack, "balance", penniless).stdout) == 0
    out = cast_json(
        stack, "call", "--json", "--from", penniless, stack.cash, "balanceOf(address)(uint256)", stack.wallet
    )
    assert [int(v) for v in out] == [ISSUED_FEN]


def test_a_reverted_call_carries_our_custom_error_with_its_argument(stack: Stack) -> None:
    stranger = Account.create().address
    done = cast(
        stack,
        "call",
        "--from",
        stranger,
        stack.cash,
        "transfer(address,uint256)(bool)",
        stack.wallet,
        "1",
        ok=False,
    )
    assert done.returncode != 0 and "execution reverted" in done.stderr
    (data,) = re.findall(r"0x[0-9a-fA-F]{72}", done.stderr)
    error = stack.manifest.error_decoder().decode(data)
    assert error.signature == f"WalletNotRegistered(wallet={stranger})"
    decoded = cast(None, "decode-error", "--sig", "WalletNotRegistered(address)", data).stdout.split()
    assert decoded == [stranger]


def test_estimate_prices_a_mint_by_the_operator(stack: Stack) -> None:
    operator = dev_account(1).address
    gas = int(
        cast(
            stack, "estimate", "--from", operator, stack.cash, "mint(address,uint256)", stack.wallet, "1"
        ).stdout
    )
    assert 21_000 < gas < 500_000


def test_send_block_receipt_and_logs_with_topics(stack: Stack) -> None:
    """A transaction signed by cast (development account 5, no role, not a registered wallet:
    ``approve`` asks for neither), then its block, its receipt and its event found by topics."""
    owner = dev_account(5)
    spender = Account.create().address
    sent = cast_json(
        stack,
        "send",
        "--json",
        "--private-key",
        "0x" + bytes(owner.key).hex(),
        stack.cash,
        "approve(address,uint256)",
        spender,
        "7",
    )
    assert sent["status"] == "0x1"
    tx_hash = sent["transactionHash"]

    receipt = cast_json(stack, "receipt", "--json", tx_hash)
    assert receipt["status"] == "0x1" and receipt["to"].lower() == stack.cash.lower()
    assert receipt["from"].lower() == owner.address.lower()
    assert re.fullmatch(r"0x[0-9a-f]{512}", receipt["logsBloom"])
    assert len(receipt["logs"]) == 1

    block = cast_json(stack, "block", "--json", receipt["blockNumber"])
    assert block["hash"] == receipt["blockHash"] and tx_hash in block["transactions"]
    assert re.fullmatch(r"0x[0-9a-f]{512}", block["logsBloom"])

    approval = "Approval(address indexed,address indexed,uint256)"
    found = cast_json(
        stack,
        "logs",
        "--json",
        "--from-block",
        "earliest",
        "--address",
        stack.cash,
        approval,
        owner.address,
        spender,
    )
    assert [(e["transactionHash"], int(e["data"], 16)) for e in found] == [(tx_hash, 7)]

    # The issuance made through the API: a Transfer from the zero address to the wallet, by topics.
    transfer = "Transfer(address indexed,address indexed,uint256)"
    minted = cast_json(
        stack,
        "logs",
        "--json",
        "--from-block",
        "earliest",
        "--address",
        stack.cash,
        transfer,
        ZERO,
        stack.wallet,
    )
    assert [int(e["data"], 16) for e in minted] == [ISSUED_FEN]


def test_fee_history_has_one_entry_per_block_and_percentile(stack: Stack) -> None:
    history = cast_json(stack, "rpc", "eth_feeHistory", "0x4", "latest", "[25,75]")
    latest = int(cast(stack, "block-number").stdout)
    assert int(history["oldestBlock"], 16) == latest - 3
    assert len(history["baseFeePerGas"]) == 5  # the four blocks and the next one
    assert len(history["gasUsedRatio"]) == 4
    assert len(history["reward"]) == 4 and all(len(r) == 2 for r in history["reward"])
