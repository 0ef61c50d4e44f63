"""Receipts read raw over HTTP (chain/sender.py ``_light_receipt``) have web3's types: the same
receipt as ``w3.eth.get_transaction_receipt`` gives, logs included, on a real anvil."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3 import Web3

from chain.accounts import dev_account
from chain.backends import http
from chain.compiler import CompileResult
from chain.errors import ErrorDecoder
from chain.processes import anvil_node
from chain.sender import Transactor


@pytest.fixture(scope="module")
def node() -> Iterator[Web3]:
    with anvil_node() as url:
        yield http(url)


def test_a_receipt_read_raw_equals_web3s_receipt(node: Web3, compiled: CompileResult) -> None:
    tx = Transactor(node, ErrorDecoder())
    owner = dev_account(3)
    art = compiled["PlainERC20"]
    deployed = tx.deploy(owner, art.abi, art.bytecode)
    token = node.eth.contract(address=deployed.receipt["contractAddress"], abi=art.abi)
    minted = tx.transact(owner, token.functions.mint(owner.address, 10**6))
    moved = tx.transact(owner, token.functions.transfer(dev_account(5).address, 10))
    sent = tx.send_raw(
        owner,
        {
            "from": owner.address,
            "to": dev_account(6).address,
            "value": 1,
            "gas": 21_000,
            **tx.fees(),
            "chainId": tx.chain_id,
        },  # type: ignore[typeddict-item]
    )
    for tx_hash in (deployed.tx_hash, minted.tx_hash, moved.tx_hash, sent.tx_hash):
        light = tx.receipt(tx_hash, timeout_s=10)
        assert light is not None
        assert dict(light) == {
            k: (list(map(dict, v)) if k == "logs" else v)
            for k, v in node.eth.get_transaction_receipt(tx_hash).items()
        }
    assert len(moved.receipt["logs"]) == 1
