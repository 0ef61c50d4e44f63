"""The voucher family's model: a programme and its holdings (``VoucherProgrammes``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from chain.clients.vouchers import Grant, Terms
from chain.merkle import MerkleTree


@dataclass
class Programme:
    pid: int
    terms: Terms
    categories: list[int]
    listed: set[str]
    merchant_list: bool
    leaves: list[Grant] = field(default_factory=list)
    tree: MerkleTree | None = None
    granted: int = 0
    spent: int = 0
    returned_grants: int = 0
    returned_budget: int = 0
    budget_returned: bool = False
    holdings: dict[str, list[int]] = field(default_factory=dict)  # holder -> [granted, spent, returned]
    by_category: dict[int, int] = field(default_factory=dict)
    claimed: set[int] = field(default_factory=set)

    def balance(self, holder: str) -> int:
        g, s, r = self.holdings.get(holder, [0, 0, 0])
        return g - s - r

    @property
    def outstanding(self) -> int:
        return self.granted - self.spent - self.returned_grants

    @property
    def ungranted(self) -> int:
        return self.terms.budget - self.granted - self.returned_budget
