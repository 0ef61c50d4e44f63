"""The group commit of ``Transactor.send_signed`` (``store_group``) on a real anvil: concurrent
senders of one key are signed with consecutive nonces, each group is stored in one call before
any of its transactions reaches the node, and a refused transaction in the middle of a group
leaves no nonce gap (those after it are signed again and sent)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from web3 import Web3

from chain.accounts import dev_account
from chain.backends import http
from chain.errors import ErrorDecoder
from chain.exceptions import NodeRefused
from chain.processes import anvil_node
from chain.sender import SentTx, Signed, Transactor


@pytest.fixture(scope="module")
def node() -> Iterator[Web3]:
    with anvil_node() as url:
        yield http(url)


class Store:
    """A ``store_group`` that records each group and what the node knew when it was called."""

    def __init__(self, tx: Transactor, slow_first_s: float = 0.0) -> None:
        self.tx = tx
        self.groups: list[list[Signed]] = []
        self.known_at_store: list[bool] = []
        self.slow_first_s = slow_first_s
        self.lock = threading.Lock()

    def __call__(self, signed: Sequence[Signed]) -> None:
        with self.lock:
            first = not self.groups
            self.groups.append(list(signed))
        self.known_at_store += [self.tx.known(s.sent.tx_hash) for s in signed]
        if first and self.slow_first_s:
            time.sleep(self.slow_first_s)  # the others queue up behind this group


def _ether(tx: Transactor, sender: str, to: str, gas: int = 21_000) -> dict[str, Any]:
    return {"from": sender, "to": to, "value": 1, "gas": gas, **tx.fees(), "chainId": tx.chain_id}


def _send_all(
    tx: Transactor, store: Store, txs: list[dict[str, Any]], stagger_s: float = 0.0
) -> list[SentTx | BaseException]:
    account = dev_account(7)
    out: list[SentTx | BaseException] = [RuntimeError("not run")] * len(txs)

    def one(i: int) -> None:
        try:
            out[i] = tx.send_signed(account, txs[i], store_group=store, tag=i)  # type: ignore[arg-type]
        except BaseException as exc:
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(txs))]
    for t in threads:
        t.start()
        time.sleep(stagger_s)
    for t in threads:
        t.join(timeout=60)
    return out


def test_concurrent_senders_are_stored_in_groups_before_anything_is_sent(node: Web3) -> None:
    tx = Transactor(node, ErrorDecoder())
    sender = dev_account(7).address
    start = node.eth.get_transaction_count(sender, "pending")
    store = Store(tx, slow_first_s=0.3)
    n = 16
    out = _send_all(tx, store, [_ether(tx, sender, dev_account(8).address) for _ in range(n)])
    sent = [o for o in out if isinstance(o, SentTx)]
    assert len(sent) == n, out
    for s in sent:
        tx.wait(s.tx_hash)
    assert sorted(s.nonce for s in sent) == list(range(start, start + n))  # no gap, no reuse
    assert sum(len(g) for g in store.groups) == n  # each stored once
    assert len(store.groups) < n and max(len(g) for g in store.groups) > 1  # grouped
    assert not any(store.known_at_store)  # stored before the node had any of them
    assert node.eth.get_transaction_count(sender, "latest") == start + n


def test_a_refused_transaction_mid_group_leaves_no_gap(node: Web3) -> None:
    tx = Transactor(node, ErrorDecoder())
    sender = dev_account(7).address
    start = node.eth.get_transaction_count(sender, "pending")
    store = Store(tx, slow_first_s=0.4)
    to = dev_account(9).address
    # The first stores alone (slowly); then a group of three whose middle one the node refuses
    # (too little gas for any transaction): the last is signed again with the refused nonce.
    txs = [
        _ether(tx, sender, to),
        _ether(tx, sender, to),
        _ether(tx, sender, to, gas=20_000),
        _ether(tx, sender, to),
    ]
    out = _send_all(tx, store, txs, stagger_s=0.05)
    assert isinstance(out[2], NodeRefused), out
    good = [o for i, o in enumerate(out) if i != 2]
    assert all(isinstance(o, SentTx) for o in good), out
    for s in good:
        assert isinstance(s, SentTx)
        tx.wait(s.tx_hash)
    assert sorted(s.nonce for s in good if isinstance(s, SentTx)) == [start, start + 1, start + 2]
    stored_tags = [s.tag for g in store.groups for s in g]
    assert stored_tags.count(3) == 2  # stored, not sent, signed again
    assert [len(g) for g in store.groups][:2] == [1, 3]
    assert node.eth.get_transaction_count(sender, "latest") == start + 3
