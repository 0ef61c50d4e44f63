"""``Transactor.call`` over HTTP is one raw ``eth_call`` (chain/sender.py ``_raw_call``): on a real
anvil with every family deployed, it answers every view function that takes no argument, or one
address, exactly as web3's ``fn.call()`` does (strings, bytes, tuples, arrays, checksummed
addresses), and a revert is the contract's decoded custom error as before."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3 import Web3
from web3.contract.contract import ContractFunction

from chain.accounts import dev_account
from chain.backends import http
from chain.deploy import deploy_all
from chain.exceptions import ContractError, NodeRefused
from chain.manifest import Manifest
from chain.processes import anvil_node
from chain.sender import Transactor, nonce_taken


@pytest.fixture(scope="module")
def deployed() -> Iterator[tuple[Web3, Manifest]]:
    with anvil_node() as url:
        w3 = http(url)
        yield w3, deploy_all(w3)


def simple_views(w3: Web3, manifest: Manifest, holder: str) -> Iterator[tuple[str, ContractFunction]]:
    """Every view or pure function of every deployed contract that takes no argument or one
    address (called with ``holder``), named "Contract.function"."""
    for name in manifest.contracts:
        contract = manifest.contract(w3, name)
        for item in contract.abi:
            if item.get("type") != "function" or item.get("stateMutability") not in ("view", "pure"):
                continue
            inputs = [i["type"] for i in item.get("inputs", [])]
            if inputs not in ([], ["address"]):
                continue
            yield f"{name}.{item['name']}", contract.functions[item["name"]](*([holder] if inputs else []))


def test_every_simple_view_answers_as_web3_does(deployed: tuple[Web3, Manifest]) -> None:
    w3, manifest = deployed
    tx = Transactor(w3, manifest.error_decoder())
    holder = dev_account(2).address
    compared = 0
    for label, fn in simple_views(w3, manifest, holder):
        try:
            expected = fn.call()
        except Exception as exc:  # a view that reverts: the same error both ways
            with pytest.raises(ContractError) as raised:
                tx.call(fn)
            assert type(raised.value) is type(tx.errors.decode(getattr(exc, "data", None)))
            continue
        got = tx.call(fn)
        assert got == expected and type(got) is type(expected), (label, got, expected)
        compared += 1
    assert compared > 50


def test_a_reverting_call_raises_the_contracts_custom_error(deployed: tuple[Web3, Manifest]) -> None:
    w3, manifest = deployed
    tx = Transactor(w3, manifest.error_decoder())
    cash = manifest.contract(w3, "DigitalCash")
    stranger = dev_account(9).address
    # transferFrom as a call, from nobody's allowance: the token's own refusal, decoded
    fn = cash.functions.transferFrom(stranger, dev_account(8).address, 1)
    with pytest.raises(ContractError) as raised:
        tx.call(fn)
    with pytest.raises(Exception) as by_web3:
        fn.call()
    assert str(raised.value) == str(tx.errors.decode(getattr(by_web3.value, "data", None)))


def test_estimates_and_sends_over_http_answer_as_web3_did(deployed: tuple[Web3, Manifest]) -> None:
    """The raw ``eth_estimateGas``: a refusal is the contract's custom error, nothing is signed;
    the raw ``eth_sendRawTransaction``: bytes whose nonce is used already are NodeRefused, in
    words ``nonce_taken`` reads."""
    w3, manifest = deployed
    tx = Transactor(w3, manifest.error_decoder())
    cash = manifest.contract(w3, "DigitalCash")
    stranger = dev_account(9)
    fn = cash.functions.transfer(dev_account(8).address, 1)
    with pytest.raises(ContractError) as raised:
        tx.prepare(fn, stranger.address)
    with pytest.raises(Exception) as by_web3:
        fn.estimate_gas({"from": stranger.address})
    assert str(raised.value) == str(tx.errors.decode(getattr(by_web3.value, "data", None)))

    to = dev_account(8).address
    payment = {"from": stranger.address, "to": to, "value": 1, "gas": 21_000, **tx.fees()}
    payment["chainId"] = tx.chain_id
    sent = tx.send_raw(stranger, payment)  # type: ignore[arg-type]
    tx.wait(sent.tx_hash)
    again = stranger.sign_transaction({**payment, "value": 2, "nonce": sent.nonce})
    with pytest.raises(NodeRefused) as refused:
        tx.broadcast(bytes(again.raw_transaction), "0x" + bytes(again.hash).hex())
    assert nonce_taken(str(refused.value))


class _CountingPosts:
    """Counts the HTTP requests a provider sends (one per call, one per batch)."""

    def __init__(self, w3: Web3) -> None:
        self.manager = w3.provider._request_session_manager  # type: ignore[attr-defined]
        self.inner = self.manager.make_post_request
        self.posts = 0
        self.manager.make_post_request = self

    def __call__(self, *args: object, **kwargs: object) -> bytes:
        self.posts += 1
        return self.inner(*args, **kwargs)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.manager.make_post_request = self.inner


def test_call_many_answers_each_view_as_call_does_in_one_round_trip(deployed: tuple[Web3, Manifest]) -> None:
    """Every simple view of every contract in one batch: the same answers, in order, as one
    ``call`` each, and one HTTP request for the lot."""
    w3, manifest = deployed
    tx = Transactor(w3, manifest.error_decoder())
    holder = dev_account(2).address
    fns = []
    for _, fn in simple_views(w3, manifest, holder):
        try:
            tx.call(fn)
        except ContractError:
            continue  # a view that reverts: below, on its own
        fns.append(fn)
    assert len(fns) > 50
    expected = [tx.call(fn) for fn in fns]
    counter = _CountingPosts(w3)
    try:
        got = tx.call_many(fns)
    finally:
        counter.close()
    assert counter.posts == 1
    assert got == expected and [type(g) for g in got] == [type(e) for e in expected]


def test_call_many_raises_the_custom_error_of_a_reverting_call(deployed: tuple[Web3, Manifest]) -> None:
    w3, manifest = deployed
    tx = Transactor(w3, manifest.error_decoder())
    cash = manifest.contract(w3, "DigitalCash")
    stranger = dev_account(9).address
    refused = cash.functions.transferFrom(stranger, dev_account(8).address, 1)
    with pytest.raises(ContractError) as alone:
        tx.call(refused)
    with pytest.raises(ContractError) as in_batch:
        tx.call_many([cash.functions.totalSupply(), refused])
    assert str(in_batch.value) == str(alone.value)


def test_a_wallet_state_is_one_round_trip_equal_to_its_single_reads(deployed: tuple[Web3, Manifest]) -> None:
    """``CashClient.wallet_state`` (a wallet's page): the seven views the page used to ask one at
    a time, in one request, with the same values (a wallet whose balance, spending today and held
    amount all differ, so that no two fields can be swapped unseen)."""
    from chain.clients.token import CashClient, Kind, bytes32_text

    w3, manifest = deployed
    cash = CashClient(w3, manifest)
    operator, regulator = dev_account(1), dev_account(2)
    holder, payee = dev_account(12), dev_account(13)
    for who, name in ((holder, b"state holder"), (payee, b"state payee")):
        cash.register(operator, who.address, Kind.PERSONAL, 2, 0, name.ljust(32, b"\0"))
    cash.mint(operator, holder.address, 1_000)
    cash.transfer(holder, payee.address, 100)
    cash.tx.transact(
        regulator, cash.place_hold_call(holder.address, 30, bytes32_text("AML"), bytes32_text("c-1"))
    )
    counter = _CountingPosts(w3)
    try:
        state = cash.wallet_state(holder.address)
    finally:
        counter.close()
    assert counter.posts == 1
    assert (state.balance, state.spent_today, state.held) == (900, 100, 30)
    assert state.info == cash.wallet(holder.address) and state.info.registered
    assert (state.balance, state.spent_today, state.held) == (
        cash.balance_of(holder.address),
        cash.spent_today(holder.address),
        cash.held_of(holder.address),
    )
    assert (state.retired, state.successor) == (
        cash.is_retired(holder.address),
        cash.successor_of(holder.address),
    )
