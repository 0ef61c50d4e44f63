"""Many chain reads in few round trips: JSON-RPC 2.0 batches, a standard every node serves.

A reader that asks for ten thousand balances one ``eth_call`` at a time pays ten thousand round
trips, and web3's per-call checks add an ``eth_chainId`` to each (the auditor's reconciliation
made 90,371 requests after a 10k payroll, 60,046 of them ``eth_chainId``). :class:`BatchReader`
sends raw requests in batches of :data:`BATCH` (geth and Besu refuse batches over 1,000 items by
default), bypassing web3's middleware, and returns plain values. Over a provider without batches
(the in-process eth-tester node) it asks one request at a time through web3, same answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hexbytes import HexBytes
from web3 import Web3

BATCH = 500


class BatchError(RuntimeError):
    """The node answered a request of a batch with an error (or not at all)."""


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value.lower()
    return "0x" + bytes(value).hex()


class BatchReader:
    """Batched reads against one node; every method keeps the order of its arguments."""

    def __init__(self, w3: Web3, size: int = BATCH) -> None:
        self.w3 = w3
        self.size = size
        self.round_trips = 0  # HTTP requests (or single calls) made, for the benchmarks
        self._batching = True  # until the provider says it cannot

    def request(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """The results of ``calls`` (method, params), in order; raw JSON values over a batching
        provider, web3-formatted ones otherwise (the methods below normalise both)."""
        out: list[Any] = []
        for start in range(0, len(calls), self.size):
            chunk = list(calls[start : start + self.size])
            if self._batching:
                try:
                    answers = self.w3.provider.make_batch_request(chunk)  # type: ignore[arg-type,attr-defined]
                except (NotImplementedError, AttributeError):  # eth-tester's provider has none
                    self._batching = False
                else:
                    self.round_trips += 1
                    out.extend(self._results(chunk, answers))
                    continue
            self.round_trips += len(chunk)
            out.extend(self.w3.manager.request_blocking(m, p) for m, p in chunk)  # type: ignore[arg-type]
        return out

    @staticmethod
    def _results(chunk: list[tuple[str, list[Any]]], answers: Any) -> list[Any]:
        if not isinstance(answers, list) or len(answers) != len(chunk):
            raise BatchError(f"the node refused a batch of {len(chunk)} requests: {answers}")
        out = []
        for (method, _), answer in zip(chunk, answers, strict=True):
            if "error" in answer or "result" not in answer:
                raise BatchError(f"{method}: {answer.get('error', answer)}")
            out.append(answer["result"])
        return out

    def calls(self, calls: Sequence[tuple[str, bytes | str]], block: int | str = "latest") -> list[bytes]:
        """``eth_call`` of (contract address, call data) each, at ``block``: the return data."""
        at = hex(block) if isinstance(block, int) else block
        results = self.request([("eth_call", [{"to": to, "data": _hex(data)}, at]) for to, data in calls])
        return [bytes(HexBytes(r)) for r in results]

    def block_hashes(self, numbers: Sequence[int]) -> list[str | None]:
        """The hash of each block, None for a block the node does not have."""
        blocks = self.request([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        return [None if b is None else _hex(b["hash"]) for b in blocks]

    def senders(self, tx_hashes: Sequence[str]) -> list[str | None]:
        """Who signed each transaction (checksummed), None for one the node does not know."""
        txs = self.request([("eth_getTransactionByHash", [h]) for h in tx_hashes])
        return [None if t is None else Web3.to_checksum_address(t["from"]) for t in txs]

    def receipt_status(self, tx_hashes: Sequence[str]) -> list[int | None]:
        """Each transaction's receipt status (1 success, 0 reverted), None when it has none."""
        receipts = self.request([("eth_getTransactionReceipt", [h]) for h in tx_hashes])
        return [None if r is None else _int(r["status"]) for r in receipts]

    def logs(self, addresses: Sequence[str], start: int, end: int, step: int) -> list[dict[str, Any]]:
        """Every log of ``addresses`` in blocks ``start``..``end``, asked ``step`` blocks at a time
        (nodes bound the range of one ``eth_getLogs``), each as web3's decoders take it."""
        ranges = [(a, min(a + step - 1, end)) for a in range(start, end + 1, step)]
        pages = self.request(
            [
                ("eth_getLogs", [{"fromBlock": hex(a), "toBlock": hex(b), "address": list(addresses)}])
                for a, b in ranges
            ]
        )
        return [
            {
                "address": log["address"],
                "topics": [HexBytes(t) for t in log["topics"]],
                "data": HexBytes(log["data"]),
                "blockNumber": _int(log["blockNumber"]),
                "logIndex": _int(log["logIndex"]),
                "transactionHash": HexBytes(log["transactionHash"]),
                "transactionIndex": _int(log["transactionIndex"]),
                "blockHash": HexBytes(log["blockHash"]),
            }
            for page in pages
            for log in page
        ]
