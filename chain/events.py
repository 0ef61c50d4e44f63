"""Decode logs into typed :class:`Event` objects, for every contract the decoder knows.

Decoders are compiled once per event ABI (when a contract is added), not per log: a 200-row
payroll chunk emits 401 logs, and web3's generic decoder (``ContractEvent.process_log``, which
re-derives the types, names and normalizers of the event for every log) took ~333 ms of such a
chunk's ~146 ms of node time. Events whose arguments are all elementary static types (every event
of this system but a few) are read straight from their 32-byte words; any other falls back to
web3's decoder, so the answer is the same either way (``tests/chain/test_events.py`` compares
both on real logs).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

from eth_hash.auto import keccak
from eth_typing import ABIEvent
from eth_utils import event_abi_to_log_topic, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3


@dataclass(frozen=True)
class Event:
    """One decoded log: which contract, which event, its arguments, and where it is on chain."""

    contract: str
    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    log_index: int
    tx_hash: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __getitem__(self, key: str) -> Any:
        return self.args[key]


@lru_cache(maxsize=65_536)
def checksum(address: str | bytes) -> str:
    """EIP-55 form of an address (a keccak each time uncached; payrolls repeat the same few).

    A ``0x`` + 40 hex digits string (what the node answers and the database holds) takes one
    keccak here; eth_utils' ``to_checksum_address`` validated and normalised it first, for most of
    the time of encoding a 10,000-row payroll's rows, whose addresses are all seen once. Anything
    else goes to eth_utils (and its errors)."""
    if address.__class__ is str and len(address) == 42 and address[:2] in ("0x", "0X"):
        lower = address[2:].lower()  # type: ignore[union-attr]
        if _HEX.issuperset(lower):
            digest = keccak(lower.encode()).hex()
            return "0x" + "".join(
                c.upper() if d in "89abcdef" else c for c, d in zip(lower, digest[:40], strict=True)
            )
    return to_checksum_address(address)


_HEX = frozenset("0123456789abcdef")


def _as_bytes(value: Any) -> bytes:
    """Plain bytes (a HexBytes slice is a new HexBytes, built slowly: 401 logs, ~2,000 slices)."""
    if type(value) is bytes:
        return value
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, str) and value.startswith("0x"):
        return bytes.fromhex(value[2:])
    return bytes(HexBytes(value))


def _quantity(value: Any) -> int:
    """A log's block number or index: an int, or the node's hex string (a raw JSON-RPC log)."""
    return int(value, 16) if isinstance(value, str) else int(value)


def _web3_log(log: Any) -> Any:
    """``log`` as web3's decoder takes it: a raw JSON-RPC log (hex strings) typed, else as is."""
    if not isinstance(log.get("blockNumber"), str):
        return log
    typed = dict(log)
    for key in ("blockNumber", "logIndex", "transactionIndex"):
        if isinstance(log.get(key), str):
            typed[key] = int(log[key], 16)
    for key in ("data", "blockHash", "transactionHash"):
        if isinstance(log.get(key), str):
            typed[key] = HexBytes(log[key])
    typed["topics"] = [HexBytes(t) for t in log["topics"]]
    typed["address"] = checksum(log["address"])
    return typed


Word = Callable[[bytes], Any]


def _word_decoder(abi_type: str) -> Word | None:
    """How to read one 32-byte ABI word of an elementary static type; None for any other type."""
    if abi_type == "address":
        return lambda w: checksum("0x" + w[12:].hex())
    if abi_type == "bool":
        return lambda w: w[31] == 1
    if abi_type.startswith("uint") and abi_type[4:].isdigit():
        return lambda w: int.from_bytes(w, "big")
    if abi_type.startswith("int") and abi_type[3:].isdigit():
        return lambda w: int.from_bytes(w, "big", signed=True)
    if abi_type.startswith("bytes") and abi_type[5:].isdigit():
        size = int(abi_type[5:])
        return lambda w: w[:size]
    return None


_DYNAMIC_INDEXED = ("string", "bytes", "tuple")


@dataclass(frozen=True)
class _Compiled:
    """One event ABI made ready for decoding: the word readers of its topics and data."""

    name: str
    abi: dict[str, Any]
    topics: tuple[tuple[str, Word], ...] | None  # None: use web3's decoder
    data: tuple[tuple[str, Word], ...] | None


