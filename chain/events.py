"""Decode logs into typed :class:`Event` objects, for every contract the decoder knows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eth_utils import event_abi_to_log_topic, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3._utils.events import get_event_data


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


class EventDecoder:
    """Knows the event ABIs of a set of deployed contracts (by address)."""

    def __init__(self, w3: Web3) -> None:
        self._w3 = w3
        self._by_address: dict[str, tuple[str, dict[bytes, dict[str, Any]]]] = {}

    def add_contract(self, name: str, address: str, abi: list[dict[str, Any]]) -> None:
        topics = {event_abi_to_log_topic(e): e for e in abi if e.get("type") == "event"}
        self._by_address[to_checksum_address(address)] = (name, topics)

    def decode_log(self, log: Any) -> Event | None:
        """The event for ``log``, or None when the emitter or the event is unknown."""
        known = self._by_address.get(to_checksum_address(log["address"]))
        if known is None or not log["topics"]:
            return None
        contract, topics = known
        abi = topics.get(bytes(HexBytes(log["topics"][0])))
        if abi is None:
            return None
        data = get_event_data(self._w3.codec, abi, log)
        return Event(
            contract=contract,
            name=data["event"],
            args=dict(data["args"]),
            address=to_checksum_address(log["address"]),
            block_number=int(log["blockNumber"]),
            log_index=int(log["logIndex"]),
            tx_hash="0x" + bytes(HexBytes(log["transactionHash"])).hex(),
        )

    def decode_receipt(self, receipt: Any) -> list[Event]:
        return [e for e in (self.decode_log(log) for log in receipt["logs"]) if e is not None]

    def decode_logs(self, logs: Iterable[Any]) -> list[Event]:
        return [e for e in (self.decode_log(log) for log in logs) if e is not None]

    def addresses(self) -> list[str]:
        return list(self._by_address)
