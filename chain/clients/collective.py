"""Typed client for three-assets collective fund supervision (contracts/collective/CollectiveFund.sol)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from chain.clients.base import ContractClient
from chain.sender import TxResult

ZERO_HASH = b"\x00" * 32


class OfficerRole(IntEnum):
    """Mirrors ``CollectiveFund.OfficerRole``."""

    NONE = 0
    COMMITTEE = 1  # proposes, approves, executes
    TREASURER = 2  # proposes, executes; never approves


class ProposalStatus(IntEnum):
    """Mirrors ``CollectiveFund.ProposalStatus`` (what is stored)."""

    NONE = 0
    PENDING = 1
    EXECUTED = 2
    REJECTED = 3
    CANCELLED = 4


class ProposalState(IntEnum):
    """Mirrors ``CollectiveFund.ProposalState`` (status, epoch, clock and approvals together)."""

    NONE = 0
    PENDING = 1
    TIMELOCKED = 2
    EXECUTABLE = 3
    EXECUTED = 4
    REJECTED = 5
    CANCELLED = 6
    EXPIRED = 7
    STALE = 8


class AssetKind(IntEnum):
    """Mirrors ``CollectiveFund.AssetKind``."""

    NONE = 0
    PROPERTY = 1  # buildings, equipment, enterprises
    RESOURCE = 2  # land, forest, ponds


@dataclass(frozen=True)
class Tier:
    """Amounts up to ``max_amount`` fen (inclusive) need ``committee`` committee approvals, the
    supervisor's too when ``township``, and wait ``delay`` seconds once approved."""

    max_amount: int
    committee: int
    township: bool = False
    delay: int = 0

    def as_tuple(self) -> tuple[int, int, bool, int]:
        return (self.max_amount, self.committee, self.township, self.delay)


@dataclass(frozen=True)
class Collective:
    id: int
    supervisor: str
    frozen: bool
    year: int
    epoch: int
    line_count: int
    slots_used: int
    proposal_lifetime: int
    name_hash: bytes
    balance: int
    total_income: int
    total_paid: int


@dataclass(frozen=True)
class Line:
    name: bytes
    budget: int
    spent: int

    @property
    def remaining(self) -> int:
        return self.budget - self.spent


@dataclass(frozen=True)
class Officer:
    role: OfficerRole
    slot: int


@dataclass(frozen=True)
class Proposal:
    id: int
    proposer: str
    line: int
    status: ProposalStatus
    committee_required: int
    committee: int
    township_required: bool
    township_approved: bool
    approvals: int  # bitmap of officer slots
    epoch: int
    payee: str
    expires_at: int
    delay: int
    amount: int
    proposed_at: int
    ready_at: int
    collective_id: int
    year: int
    purpose_hash: bytes
    attachment_hash: bytes

    @property
    def approved(self) -> bool:
        return self.committee >= self.committee_required and (
            self.township_approved or not self.township_required
        )

    @property
    def executable_at(self) -> int | None:
        return self.ready_at + self.delay if self.ready_at else None


@dataclass(frozen=True)
class Asset:
    id: int
    collective_id: int
    kind: AssetKind
    retired: bool
    counterparty: str
    contract_ends_at: int
    value: int
    annual_income: int
    description_hash: bytes
    contract_hash: bytes
    income_received: int


def _tiers(tiers: Sequence[Tier]) -> list[tuple[int, int, bool, int]]:
    return [t.as_tuple() for t in tiers]