def _compile(abi: dict[str, Any]) -> _Compiled:
    topics: list[tuple[str, Word]] | None = []
    data: list[tuple[str, Word]] | None = []
    for arg in abi.get("inputs", []):
        t = arg["type"]
        if arg.get("indexed"):
            # An indexed string, bytes, array or struct is its keccak: web3 hands back the bytes32.
            dynamic = t in _DYNAMIC_INDEXED or t.endswith("]") or t.startswith("tuple")
            reader = _word_decoder("bytes32" if dynamic else t)
            if reader is None or topics is None:
                topics = None
            else:
                topics.append((arg["name"], reader))
        else:
            reader = _word_decoder(t)
            if reader is None or data is None:
                data = None
            else:
                data.append((arg["name"], reader))
    fast = topics is not None and data is not None
    return _Compiled(
        name=abi["name"],
        abi=abi,
        topics=tuple(topics) if fast and topics is not None else None,
        data=tuple(data) if fast and data is not None else None,
    )


def web3_event(w3: Web3, abi: dict[str, Any]) -> Any:
    """web3's ``ContractEvent`` for one event ABI (its ``process_log`` is web3's generic decoder)."""
    return w3.eth.contract(abi=[abi]).events[abi["name"]]()


class EventDecoder:
    """Knows the event ABIs of a set of deployed contracts (by address)."""

    def __init__(self, w3: Web3) -> None:
        self._w3 = w3
        self._by_address: dict[str, tuple[str, dict[bytes, _Compiled]]] = {}
        self._generic: dict[int, Any] = {}  # id(spec) -> web3's ContractEvent, built on first use

    def add_contract(self, name: str, address: str, abi: list[dict[str, Any]]) -> None:
        topics = {
            event_abi_to_log_topic(cast(ABIEvent, e)): _compile(e) for e in abi if e.get("type") == "event"
        }
        self._by_address[checksum(address)] = (name, topics)

    def decode_log(self, log: Any, names: Collection[str] | None = None) -> Event | None:
        """The event for ``log`` (typed as web3 gives it, or raw as the node sent it: the same
        event either way), or None when the emitter or the event is unknown (or, with
        ``names``, not one of them: such logs are not decoded at all)."""
        raw_topics = log["topics"]
        if not raw_topics:
            return None
        known = self._by_address.get(checksum(log["address"]))
        if known is None:
            return None
        contract, events = known
        spec = events.get(_as_bytes(raw_topics[0]))
        if spec is None or (names is not None and spec.name not in names):
            return None
        args = self._args(spec, log)
        return Event(
            contract=contract,
            name=spec.name,
            args=args,
            address=checksum(log["address"]),
            block_number=_quantity(log["blockNumber"]),
            log_index=_quantity(log["logIndex"]),
            tx_hash="0x" + _as_bytes(log["transactionHash"]).hex(),
        )

    def _web3_args(self, spec: _Compiled, log: Any) -> dict[str, Any]:
        """``log``'s arguments by web3's generic (public) decoder."""
        event = self._generic.get(id(spec))
        if event is None:
            event = self._generic[id(spec)] = web3_event(self._w3, spec.abi)
        return dict(event.process_log(_web3_log(log))["args"])

    def _args(self, spec: _Compiled, log: Any) -> dict[str, Any]:
        if spec.topics is None or spec.data is None:
            return self._web3_args(spec, log)
        topics = log["topics"]
        data = _as_bytes(log["data"])
        if len(topics) != len(spec.topics) + 1 or len(data) < 32 * len(spec.data):
            # Not what the ABI says (another contract's event with the same signature, say):
            # web3's decoder raises the error it always raised.
            return self._web3_args(spec, log)
        found: dict[str, Any] = {}
        for (name, read), topic in zip(spec.topics, topics[1:], strict=True):
            found[name] = read(_as_bytes(topic))
        for i, (name, read) in enumerate(spec.data):
            found[name] = read(data[32 * i : 32 * i + 32])
        # web3 lists the indexed arguments first; the same order here keeps stored JSON identical.
        return {name: found[name] for name, _ in (*spec.topics, *spec.data)}

    def decode_receipt(self, receipt: Any, names: Collection[str] | None = None) -> list[Event]:
        return self.decode_logs(receipt["logs"], names)

    def decode_logs(self, logs: Iterable[Any], names: Collection[str] | None = None) -> list[Event]:
        return [e for e in (self.decode_log(log, names) for log in logs) if e is not None]

    def addresses(self) -> list[str]:
        return list(self._by_address)
