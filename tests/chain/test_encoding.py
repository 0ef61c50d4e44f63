"""Call data encoded straight by the codec (chain/sender.py ``encode_call``) is web3's, byte for
byte, for calls with structs, arrays, bytes and addresses (web3 checks the arguments against the
ABI when the call is built, before any encoding)."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import Web3

from chain import sender
from chain.clients.disburse import DisbursementClient, batch_ref, purpose_tag
from chain.clients.token import CashClient, Kind, Registration
from chain.gas import signature
from chain.sender import encode_call


def web3s(w3: Web3, fn: object) -> str:
    """``fn``'s call data by web3's public encoder, the reference."""
    contract = w3.eth.contract(abi=fn.contract_abi)  # type: ignore[attr-defined]
    return contract.encode_abi(signature(fn), args=list(fn.args), kwargs=fn.kwargs or {})  # type: ignore[attr-defined]


def test_calls_encode_as_web3_encodes_them(
    w3: Web3, cash: CashClient, disburse: DisbursementClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [Account.create().address for _ in range(5)]
    d, r, c = disburse.contract.functions, cash.registry.functions, cash.cash.functions
    calls = [
        d.payChunk(b"\1" * 32, 3, [(p, 100 + i) for i, p in enumerate(people)]),
        d.addRows(b"\2" * 32, [(people[0], 1)]),
        d.createBatch(batch_ref("x"), people[1], purpose_tag("salary"), 10**9, 500, b"\0" * 32, 0),
        d.pushClaims(b"\3" * 32, [(7, people[2], 50, [b"\4" * 32, b"\5" * 32])]),
        cash.register_batch_call([Registration(p, Kind.PERSONAL, 2, 0, b"\6" * 32) for p in people]),
        r.register(people[3], int(Kind.MERCHANT), 2, 7997, b"\7" * 32),
        c.mint(people[4], 12345),
        c.pause(),
    ]
    expected = [web3s(w3, fn) for fn in calls]

    def not_web3(*args: object) -> str:
        raise AssertionError("encoded by web3, not by the codec")

    monkeypatch.setattr(sender, "web3_encode", not_web3)
    for fn, data in zip(calls, expected, strict=True):
        assert encode_call(w3, fn) == data, signature(fn)
