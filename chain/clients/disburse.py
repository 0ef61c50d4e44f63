"""Typed client for payroll and subsidy disbursement (contracts/disburse/Disbursement.sol)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from web3._utils.contracts import copy_contract_function
from web3.contract.contract import ContractFunction

from chain.clients.base import ContractClient
from chain.merkle import MerkleTree
from chain.sender import TxResult

MAX_ROWS = 200  # Disbursement.MAX_ROWS
MAX_CHUNKS_PER_CALL = 5  # Disbursement.MAX_CHUNKS_PER_CALL


class BatchKind(IntEnum):
    NONE = 0
    EXPLICIT = 1
    MERKLE = 2


class BatchStatus(IntEnum):
    NONE = 0
    DRAFT = 1
    APPROVED = 2
    CLOSED = 3
    CANCELLED = 4


class Officer(IntEnum):
    NONE = 0
    MAKER = 1
    CHECKER = 2


@dataclass(frozen=True)
class Row:
    recipient: str
    amount: int

    def abi(self) -> tuple[str, int]:
        return (self.recipient, self.amount)


@dataclass(frozen=True)
class Batch:
    id: bytes
    payer: str
    kind: BatchKind
    status: BatchStatus
    ends_at: int
    creator: str
    chunk_count: int
    row_count: int
    approver: str
    purpose: bytes
    root: bytes
    total: int
    rows_total: int
    funded: int
    paid: int
    reclaimed: int
    exceptions: int

    @property
    def outstanding(self) -> int:
        return self.funded - self.paid - self.reclaimed


def batch_ref(reference: str) -> bytes:
    """The bytes32 form of a payer's batch reference (its own batch number, a UUID)."""
    return keccak(f"xcpay:disbursement:{reference}".encode())


def batch_id(payer: str, reference: str) -> bytes:
    """Mirrors ``Disbursement.batchIdOf``: the on-chain id of ``payer``'s batch ``reference``.

    Ids are scoped by payer, so a stranger cannot take (squat) the id of another payer's batch.
    """
    return keccak(encode(["address", "bytes32"], [payer, batch_ref(reference)]))


def purpose_tag(purpose: str) -> bytes:
    """Purpose tags ("salary", "subsidy", "bonus") as bytes32: short ASCII, right-padded."""
    raw = purpose.encode()
    if not raw or len(raw) > 32:
        raise ValueError("a purpose is 1 to 32 bytes")
    return raw.ljust(32, b"\0")


def purpose_name(tag: bytes) -> str:
    return bytes(tag).rstrip(b"\0").decode(errors="replace")


def leaf_hash(batch: bytes, index: int, recipient: str, amount: int) -> bytes:
    """Mirrors ``Disbursement.leafHash``: keccak(keccak(abi.encode(id, index, recipient, amount)))."""
    inner = keccak(encode(["bytes32", "uint256", "address", "uint256"], [batch, index, recipient, amount]))
    return keccak(inner)


LEAF_ENCODING = ("bytes32", "uint256", "address", "uint256")  # (batch id, index, recipient, amount)


def merkle_tree(batch: bytes, rows: Sequence[Row]) -> MerkleTree:
    """The batch's ``StandardMerkleTree``: value i is (batch id, i, recipient, amount)."""
    return MerkleTree([(batch, i, r.recipient, r.amount) for i, r in enumerate(rows)], LEAF_ENCODING)


