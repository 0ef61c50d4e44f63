"""The collective family's model: a collective and its proposals (``CollectiveFund``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from chain.clients.collective import OfficerRole, ProposalStatus, Tier

MAX_OFFICERS = 16
YEAR = 2025  # the fiscal year the collectives open with


@dataclass
class Prop:
    collective: int
    proposer: str
    payee: str
    amount: int
    line: int
    committee_required: int
    township_required: bool
    delay: int
    expires_at: int
    epoch: int
    year: int
    status: ProposalStatus = ProposalStatus.PENDING
    approvals: int = 0  # slot bitmap, as on chain
    approvers: list[str] = field(default_factory=list)  # who, for the invariant
    township_approved: bool = False
    ready_at: int = 0
    executed_day: int | None = None  # Beijing day number of the execution

    @property
    def committee(self) -> int:
        return len(self.approvers)

    @property
    def approved(self) -> bool:
        return self.committee >= self.committee_required and (
            self.township_approved or not self.township_required
        )


@dataclass
class Coll:
    supervisor: str
    officers: dict[str, tuple[OfficerRole, int]]  # account -> (role, slot)
    tiers: list[Tier]
    lifetime: int
    budgets: list[int]
    spent: list[int]
    epoch: int = 2
    year: int = YEAR
    frozen: bool = False
    balance: int = 0
    income: int = 0
    paid: int = 0

    def role(self, account: str) -> OfficerRole:
        return self.officers.get(account, (OfficerRole.NONE, 0))[0]

    def free_slot(self) -> int | None:
        used = {slot for _, slot in self.officers.values()}
        return next((s for s in range(MAX_OFFICERS) if s not in used), None)