class CollectiveClient(ContractClient):
    """Every call of CollectiveFund; writes take the signing account explicitly."""

    CONTRACT = "CollectiveFund"

    @property
    def fund(self) -> Contract:
        """The CollectiveFund contract (``contract``), by the name callers knew it."""
        return self.contract

    # -- township --------------------------------------------------------------------------
    #
    # Each write has a ``*_call`` twin that builds the call without sending it: the services send
    # those through ``Operations`` (one pipeline signs, stores and sends), tests and scripts
    # through the methods below (``Transactor.transact``).

    def create_call(
        self,
        supervisor: str,
        name_hash: bytes,
        officers: Sequence[tuple[str, OfficerRole]],
        tiers: Sequence[Tier],
        proposal_lifetime: int,
    ) -> ContractFunction:
        return self.contract.functions.createCollective(
            supervisor,
            name_hash,
            [a for a, _ in officers],
            [int(r) for _, r in officers],
            _tiers(tiers),
            proposal_lifetime,
        )

    def create(
        self,
        township: LocalAccount,
        supervisor: str,
        name_hash: bytes,
        officers: Sequence[tuple[str, OfficerRole]],
        tiers: Sequence[Tier],
        proposal_lifetime: int,
    ) -> tuple[int, TxResult]:
        """Create a collective; returns (collective id, result)."""
        fn = self.create_call(supervisor, name_hash, officers, tiers, proposal_lifetime)
        result = self.tx.transact(township, fn)
        return int(result.named("CollectiveCreated")[0]["collectiveId"]), result

    def set_supervisor_call(self, collective_id: int, supervisor: str) -> ContractFunction:
        return self.contract.functions.setSupervisor(collective_id, supervisor)

    def set_supervisor(self, township: LocalAccount, collective_id: int, supervisor: str) -> TxResult:
        return self.tx.transact(township, self.set_supervisor_call(collective_id, supervisor))

    def set_split_window_call(self, window_days: int) -> ContractFunction:
        """Township: payments to a payee this many days back count toward a new proposal's tier."""
        return self.contract.functions.setSplitWindow(window_days)

    def set_split_window(self, township: LocalAccount, window_days: int) -> TxResult:
        return self.tx.transact(township, self.set_split_window_call(window_days))

    # -- supervisor ------------------------------------------------------------------------

    def set_officer_call(self, collective_id: int, account: str, role: OfficerRole) -> ContractFunction:
        return self.contract.functions.setOfficer(collective_id, account, int(role))

    def set_officer(
        self, supervisor: LocalAccount, collective_id: int, account: str, role: OfficerRole
    ) -> TxResult:
        return self.tx.transact(supervisor, self.set_officer_call(collective_id, account, role))

    def set_rules_call(
        self, collective_id: int, tiers: Sequence[Tier], proposal_lifetime: int
    ) -> ContractFunction:
        return self.contract.functions.setRules(collective_id, _tiers(tiers), proposal_lifetime)

    def set_rules(
        self, supervisor: LocalAccount, collective_id: int, tiers: Sequence[Tier], proposal_lifetime: int
    ) -> TxResult:
        return self.tx.transact(supervisor, self.set_rules_call(collective_id, tiers, proposal_lifetime))

    def open_year_call(
        self, collective_id: int, year: int, lines: Sequence[tuple[bytes, int]]
    ) -> ContractFunction:
        """Open fiscal ``year`` with budget ``lines`` as (name, budget in fen)."""
        return self.contract.functions.openYear(
            collective_id, year, [n for n, _ in lines], [b for _, b in lines]
        )

    def open_year(
        self, supervisor: LocalAccount, collective_id: int, year: int, lines: Sequence[tuple[bytes, int]]
    ) -> TxResult:
        return self.tx.transact(supervisor, self.open_year_call(collective_id, year, lines))

    def amend_budget_call(self, collective_id: int, line: int, budget: int) -> ContractFunction:
        return self.contract.functions.amendBudget(collective_id, line, budget)

    def amend_budget(self, supervisor: LocalAccount, collective_id: int, line: int, budget: int) -> TxResult:
        return self.tx.transact(supervisor, self.amend_budget_call(collective_id, line, budget))

    def freeze_call(self, collective_id: int, reason_hash: bytes = ZERO_HASH) -> ContractFunction:
        return self.contract.functions.freeze(collective_id, reason_hash)

    def freeze(
        self, supervisor: LocalAccount, collective_id: int, reason_hash: bytes = ZERO_HASH
    ) -> TxResult:
        return self.tx.transact(supervisor, self.freeze_call(collective_id, reason_hash))

    def unfreeze_call(self, collective_id: int) -> ContractFunction:
        return self.contract.functions.unfreeze(collective_id)

    def unfreeze(self, supervisor: LocalAccount, collective_id: int) -> TxResult:
        return self.tx.transact(supervisor, self.unfreeze_call(collective_id))

    # -- proposals -------------------------------------------------------------------------

    def propose_call(
        self,
        collective_id: int,
        payee: str,
        amount: int,
        line: int,
        purpose_hash: bytes = ZERO_HASH,
        attachment_hash: bytes = ZERO_HASH,
    ) -> ContractFunction:
        return self.contract.functions.propose(
            collective_id, payee, amount, line, purpose_hash, attachment_hash
        )

    def propose(
        self,
        officer: LocalAccount,
        collective_id: int,
        payee: str,
        amount: int,
        line: int,
        purpose_hash: bytes = ZERO_HASH,
        attachment_hash: bytes = ZERO_HASH,
    ) -> tuple[int, TxResult]:
        """Propose a payment; returns (proposal id, result)."""
        fn = self.propose_call(collective_id, payee, amount, line, purpose_hash, attachment_hash)
        result = self.tx.transact(officer, fn)
        return int(result.named("ProposalCreated")[0]["proposalId"]), result

    def approve_call(self, proposal_id: int) -> ContractFunction:
        return self.contract.functions.approve(proposal_id)

    def approve(self, approver: LocalAccount, proposal_id: int) -> TxResult:
        return self.tx.transact(approver, self.approve_call(proposal_id))

    def reject_call(self, proposal_id: int, reason_hash: bytes = ZERO_HASH) -> ContractFunction:
        return self.contract.functions.reject(proposal_id, reason_hash)

    def reject(self, approver: LocalAccount, proposal_id: int, reason_hash: bytes = ZERO_HASH) -> TxResult:
        return self.tx.transact(approver, self.reject_call(proposal_id, reason_hash))

    def cancel_call(self, proposal_id: int) -> ContractFunction:
        return self.contract.functions.cancel(proposal_id)

    def cancel(self, proposer: LocalAccount, proposal_id: int) -> TxResult:
        return self.tx.transact(proposer, self.cancel_call(proposal_id))

    def execute_call(self, proposal_id: int) -> ContractFunction:
        return self.contract.functions.execute(proposal_id)

    def execute(self, officer: LocalAccount, proposal_id: int) -> TxResult:
        return self.tx.transact(officer, self.execute_call(proposal_id))

    # -- register and income ---------------------------------------------------------------

    def register_asset_call(
        self, collective_id: int, kind: AssetKind, value: int, description_hash: bytes = ZERO_HASH
    ) -> ContractFunction:
        return self.contract.functions.registerAsset(collective_id, int(kind), value, description_hash)

    def register_asset(
        self,
        officer: LocalAccount,
        collective_id: int,
        kind: AssetKind,
        value: int,
        description_hash: bytes = ZERO_HASH,
    ) -> tuple[int, TxResult]:
        """Register an asset or resource; returns (asset id, result)."""
        fn = self.register_asset_call(collective_id, kind, value, description_hash)
        result = self.tx.transact(officer, fn)
        return int(result.named("AssetRegistered")[0]["assetId"]), result

    def set_income_contract_call(
        self,
        asset_id: int,
        counterparty: str,
        annual_income: int,
        ends_at: int,
        contract_hash: bytes = ZERO_HASH,
    ) -> ContractFunction:
        return self.contract.functions.setIncomeContract(
            asset_id, counterparty, annual_income, ends_at, contract_hash
        )

    def set_income_contract(
        self,
        officer: LocalAccount,
        asset_id: int,
        counterparty: str,
        annual_income: int,
        ends_at: int,
        contract_hash: bytes = ZERO_HASH,
    ) -> TxResult:
        fn = self.set_income_contract_call(asset_id, counterparty, annual_income, ends_at, contract_hash)
        return self.tx.transact(officer, fn)

    def revalue_asset_call(
        self, asset_id: int, value: int, evidence_hash: bytes = ZERO_HASH
    ) -> ContractFunction:
        return self.contract.functions.revalueAsset(asset_id, value, evidence_hash)

    def revalue_asset(
        self, supervisor: LocalAccount, asset_id: int, value: int, evidence_hash: bytes = ZERO_HASH
    ) -> TxResult:
        return self.tx.transact(supervisor, self.revalue_asset_call(asset_id, value, evidence_hash))

    def retire_asset_call(self, asset_id: int, reason_hash: bytes = ZERO_HASH) -> ContractFunction:
        return self.contract.functions.retireAsset(asset_id, reason_hash)

    def retire_asset(
        self, supervisor: LocalAccount, asset_id: int, reason_hash: bytes = ZERO_HASH
    ) -> TxResult:
        return self.tx.transact(supervisor, self.retire_asset_call(asset_id, reason_hash))

    def approve_cash_call(self, amount: int) -> ContractFunction:
        """Let the fund pull ``amount`` fen from the signer (before ``record_income``)."""
        return self.cash.functions.approve(self.contract.address, amount)

    def approve_cash(self, payer: LocalAccount, amount: int) -> TxResult:
        """Let the fund pull ``amount`` fen from ``payer`` (before ``record_income``)."""
        return self.tx.transact(payer, self.approve_cash_call(amount))

    def record_income_call(
        self, collective_id: int, amount: int, asset_id: int = 0, memo_hash: bytes = ZERO_HASH
    ) -> ContractFunction:
        """Pay ``amount`` in, tagged to ``asset_id`` (0: none); the payer must have approved it."""
        return self.contract.functions.recordIncome(collective_id, asset_id, amount, memo_hash)

    def record_income(
        self,
        payer: LocalAccount,
        collective_id: int,
        amount: int,
        asset_id: int = 0,
        memo_hash: bytes = ZERO_HASH,
        *,
        approve: bool = True,
    ) -> TxResult:
        """Approve ``amount`` (unless ``approve=False``) and pay it in, tagged to ``asset_id`` (0: none)."""
        if approve:
            self.approve_cash(payer, amount)
        return self.tx.transact(payer, self.record_income_call(collective_id, amount, asset_id, memo_hash))

    # -- views -----------------------------------------------------------------------------

    def collective(self, collective_id: int) -> Collective:
        raw = self.tx.call(self.contract.functions.collectiveOf(collective_id))
        return Collective(
            collective_id,
            raw[0],
            bool(raw[1]),
            year=int(raw[2]),
            epoch=int(raw[3]),
            line_count=int(raw[4]),
            slots_used=int(raw[5]),
            proposal_lifetime=int(raw[6]),
            name_hash=bytes(raw[7]),
            balance=int(raw[8]),
            total_income=int(raw[9]),
            total_paid=int(raw[10]),
        )

    def tiers(self, collective_id: int) -> list[Tier]:
        return [Tier(int(m), int(c), bool(t), int(d)) for m, c, t, d in self._call("tiersOf", collective_id)]

    def tier_for(self, collective_id: int, amount: int) -> Tier:
        m, c, t, d = self._call("tierFor", collective_id, amount)
        return Tier(int(m), int(c), bool(t), int(d))

    def tier_for_payment(self, collective_id: int, payee: str, amount: int) -> Tier:
        """The tier a proposal of ``amount`` to ``payee`` gets now: split payments to it included."""
        m, c, t, d = self._call("tierForPayment", collective_id, payee, amount)
        return Tier(int(m), int(c), bool(t), int(d))

    def recent_to(self, collective_id: int, payee: str) -> int:
        """Pending proposals to ``payee`` plus its payments in the split window (fen)."""
        return int(self._call("recentTo", collective_id, payee))

    def split_window_days(self) -> int:
        return int(self._call("splitWindowDays"))

    def lines(self, collective_id: int) -> list[Line]:
        return [Line(bytes(n), int(b), int(s)) for n, b, s in self._call("linesOf", collective_id)]

    def officer(self, collective_id: int, account: str) -> Officer:
        role, slot = self._call("officerOf", collective_id, account)
        return Officer(OfficerRole(role), int(slot))

    def officers(self, collective_id: int) -> dict[str, OfficerRole]:
        accounts, roles = self._call("officersOf", collective_id)
        return {a: OfficerRole(r) for a, r in zip(accounts, roles, strict=True)}

    def proposal(self, proposal_id: int) -> Proposal:
        raw = self._call("proposalOf", proposal_id)
        return Proposal(
            proposal_id,
            raw[0],
            int(raw[1]),
            ProposalStatus(raw[2]),
            int(raw[3]),
            int(raw[4]),
            bool(raw[5]),
            bool(raw[6]),
            approvals=int(raw[7]),
            epoch=int(raw[8]),
            payee=raw[9],
            expires_at=int(raw[10]),
            delay=int(raw[11]),
            amount=int(raw[12]),
            proposed_at=int(raw[13]),
            ready_at=int(raw[14]),
            collective_id=int(raw[15]),
            year=int(raw[16]),
            purpose_hash=bytes(raw[17]),
            attachment_hash=bytes(raw[18]),
        )

    def proposal_state(self, proposal_id: int) -> ProposalState:
        return ProposalState(self._call("proposalState", proposal_id))

    def has_approved(self, proposal_id: int, account: str) -> bool:
        return bool(self._call("hasApproved", proposal_id, account))

    def asset(self, asset_id: int) -> Asset:
        raw = self._call("assetOf", asset_id)
        return Asset(
            asset_id,
            int(raw[0]),
            AssetKind(raw[1]),
            bool(raw[2]),
            raw[3],
            contract_ends_at=int(raw[4]),
            value=int(raw[5]),
            annual_income=int(raw[6]),
            description_hash=bytes(raw[7]),
            contract_hash=bytes(raw[8]),
            income_received=int(raw[9]),
        )

    def counts(self) -> dict[str, int]:
        f = self.contract.functions
        return {
            "collectives": int(self.tx.call(f.collectiveCount())),
            "proposals": int(self.tx.call(f.proposalCount())),
            "assets": int(self.tx.call(f.assetCount())),
        }

    def total_balance(self) -> int:
        return int(self.tx.call(self.contract.functions.totalBalance()))

    def _call(self, name: str, *args: Any) -> Any:
        return self.tx.call(self.contract.functions[name](*args))
