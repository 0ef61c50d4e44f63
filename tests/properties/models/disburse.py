"""The disburse family's model: a batch (``Disbursement``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from chain.clients.disburse import BatchKind, BatchStatus, Row
from chain.merkle import MerkleTree


@dataclass
class Batch:
    bid: bytes
    kind: BatchKind
    rows: list[Row]
    chunks: list[tuple[int, int]]  # explicit: (first index, count)
    total: int
    ends_at: int
    tree: MerkleTree | None = None
    status: BatchStatus = BatchStatus.DRAFT
    funded: int = 0
    paid: int = 0
    reclaimed: int = 0
    exceptions: dict[int, int] = field(default_factory=dict)  # index -> amount
    chunks_paid: set[int] = field(default_factory=set)
    claimed: set[int] = field(default_factory=set)

    @property
    def outstanding(self) -> int:
        return self.funded - self.paid - self.reclaimed
