"""The precompiled event decoder gives exactly what web3's generic decoder (``process_log``) gives.

Every event of every deployed contract is checked with logs built from random argument values
(both paths: the word readers and the fallback for dynamic types), and the logs of a real
payroll chunk (Paid, PayoutException with its bytes4 reason, ChunkPaid, the token's Transfer).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import event_abi_to_log_topic, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3

from chain.accounts import dev_account
from chain.clients.disburse import DisbursementClient, Officer, Row, batch_id, purpose_tag
from chain.clients.token import CashClient, Kind
from chain.events import EventDecoder
from chain.manifest import Manifest


def web3_args(w3: Web3, abi: dict[str, Any], log: Any) -> Any:
    """``log``'s arguments by web3's generic decoder, the reference."""
    return w3.eth.contract(abi=[abi]).events[abi["name"]]().process_log(log)["args"]


def _value(t: str, rng: random.Random) -> Any:
    if t.endswith("]"):
        base, _, size = t[:-1].rpartition("[")
        return [_value(base, rng) for _ in range(int(size) if size else rng.randint(0, 3))]
    if t == "address":
        return to_checksum_address(rng.randbytes(20))
    if t == "bool":
        return rng.random() < 0.5
    if t.startswith("uint"):
        return rng.getrandbits(int(t[4:] or 256))
    if t.startswith("int"):
        bits = int(t[3:] or 256)
        return rng.getrandbits(bits) - 2 ** (bits - 1)
    if t == "string":
        return "".join(rng.choice("abcé ") for _ in range(rng.randint(0, 40)))
    if t == "bytes":
        return rng.randbytes(rng.randint(0, 70))
    if t.startswith("bytes"):
        return rng.randbytes(int(t[5:]))
    raise AssertionError(f"no generator for {t}")


def _type(arg: dict[str, Any]) -> str:
    if arg["type"].startswith("tuple"):
        inner = ",".join(_type(c) for c in arg["components"])
        return f"({inner}){arg['type'][5:]}"
    return str(arg["type"])


def _random_log(abi: dict[str, Any], address: str, rng: random.Random) -> dict[str, Any]:
    topics = [event_abi_to_log_topic(abi)]
    data_types, data_values = [], []
    for arg in abi["inputs"]:
        t = _type(arg)
        if arg.get("indexed"):
            if t in ("string", "bytes") or t.endswith("]") or t.startswith("("):
                topics.append(rng.randbytes(32))  # the keccak of the value
            else:
                topics.append(encode([t], [_value(t, rng)]))
        else:
            data_types.append(t)
            data_values.append(_tuple_value(t, rng))
    return {
        "address": address,
        "topics": [HexBytes(t) for t in topics],
        "data": HexBytes(encode(data_types, data_values)),
        "blockNumber": 7,
        "logIndex": 3,
        "transactionIndex": 0,
        "transactionHash": HexBytes(rng.randbytes(32)),
        "blockHash": HexBytes(rng.randbytes(32)),
    }


def _tuple_value(t: str, rng: random.Random) -> Any:
    if t.startswith("("):
        inner, _, suffix = t[1:].rpartition(")")
        parts = _split(inner)
        if suffix:
            return [tuple(_tuple_value(p, rng) for p in parts) for _ in range(rng.randint(0, 2))]
        return tuple(_tuple_value(p, rng) for p in parts)
    return _value(t, rng)


def _split(inner: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        depth += c == "("
        depth -= c == ")"
        if c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return parts


def test_every_event_decodes_as_web3_decodes_it(w3: Web3, manifest: Manifest) -> None:
    decoder = manifest.event_decoder(w3)
    rng = random.Random(19)
    checked = 0
    for name, deployed in manifest.contracts.items():
        for abi in (e for e in deployed.abi if e.get("type") == "event"):
            for _ in range(5):
                log = _random_log(abi, deployed.address, rng)
                event = decoder.decode_log(log)
                assert event is not None, f"{name}.{abi['name']}"
                assert list(event.args.items()) == list(web3_args(w3, abi, log).items())
                assert (event.contract, event.name, event.block_number, event.log_index) == (
                    name,
                    abi["name"],
                    7,
                    3,
                )
                checked += 1
    assert checked > 100


def test_only_the_named_events_are_decoded(w3: Web3, manifest: Manifest) -> None:
    decoder = manifest.event_decoder(w3)
    cash = manifest.contracts["DigitalCash"]
    transfer = next(e for e in cash.abi if e.get("type") == "event" and e["name"] == "Transfer")
    log = _random_log(transfer, cash.address, random.Random(1))
    assert decoder.decode_log(log, names={"Paid"}) is None
    assert decoder.decode_log(log, names={"Transfer"}) is not None


@pytest.mark.usefixtures("fresh")
def test_a_payroll_chunk_decodes_as_web3_decodes_it(
    w3: Web3, manifest: Manifest, cash: CashClient, disburse: DisbursementClient
) -> None:
    operator, payer, checker = dev_account(1), dev_account(8), dev_account(9)
    for who in (payer, checker):
        cash.register(operator, who.address, Kind.INSTITUTION, 1, 0, Web3.keccak(text=who.address))
    cash.mint(operator, payer.address, 10_000)
    cash.approve(payer, disburse.contract.address, 10_000)
    disburse.set_officer(payer, checker.address, Officer.CHECKER)
    people = [dev_account(i).address for i in (3, 4, 5)]
    for p in people[:2]:
        cash.register(operator, p, Kind.PERSONAL, 2, 0, Web3.keccak(text=p))
    rows = [Row(p, 100) for p in people]  # the third is not registered: an exception
    end = int(w3.eth.get_block("latest")["timestamp"]) + 86_400
    disburse.create_explicit(payer, "events", payer.address, purpose_tag("salary"), end, 300)
    bid = batch_id(payer.address, "events")
    disburse.add_rows(payer, bid, rows)
    disburse.approve(checker, bid)
    paid = disburse.pay_chunk(operator, bid, 0, rows)
    decoder = EventDecoder(w3)
    abis = {}
    for name, deployed in manifest.contracts.items():
        decoder.add_contract(name, deployed.address, deployed.abi)
        for e in (e for e in deployed.abi if e.get("type") == "event"):
            abis[(deployed.address, bytes(event_abi_to_log_topic(e)))] = e
    events = decoder.decode_receipt(paid.receipt)
    assert [e.name for e in events].count("PayoutException") == 1
    assert [e.name for e in events].count("Paid") == 2
    for log, event in zip(paid.receipt["logs"], events, strict=True):
        abi = abis[(log["address"], bytes(log["topics"][0]))]
        assert event.args == dict(web3_args(w3, abi, log))


def _as_node_sends_it(log: dict[str, Any]) -> dict[str, Any]:
    """A typed log as the node's JSON-RPC answer has it: hex strings, a lower-case address."""
    return {
        "address": log["address"].lower(),
        "topics": ["0x" + bytes(t).hex() for t in log["topics"]],
        "data": "0x" + bytes(log["data"]).hex(),
        "blockNumber": hex(log["blockNumber"]),
        "logIndex": hex(log["logIndex"]),
        "transactionIndex": hex(log["transactionIndex"]),
        "transactionHash": "0x" + bytes(log["transactionHash"]).hex(),
        "blockHash": "0x" + bytes(log["blockHash"]).hex(),
        "removed": False,
    }


def test_a_raw_json_log_decodes_as_its_typed_form(w3: Web3, manifest: Manifest) -> None:
    """Operations decode a receipt's logs as the node sent them (``raw_logs``): every event of every
    contract, by the word readers and by web3's fallback, gives the same event either way."""
    decoder = manifest.event_decoder(w3)
    rng = random.Random(23)
    checked = 0
    for deployed in manifest.contracts.values():
        for abi in (e for e in deployed.abi if e.get("type") == "event"):
            for _ in range(3):
                log = _random_log(abi, deployed.address, rng)
                typed, raw = decoder.decode_log(log), decoder.decode_log(_as_node_sends_it(log))
                assert typed is not None and raw == typed
                assert list(raw.args.items()) == list(typed.args.items())  # the order too
                checked += 1
    assert checked > 60