class DisbursementClient(ContractClient):
    """The Disbursement contract: ``*_call`` methods build a write as a ``ContractFunction`` for
    whichever pipeline sends it (the services' Operations, or :meth:`Transactor.transact` in the
    methods below, used by tests, deploy and scripts); reads return typed values."""

    CONTRACT = "Disbursement"

    # -- calls (one per write; nothing is sent here) ----------------------------------------

    def set_officer_call(self, account: str, role: Officer) -> ContractFunction:
        return self.contract.functions.setOfficer(account, int(role))

    def create_batch_call(
        self,
        reference: str,
        payer: str,
        purpose: bytes,
        ends_at: int,
        total: int,
        root: bytes = b"\0" * 32,
        leaves: int = 0,
    ) -> ContractFunction:
        """Draft ``payer``'s batch ``reference``: explicit with the zero root and no leaves, else
        Merkle (leaves commit to ``batch_id(payer, reference)``)."""
        return self.contract.functions.createBatch(
            batch_ref(reference), payer, purpose, ends_at, total, root, leaves
        )

    def add_rows_call(self, bid: bytes, rows: Sequence[Row]) -> ContractFunction:
        return self._rows_call("addRows", bid, [r.abi() for r in rows])

    def add_chunks_call(self, bid: bytes, chunks: Sequence[Sequence[Row]]) -> ContractFunction:
        """The next ``len(chunks)`` chunks (at most MAX_CHUNKS_PER_CALL) in one transaction."""
        return self._rows_call("addChunks", bid, [[r.abi() for r in rows] for rows in chunks])

    def cancel_call(self, bid: bytes) -> ContractFunction:
        return self.contract.functions.cancel(bid)

    def approve_call(self, bid: bytes) -> ContractFunction:
        return self.contract.functions.approve(bid)

    def pay_chunk_call(self, bid: bytes, chunk: int, rows: Sequence[Row]) -> ContractFunction:
        return self._rows_call("payChunk", bid, chunk, [r.abi() for r in rows])

    def _rows_call(self, name: str, *args: Any) -> ContractFunction:
        """``contract.functions.<name>(*args)`` for a function with one overload, without web3's
        search for the overload the arguments fit (it checks that every row's address and amount
        could be encoded: ~30 ms a 1,000-row call, twice per row of a payroll). The arguments are
        checked when the call is encoded (``chain.sender.encode_call``; a value out of range is
        eth_abi's error then, as it was web3's here)."""
        return copy_contract_function(self.contract.functions[name], *args)

    def claim_call(self, bid: bytes, index: int, row: Row, proof: Sequence[bytes]) -> ContractFunction:
        return self.contract.functions.claim(bid, index, row.recipient, row.amount, list(proof))

    def push_claims_call(
        self, bid: bytes, claims: Sequence[tuple[int, Row, Sequence[bytes]]]
    ) -> ContractFunction:
        args = [(i, r.recipient, r.amount, list(p)) for i, r, p in claims]
        return self.contract.functions.pushClaims(bid, args)

    def retry_exception_call(self, bid: bytes, index: int) -> ContractFunction:
        return self.contract.functions.retryException(bid, index)

    def reclaim_call(self, bid: bytes) -> ContractFunction:
        return self.contract.functions.reclaim(bid)

    def recover_exception_call(self, bid: bytes, index: int, lost: str, successor: str) -> ContractFunction:
        """Anyone: exception ``index`` owed to the retired ``lost`` wallet is owed to its registered
        successor (paid by ``retry_exception_call``)."""
        return self.contract.functions.recoverException(bid, index, lost, successor)

    def recover_leaf_call(
        self, bid: bytes, index: int, lost: Row, proof: Sequence[bytes], successor: str
    ) -> ContractFunction:
        """Anyone: unclaimed Merkle leaf ``index`` (``lost``: its row, addressed to the retired
        wallet) becomes an exception owed to the wallet's registered successor."""
        return self.contract.functions.recoverLeaf(
            bid, index, lost.recipient, lost.amount, list(proof), successor
        )

    # -- payer and makers ------------------------------------------------------------------

    def set_officer(self, payer: LocalAccount, account: str, role: Officer) -> TxResult:
        return self.tx.transact(payer, self.set_officer_call(account, role))

    def create_explicit(
        self, maker: LocalAccount, reference: str, payer: str, purpose: bytes, ends_at: int, total: int
    ) -> TxResult:
        """Draft ``payer``'s explicit batch ``reference``; its id is ``batch_id(payer, reference)``."""
        return self.tx.transact(maker, self.create_batch_call(reference, payer, purpose, ends_at, total))

    def create_merkle(
        self,
        maker: LocalAccount,
        reference: str,
        payer: str,
        purpose: bytes,
        ends_at: int,
        total: int,
        root: bytes,
        leaves: int,
    ) -> TxResult:
        """Draft ``payer``'s Merkle batch ``reference``; leaves commit to ``batch_id(payer, reference)``."""
        fn = self.create_batch_call(reference, payer, purpose, ends_at, total, root, leaves)
        return self.tx.transact(maker, fn)

    def add_rows(self, maker: LocalAccount, bid: bytes, rows: Sequence[Row]) -> TxResult:
        return self.tx.transact(maker, self.add_rows_call(bid, rows))

    def add_chunks(self, maker: LocalAccount, bid: bytes, chunks: Sequence[Sequence[Row]]) -> TxResult:
        return self.tx.transact(maker, self.add_chunks_call(bid, chunks))

    def cancel(self, account: LocalAccount, bid: bytes) -> TxResult:
        return self.tx.transact(account, self.cancel_call(bid))

    # -- checker ---------------------------------------------------------------------------

    def approve(self, checker: LocalAccount, bid: bytes) -> TxResult:
        return self.tx.transact(checker, self.approve_call(bid))

    # -- payouts ---------------------------------------------------------------------------

    def pay_chunk(self, account: LocalAccount, bid: bytes, chunk: int, rows: Sequence[Row]) -> TxResult:
        return self.tx.transact(account, self.pay_chunk_call(bid, chunk, rows))

    def claim(
        self, account: LocalAccount, bid: bytes, index: int, row: Row, proof: Sequence[bytes]
    ) -> TxResult:
        return self.tx.transact(account, self.claim_call(bid, index, row, proof))

    def push_claims(
        self, account: LocalAccount, bid: bytes, claims: Sequence[tuple[int, Row, Sequence[bytes]]]
    ) -> TxResult:
        return self.tx.transact(account, self.push_claims_call(bid, claims))

    def retry_exception(self, account: LocalAccount, bid: bytes, index: int) -> TxResult:
        return self.tx.transact(account, self.retry_exception_call(bid, index))

    def reclaim(self, account: LocalAccount, bid: bytes) -> TxResult:
        return self.tx.transact(account, self.reclaim_call(bid))

    # -- views -----------------------------------------------------------------------------

    def batch(self, bid: bytes) -> Batch:
        raw = self.contract.functions.batchOf(bid).call()
        return Batch(bid, raw[0], BatchKind(raw[1]), BatchStatus(raw[2]), *raw[3:])

    def exception(self, bid: bytes, index: int) -> Row | None:
        recipient, amount = self.contract.functions.exceptionOf(bid, index).call()
        return Row(recipient, amount) if amount else None

    def is_claimed(self, bid: bytes, index: int) -> bool:
        return bool(self.contract.functions.isClaimed(bid, index).call())

    def officer(self, payer: str, account: str) -> Officer:
        return Officer(self.contract.functions.officerOf(payer, account).call())

    def totals(self) -> dict[str, int]:
        """The contract's running totals: ``funded``, ``paid``, ``reclaimed`` (fen)."""
        f = self.contract.functions
        return {
            "funded": int(f.totalFunded().call()),
            "paid": int(f.totalPaid().call()),
            "reclaimed": int(f.totalReclaimed().call()),
        }
