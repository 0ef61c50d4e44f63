"""CollectiveFund: three-assets supervision of village collectives (officers, budgets, approvals,
time locks, expiry, freezing, the asset register and tagged income)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain import devtools
from chain.accounts import dev_account
from chain.clients.collective import (
    AssetKind,
    CollectiveClient,
    OfficerRole,
    ProposalState,
    ProposalStatus,
    Tier,
)
from chain.clients.token import CashClient, Kind
from tests.conftest import Actors, identity
from tests.helpers import assert_reverts

DAY = 86_400
LIFETIME = 30 * DAY
LIMIT = 5_000_00  # committee alone up to 5,000 yuan (inclusive)
CEILING = 50_000_00  # with the township up to 50,000 yuan; nothing above
NOTICE = 3 * DAY  # public-notice time lock of the township tier
TIERS = [Tier(LIMIT, 2), Tier(CEILING, 2, True, NOTICE)]
INFRA, WELFARE, OPERATIONS = 0, 1, 2
BUDGET = [(b"infrastructure".ljust(32, b"\0"), 80_000_00), (b"welfare".ljust(32, b"\0"), 10_000_00)]
BUDGET.append((b"operations".ljust(32, b"\0"), 5_000_00))
YEAR = 2025


def h(text: str) -> bytes:
    return bytes(Web3.keccak(text=text))


def pending_ts(w3: Web3) -> int:
    """The block.timestamp the next transaction will see."""
    return int(w3.provider.ethereum_tester.get_block_by_number("pending")["timestamp"])  # type: ignore[attr-defined]


def next_tx_at(w3: Web3, ts: int) -> None:
    """Move the clock so that the next transaction runs at exactly ``ts``."""
    seconds = ts - 1 - pending_ts(w3)
    assert seconds >= 0, "cannot go back in time"
    if seconds:
        devtools.increase_time(w3, seconds)  # mines a block at pending + seconds
    else:
        w3.provider.ethereum_tester.mine_blocks(1)  # type: ignore[attr-defined]
    assert pending_ts(w3) == ts


@dataclass(frozen=True)
class Village:
    """A collective: supervisor (township station), committee alice/bob/carol, treasurer tom;
    gym a registered payee; outsider a registered lessee with 100,000 yuan, no officer."""

    id: int
    supervisor: LocalAccount
    alice: LocalAccount
    bob: LocalAccount
    carol: LocalAccount
    treasurer: LocalAccount
    township: LocalAccount
    gym: LocalAccount
    outsider: LocalAccount


@pytest.fixture
def village(registered: Actors, cash: CashClient, collective: CollectiveClient) -> Village:
    a = registered
    supervisor, treasurer = dev_account(8), dev_account(9)
    cash.register(a.operator, a.outsider.address, Kind.PERSONAL, 2, 0, identity("lessee"))
    cash.mint(a.operator, a.outsider.address, 100_000_00)
    officers = [
        (a.alice.address, OfficerRole.COMMITTEE),
        (a.bob.address, OfficerRole.COMMITTEE),
        (a.carol.address, OfficerRole.COMMITTEE),
        (treasurer.address, OfficerRole.TREASURER),
    ]
    cid, _ = collective.create(
        a.regulator, supervisor.address, h("Qingshui village"), officers, TIERS, LIFETIME
    )
    collective.open_year(supervisor, cid, YEAR, BUDGET)
    return Village(cid, supervisor, a.alice, a.bob, a.carol, treasurer, a.regulator, a.gym, a.outsider)


@pytest.fixture
def funded(village: Village, collective: CollectiveClient) -> Village:
    """The lessee paid 60,000 yuan into the collective (untagged)."""
    collective.record_income(village.outsider, village.id, 50_000_00)
    collective.record_income(village.outsider, village.id, 10_000_00)
    return village


def propose(
    collective: CollectiveClient, v: Village, amount: int, line: int = INFRA, payee: str | None = None
) -> int:
    """A proposal by alice, to the gym unless ``payee`` is given."""
    payee = v.gym.address if payee is None else payee
    pid, _ = collective.propose(v.alice, v.id, payee, amount, line, h("road"), h("invoice"))
    return pid


def approved(
    collective: CollectiveClient, v: Village, amount: int, line: int = INFRA, payee: str | None = None
) -> int:
    """A proposal by alice, approved by bob and carol (and the supervisor when its tier needs it:
    above the limit, counting what was recently committed to the same payee)."""
    pid = propose(collective, v, amount, line, payee)
    collective.approve(v.bob, pid)
    collective.approve(v.carol, pid)
    if collective.proposal(pid).township_required:
        collective.approve(v.supervisor, pid)
    return pid


class TestCreateCollective:
    def test_township_creates_with_officers_rules_and_epoch_one(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        c = collective.collective(village.id)
        assert (c.supervisor, c.frozen, c.year, c.line_count, c.proposal_lifetime, c.balance) == (
            village.supervisor.address,
            False,
            YEAR,
            3,
            LIFETIME,
            0,
        )
        assert c.epoch == 2  # 1 at creation, 2 once the year opened
        assert collective.officers(village.id) == {
            village.alice.address: OfficerRole.COMMITTEE,
            village.bob.address: OfficerRole.COMMITTEE,
            village.carol.address: OfficerRole.COMMITTEE,
            village.treasurer.address: OfficerRole.TREASURER,
        }
        assert collective.tiers(village.id) == TIERS

    def test_emits_created_officer_set_and_rules_set(
        self, registered: Actors, collective: CollectiveClient
    ) -> None:
        a = registered
        cid, result = collective.create(
            a.regulator, a.carol.address, h("x"), [(a.alice.address, OfficerRole.COMMITTEE)], TIERS, LIFETIME
        )
        assert result.named("CollectiveCreated")[0].args == {
            "collectiveId": cid,
            "supervisor": a.carol.address,
            "nameHash": h("x"),
            "creator": a.regulator.address,
        }
        assert result.named("OfficerSet")[0].args == {
            "collectiveId": cid,
            "account": a.alice.address,
            "previousRole": 0,
            "role": 1,
            "slot": 0,
            "epoch": 1,
        }
        rules = result.named("RulesSet")[0]
        assert (rules["proposalLifetime"], rules["epoch"], len(rules["tiers"])) == (LIFETIME, 1, 2)

    def test_reverts_when_caller_lacks_township_role(
        self, registered: Actors, collective: CollectiveClient
    ) -> None:
        role = collective.fund.functions.TOWNSHIP_ROLE().call()
        assert_reverts(
            lambda: collective.create(
                registered.operator, registered.carol.address, h("x"), [], TIERS, LIFETIME
            ),
            "AccessControlUnauthorizedAccount",
            registered.operator.address,
            role,
        )

    def test_reverts_when_officer_listed_twice_or_is_the_supervisor(
        self, registered: Actors, collective: CollectiveClient
    ) -> None:
        a = registered
        twice = [(a.alice.address, OfficerRole.COMMITTEE), (a.alice.address, OfficerRole.TREASURER)]
        assert_reverts(
            lambda: collective.create(a.regulator, a.carol.address, h("x"), twice, TIERS, LIFETIME),
            "CollectiveInvalidOfficer",
            1,
            a.alice.address,
        )
        supervisor = [(a.carol.address, OfficerRole.COMMITTEE)]
        assert_reverts(
            lambda: collective.create(a.regulator, a.carol.address, h("x"), supervisor, TIERS, LIFETIME),
            "CollectiveInvalidOfficer",
            1,
            a.carol.address,
        )

    @pytest.mark.parametrize(
        ("tiers", "index"),
        [
            ([Tier(LIMIT, 2), Tier(LIMIT, 3)], 1),  # limits must rise
            ([Tier(LIMIT, 0)], 0),  # no approval at all
            ([Tier(0, 1)], 0),  # zero limit
            ([Tier(LIMIT, 17)], 0),  # more approvals than officers can exist
            ([Tier(LIMIT, 1, False, DAY)], 0),  # time lock as long as the lifetime
        ],
    )
    def test_reverts_when_a_tier_is_invalid(
        self, registered: Actors, collective: CollectiveClient, tiers: list[Tier], index: int
    ) -> None:
        a = registered
        assert_reverts(
            lambda: collective.create(a.regulator, a.carol.address, h("x"), [], tiers, DAY),
            "CollectiveInvalidTier",
            index,
        )

    def test_reverts_when_tier_count_or_lifetime_invalid(
        self, registered: Actors, collective: CollectiveClient
    ) -> None:
        a = registered
        five = [Tier(i + 1, 1) for i in range(5)]
        for tiers in ([], five):
            assert_reverts(
                lambda t=tiers: collective.create(a.regulator, a.carol.address, h("x"), [], t, DAY),
                "CollectiveTierCount",
                len(tiers),
                4,
            )
        for lifetime in (0, 365 * DAY + 1):
            assert_reverts(
                lambda lt=lifetime: collective.create(a.regulator, a.carol.address, h("x"), [], TIERS, lt),
                "CollectiveInvalidLifetime",
                lifetime,
            )


class TestOfficers:
    def test_supervisor_adds_changes_and_removes_officers_each_a_new_epoch(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        v, sup = village, village.supervisor
        new = v.outsider.address
        added = collective.set_officer(sup, v.id, v.outsider.address, OfficerRole.COMMITTEE)
        assert added.named("OfficerSet")[0].args == {
            "collectiveId": v.id,
            "account": new,
            "previousRole": 0,
            "role": 1,
            "slot": 4,
            "epoch": 3,
        }
        collective.set_officer(sup, v.id, v.bob.address, OfficerRole.TREASURER)
        removed = collective.set_officer(sup, v.id, v.alice.address, OfficerRole.NONE).named("OfficerSet")[0]
        assert (removed["previousRole"], removed["role"], removed["slot"], removed["epoch"]) == (1, 0, 0, 5)
        assert collective.officers(v.id) == {
            v.bob.address: OfficerRole.TREASURER,
            v.carol.address: OfficerRole.COMMITTEE,
            v.treasurer.address: OfficerRole.TREASURER,
            new: OfficerRole.COMMITTEE,
        }
        # the freed slot 0 goes to the next officer
        again = collective.set_officer(sup, v.id, v.alice.address, OfficerRole.COMMITTEE).named("OfficerSet")
        assert again[0]["slot"] == 0

    def test_reverts_when_caller_is_not_the_supervisor(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        v = village
        assert_reverts(
            lambda: collective.set_officer(v.alice, v.id, v.outsider.address, OfficerRole.COMMITTEE),
            "CollectiveNotSupervisor",
            v.id,
            v.alice.address,
        )

    def test_reverts_when_role_unchanged(self, village: Village, collective: CollectiveClient) -> None:
        v = village
        assert_reverts(
            lambda: collective.set_officer(v.supervisor, v.id, v.alice.address, OfficerRole.COMMITTEE),
            "CollectiveOfficerUnchanged",
            v.id,
            v.alice.address,
            OfficerRole.COMMITTEE,
        )
        assert_reverts(
            lambda: collective.set_officer(v.supervisor, v.id, v.outsider.address, OfficerRole.NONE),
            "CollectiveOfficerUnchanged",
            v.id,
            v.outsider.address,
            OfficerRole.NONE,
        )

    def test_reverts_beyond_sixteen_officers(self, village: Village, collective: CollectiveClient) -> None:
        v = village
        extra = [Web3.to_checksum_address(f"0x{i:040x}") for i in range(100, 113)]
        for account in extra[:12]:  # 4 + 12 = 16
            collective.set_officer(v.supervisor, v.id, account, OfficerRole.COMMITTEE)
        assert_reverts(
            lambda: collective.set_officer(v.supervisor, v.id, extra[12], OfficerRole.COMMITTEE),
            "CollectiveTooManyOfficers",
            v.id,
            16,
        )

    def test_township_replaces_the_supervisor(
        self, village: Village, collective: CollectiveClient, registered: Actors
    ) -> None:
        v = village
        new = registered.operator
        event = collective.set_supervisor(v.township, v.id, new.address).named("SupervisorChanged")[0]
        assert event.args == {
            "collectiveId": v.id,
            "previous": v.supervisor.address,
            "supervisor": new.address,
            "epoch": 3,
        }
        assert_reverts(
            lambda: collective.freeze(v.supervisor, v.id),
            "CollectiveNotSupervisor",
            v.id,
            v.supervisor.address,
        )
        collective.freeze(new, v.id)
        assert_reverts(
            lambda: collective.set_supervisor(v.township, v.id, v.alice.address),
            "CollectiveInvalidSupervisor",
            v.id,
            v.alice.address,
        )


class TestBudget:
    def test_open_year_resets_the_lines(
        self, funded: Village, collective: CollectiveClient, w3: Web3
    ) -> None:
        v = funded
        pid = approved(collective, v, 1_000_00)
        collective.execute(v.treasurer, pid)
        assert collective.lines(v.id)[INFRA].spent == 1_000_00
        result = collective.open_year(v.supervisor, v.id, YEAR + 1, [(h("roads"), 7)])
        assert result.named("YearOpened")[0].args == {
            "collectiveId": v.id,
            "year": YEAR + 1,
            "lineCount": 1,
            "epoch": 3,
        }
        assert [(ln.budget, ln.spent) for ln in collective.lines(v.id)] == [(7, 0)]
        assert_reverts(
            lambda: collective.open_year(v.supervisor, v.id, YEAR + 1, [(h("roads"), 7)]),
            "CollectiveYearNotAfter",
            v.id,
            YEAR + 1,
            YEAR + 1,
        )

    def test_reverts_when_line_count_invalid(self, village: Village, collective: CollectiveClient) -> None:
        v = village
        for lines in ([], [(h(str(i)), 1) for i in range(9)]):
            assert_reverts(
                lambda ln=lines: collective.open_year(v.supervisor, v.id, YEAR + 1, ln),
                "CollectiveLineCount",
                len(lines),
                8,
            )

    def test_supervisor_amends_a_budget_but_not_below_spent(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        collective.execute(v.treasurer, approved(collective, v, 4_000_00, OPERATIONS))
        event = collective.amend_budget(v.supervisor, v.id, OPERATIONS, 4_000_00).named("BudgetAmended")[0]
        assert (event["previous"], event["budget"]) == (5_000_00, 4_000_00)
        assert_reverts(
            lambda: collective.amend_budget(v.supervisor, v.id, OPERATIONS, 3_999_99),
            "CollectiveBudgetBelowSpent",
            v.id,
            OPERATIONS,
            4_000_00,
            3_999_99,
        )
        assert_reverts(
            lambda: collective.amend_budget(v.supervisor, v.id, 3, 1), "CollectiveUnknownLine", v.id, 3
        )


class TestPropose:
    def test_officer_proposes_with_evidence_hashes_and_the_tier_copied(
        self, village: Village, collective: CollectiveClient, w3: Web3
    ) -> None:
        v = village
        ts = pending_ts(w3)
        pid, result = collective.propose(
            v.treasurer, v.id, v.gym.address, LIMIT + 1, INFRA, h("bridge repair"), h("contract.pdf")
        )
        assert result.named("ProposalCreated")[0].args == {
            "proposalId": pid,
            "collectiveId": v.id,
            "proposer": v.treasurer.address,
            "payee": v.gym.address,
            "amount": LIMIT + 1,
            "line": INFRA,
            "purposeHash": h("bridge repair"),
            "attachmentHash": h("contract.pdf"),
        }
        p = collective.proposal(pid)
        assert (p.status, p.committee_required, p.township_required, p.delay, p.expires_at) == (
            ProposalStatus.PENDING,
            2,
            True,
            NOTICE,
            ts + LIFETIME,
        )
        assert (p.purpose_hash, p.attachment_hash, p.year, p.epoch) == (
            h("bridge repair"),
            h("contract.pdf"),
            YEAR,
            2,
        )
        assert collective.proposal_state(pid) == ProposalState.PENDING

    def test_reverts_when_caller_is_not_an_officer(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        v = village
        for caller in (v.outsider, v.supervisor):
            assert_reverts(
                lambda c=caller: collective.propose(c, v.id, v.gym.address, 1, INFRA),
                "CollectiveNotOfficer",
                v.id,
                caller.address,
            )

    def test_budget_line_can_be_asked_exactly_but_not_a_fen_more(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        v = village
        assert_reverts(
            lambda: collective.propose(v.alice, v.id, v.gym.address, 10_000_01, WELFARE),
            "CollectiveBudgetExceeded",
            v.id,
            WELFARE,
            10_000_00,
            10_000_01,
        )
        propose(collective, v, 10_000_00, WELFARE)

    def test_highest_tier_limit_can_be_asked_exactly_but_not_a_fen_more(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        v = village
        assert_reverts(
            lambda: collective.propose(v.alice, v.id, v.gym.address, CEILING + 1, INFRA),
            "CollectiveAmountAboveTiers",
            v.id,
            CEILING + 1,
            CEILING,
        )
        assert collective.proposal(propose(collective, v, CEILING)).township_required

    def test_reverts_on_invalid_payee_amount_or_line(
        self, village: Village, collective: CollectiveClient, registered: Actors
    ) -> None:
        v = village
        stranger = dev_account(8).address  # the supervisor: not a registered wallet
        cases = [
            ((stranger, 1, INFRA), "CollectivePayeeNotRegistered", (stranger,)),
            ((collective.address, 1, INFRA), "CollectiveInvalidPayee", (collective.address,)),
            ((v.gym.address, 0, INFRA), "CollectiveZeroAmount", ()),
            ((v.gym.address, 1, 3), "CollectiveUnknownLine", (v.id, 3)),
        ]
        for (payee, amount, line), error, args in cases:
            assert_reverts(
                lambda p=payee, a=amount, ln=line: collective.propose(v.alice, v.id, p, a, ln), error, *args
            )
        assert_reverts(
            lambda: collective.propose(v.alice, 99, v.gym.address, 1, INFRA), "CollectiveUnknown", 99
        )


class TestApprovalThresholds:
    def test_amount_exactly_at_the_limit_needs_two_committee_members_only(
        self, funded: Village, collective: CollectiveClient, cash: CashClient
    ) -> None:
        v = funded
        pid = propose(collective, v, LIMIT)
        collective.approve(v.bob, pid)
        ready = collective.approve(v.carol, pid).named("ProposalReady")
        assert len(ready) == 1
        assert collective.proposal_state(pid) == ProposalState.EXECUTABLE
        collective.execute(v.treasurer, pid)
        assert cash.balance_of(v.gym.address) == LIMIT

    def test_one_fen_above_the_limit_needs_the_township_as_well(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        pid = propose(collective, v, LIMIT + 1)
        collective.approve(v.bob, pid)
        assert collective.approve(v.carol, pid).named("ProposalReady") == []
        assert_reverts(
            lambda: collective.execute(v.treasurer, pid), "CollectiveNotApproved", pid, 2, 2, False, True
        )
        event = collective.approve(v.supervisor, pid)
        assert event.named("ProposalApproved")[0].args == {
            "proposalId": pid,
            "approver": v.supervisor.address,
            "township": True,
            "committee": 2,
            "townshipApproved": True,
        }
        assert collective.proposal_state(pid) == ProposalState.TIMELOCKED
        assert collective.has_approved(pid, v.supervisor.address)

    def test_one_committee_approval_is_not_enough(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        pid = propose(collective, v, 1)
        collective.approve(v.bob, pid)
        assert_reverts(
            lambda: collective.execute(v.treasurer, pid), "CollectiveNotApproved", pid, 1, 2, False, False
        )

    def test_the_township_does_not_replace_a_committee_member(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        pid = propose(collective, v, CEILING)
        collective.approve(v.supervisor, pid)
        collective.approve(v.bob, pid)
        assert_reverts(
            lambda: collective.execute(v.treasurer, pid), "CollectiveNotApproved", pid, 1, 2, True, True
        )

    def test_tiers_changed_by_the_supervisor_apply_to_new_proposals(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        collective.set_rules(v.supervisor, v.id, [Tier(100, 1), Tier(CEILING, 3, True)], LIFETIME)
        assert collective.tier_for(v.id, 100) == Tier(100, 1)
        assert collective.tier_for(v.id, 101) == Tier(CEILING, 3, True)
        pid = propose(collective, v, 100)
        collective.approve(v.bob, pid)
        collective.execute(v.treasurer, pid)


class TestApprove:
    def test_reverts_when_the_proposer_approves(self, village: Village, collective: CollectiveClient) -> None:
        v = village
        pid = propose(collective, v, 1)
        assert_reverts(
            lambda: collective.approve(v.alice, pid), "CollectiveSelfApproval", pid, v.alice.address
        )

    def test_reverts_when_an_officer_approves_twice(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        v = village
        pid = propose(collective, v, LIMIT + 1)
        collective.approve(v.bob, pid)
        collective.approve(v.supervisor, pid)
        assert collective.has_approved(pid, v.bob.address)
        assert not collective.has_approved(pid, v.carol.address)
        for officer in (v.bob, v.supervisor):
            assert_reverts(
                lambda o=officer: collective.approve(o, pid),
                "CollectiveAlreadyApproved",
                pid,
                officer.address,
            )

    def test_reverts_when_approver_is_not_an_officer(
        self, village: Village, collective: CollectiveClient, registered: Actors
    ) -> None:
        v = village
        pid = propose(collective, v, 1)
        assert_reverts(
            lambda: collective.approve(v.outsider, pid), "CollectiveNotOfficer", v.id, v.outsider.address
        )
        assert_reverts(lambda: collective.approve(v.bob, 99), "CollectiveUnknownProposal", 99)

    def test_reverts_when_the_treasurer_approves(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        v = village
        pid = propose(collective, v, 1)
        assert_reverts(
            lambda: collective.approve(v.treasurer, pid), "CollectiveNotApprover", v.id, v.treasurer.address
        )

    def test_officer_of_another_collective_cannot_approve(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        v = village
        other, _ = collective.create(
            v.township,
            v.supervisor.address,
            h("other"),
            [(v.outsider.address, OfficerRole.COMMITTEE)],
            TIERS,
            LIFETIME,
        )
        pid = propose(collective, v, 1)
        assert_reverts(
            lambda: collective.approve(v.outsider, pid), "CollectiveNotOfficer", v.id, v.outsider.address
        )
        assert other == v.id + 1

    def test_approves_up_to_the_expiry_second_and_not_after(
        self, village: Village, collective: CollectiveClient, w3: Web3
    ) -> None:
        v = village
        pid = propose(collective, v, 1)
        expires = collective.proposal(pid).expires_at
        next_tx_at(w3, expires)
        collective.approve(v.bob, pid)
        assert_reverts(lambda: collective.approve(v.carol, pid), "CollectiveProposalExpired", pid, expires)
        devtools.increase_time(w3, 1)  # views read the latest block: let one pass the expiry
        assert collective.proposal_state(pid) == ProposalState.EXPIRED

    def test_reverts_when_officers_changed_since_the_proposal(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        v = village
        pid = propose(collective, v, 1)
        collective.approve(v.bob, pid)
        collective.set_officer(v.supervisor, v.id, v.outsider.address, OfficerRole.COMMITTEE)
        assert collective.proposal_state(pid) == ProposalState.STALE
        assert_reverts(lambda: collective.approve(v.carol, pid), "CollectiveProposalStale", pid, 2, 3)
        assert not collective.has_approved(pid, v.bob.address)


class TestExecute:
    def test_pays_the_payee_and_charges_the_line(
        self, funded: Village, collective: CollectiveClient, cash: CashClient
    ) -> None:
        v = funded
        pid = approved(collective, v, 1_234_56, WELFARE)
        result = collective.execute(v.treasurer, pid)
        assert result.named("ProposalExecuted")[0].args == {
            "proposalId": pid,
            "collectiveId": v.id,
            "payee": v.gym.address,
            "amount": 1_234_56,
            "line": WELFARE,
            "lineSpent": 1_234_56,
            "executor": v.treasurer.address,
        }
        assert cash.balance_of(v.gym.address) == 1_234_56
        c = collective.collective(v.id)
        assert (c.balance, c.total_income, c.total_paid) == (60_000_00 - 1_234_56, 60_000_00, 1_234_56)
        assert cash.balance_of(collective.address) == collective.total_balance() == c.balance
        assert collective.lines(v.id)[WELFARE].remaining == 10_000_00 - 1_234_56
        assert collective.proposal_state(pid) == ProposalState.EXECUTED

    def test_time_lock_ends_exactly_at_executable_at(
        self, funded: Village, collective: CollectiveClient, w3: Web3
    ) -> None:
        v = funded
        pid = propose(collective, v, LIMIT + 1)
        collective.approve(v.bob, pid)
        collective.approve(v.carol, pid)
        ready = collective.approve(v.supervisor, pid).named("ProposalReady")[0]
        executable_at = ready["executableAt"]
        assert executable_at == collective.proposal(pid).ready_at + NOTICE
        assert_reverts(
            lambda: collective.execute(v.treasurer, pid), "CollectiveTimelocked", pid, executable_at
        )
        next_tx_at(w3, executable_at - 1)
        assert_reverts(
            lambda: collective.execute(v.treasurer, pid), "CollectiveTimelocked", pid, executable_at
        )
        next_tx_at(w3, executable_at)
        collective.execute(v.treasurer, pid)

    def test_executes_at_the_expiry_second_but_not_one_after(
        self, funded: Village, collective: CollectiveClient, w3: Web3
    ) -> None:
        v = funded
        first, second = approved(collective, v, 100), approved(collective, v, 200)
        expires = collective.proposal(second).expires_at
        next_tx_at(w3, collective.proposal(first).expires_at)
        collective.execute(v.treasurer, first)
        next_tx_at(w3, expires + 1)
        assert_reverts(
            lambda: collective.execute(v.treasurer, second), "CollectiveProposalExpired", second, expires
        )

    def test_reverts_when_an_earlier_payment_used_the_budget(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        first, second = (  # two payees: one payee's 5,500 in all would need the township's notice
            approved(collective, v, 3_000_00, OPERATIONS),
            approved(collective, v, 2_500_00, OPERATIONS, payee=v.outsider.address),
        )
        collective.execute(v.treasurer, first)
        assert_reverts(
            lambda: collective.execute(v.treasurer, second),
            "CollectiveBudgetExceeded",
            v.id,
            OPERATIONS,
            2_000_00,
            2_500_00,
        )
        assert_reverts(
            lambda: collective.propose(v.alice, v.id, v.gym.address, 2_000_01, OPERATIONS),
            "CollectiveBudgetExceeded",
            v.id,
            OPERATIONS,
            2_000_00,
            2_000_01,
        )

    def test_reverts_when_the_collective_lacks_funds_even_if_another_has_them(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        officers = [(v.alice.address, OfficerRole.COMMITTEE), (v.bob.address, OfficerRole.COMMITTEE)]
        poor, _ = collective.create(
            v.township, v.supervisor.address, h("poor"), officers, [Tier(LIMIT, 1)], DAY
        )
        collective.open_year(v.supervisor, poor, YEAR, BUDGET)
        collective.record_income(v.outsider, poor, 99)
        pid, _ = collective.propose(v.alice, poor, v.gym.address, 100, INFRA)
        collective.approve(v.bob, pid)
        assert_reverts(lambda: collective.execute(v.bob, pid), "CollectiveInsufficientFunds", poor, 99, 100)
        assert collective.total_balance() == 60_000_00 + 99

    def test_reverts_when_executed_twice_or_by_a_non_officer(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        pid = approved(collective, v, 100)
        assert_reverts(
            lambda: collective.execute(v.supervisor, pid), "CollectiveNotOfficer", v.id, v.supervisor.address
        )
        collective.execute(v.alice, pid)
        assert_reverts(
            lambda: collective.execute(v.alice, pid),
            "CollectiveProposalNotPending",
            pid,
            ProposalStatus.EXECUTED,
        )

    def test_frozen_payee_makes_execute_revert_with_the_token_error(
        self, funded: Village, collective: CollectiveClient, cash: CashClient
    ) -> None:
        v = funded
        pid = approved(collective, v, 100)
        cash.freeze(v.township, v.gym.address)
        assert_reverts(lambda: collective.execute(v.treasurer, pid), "WalletFrozen", v.gym.address)
        cash.unfreeze(v.township, v.gym.address)
        collective.execute(v.treasurer, pid)

    def test_a_new_year_makes_pending_proposals_stale(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        pid = approved(collective, v, 100)
        collective.open_year(v.supervisor, v.id, YEAR + 1, BUDGET)
        assert_reverts(lambda: collective.execute(v.treasurer, pid), "CollectiveProposalStale", pid, 2, 3)
        collective.cancel(v.alice, pid)


class TestRejectAndCancel:
    def test_a_committee_member_or_the_supervisor_rejects(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        v = village
        for approver in (v.carol, v.supervisor):
            pid = propose(collective, v, 1)
            event = collective.reject(approver, pid, h("no invoice")).named("ProposalRejected")[0]
            assert event.args == {"proposalId": pid, "by": approver.address, "reasonHash": h("no invoice")}
            assert_reverts(
                lambda p=pid: collective.approve(v.bob, p),
                "CollectiveProposalNotPending",
                pid,
                ProposalStatus.REJECTED,
            )

    def test_reverts_when_treasurer_or_outsider_rejects(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        v = village
        pid = propose(collective, v, 1)
        assert_reverts(
            lambda: collective.reject(v.treasurer, pid), "CollectiveNotApprover", v.id, v.treasurer.address
        )
        assert_reverts(
            lambda: collective.reject(v.outsider, pid), "CollectiveNotOfficer", v.id, v.outsider.address
        )

    def test_only_the_proposer_cancels(self, village: Village, collective: CollectiveClient) -> None:
        v = village
        pid = propose(collective, v, 1)
        assert_reverts(lambda: collective.cancel(v.bob, pid), "CollectiveNotProposer", pid, v.bob.address)
        assert collective.cancel(v.alice, pid).named("ProposalCancelled")[0]["by"] == v.alice.address
        assert collective.proposal_state(pid) == ProposalState.CANCELLED
        assert_reverts(
            lambda: collective.cancel(v.alice, pid),
            "CollectiveProposalNotPending",
            pid,
            ProposalStatus.CANCELLED,
        )


class TestFreeze:
    def test_frozen_collective_refuses_proposals_approvals_and_payments(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        ready = approved(collective, v, 100)
        waiting = propose(collective, v, 100)
        event = collective.freeze(v.supervisor, v.id, h("audit")).named("AccountFrozen")[0]
        assert event.args == {"collectiveId": v.id, "by": v.supervisor.address, "reasonHash": h("audit")}
        assert_reverts(lambda: propose(collective, v, 1), "CollectiveFrozen", v.id)
        assert_reverts(lambda: collective.approve(v.bob, waiting), "CollectiveFrozen", v.id)
        assert_reverts(lambda: collective.execute(v.treasurer, ready), "CollectiveFrozen", v.id)
        assert_reverts(lambda: collective.freeze(v.supervisor, v.id), "CollectiveFrozen", v.id)
        collective.record_income(v.outsider, v.id, 1)  # income still comes in
        collective.cancel(v.alice, waiting)
        collective.unfreeze(v.supervisor, v.id)
        collective.execute(v.treasurer, ready)
        assert_reverts(lambda: collective.unfreeze(v.supervisor, v.id), "CollectiveNotFrozen", v.id)

    def test_only_the_supervisor_freezes(self, village: Village, collective: CollectiveClient) -> None:
        v = village
        for caller in (v.alice, v.township):
            assert_reverts(
                lambda c=caller: collective.freeze(c, v.id), "CollectiveNotSupervisor", v.id, caller.address
            )


class TestRegisterAndIncome:
    def test_lease_income_is_tagged_to_the_land(
        self, village: Village, collective: CollectiveClient, cash: CashClient, w3: Web3
    ) -> None:
        v = village
        land, registered_ = collective.register_asset(
            v.treasurer, v.id, AssetKind.RESOURCE, 300_000_00, h("plot 7")
        )
        assert registered_.named("AssetRegistered")[0].args == {
            "assetId": land,
            "collectiveId": v.id,
            "kind": AssetKind.RESOURCE,
            "value": 300_000_00,
            "descriptionHash": h("plot 7"),
        }
        ends = pending_ts(w3) + 365 * DAY
        collective.set_income_contract(v.alice, land, v.outsider.address, 12_000_00, ends, h("lease"))
        result = collective.record_income(v.outsider, v.id, 12_000_00, land, h("2025 rent"))
        assert result.named("IncomeRecorded")[0].args == {
            "collectiveId": v.id,
            "assetId": land,
            "payer": v.outsider.address,
            "amount": 12_000_00,
            "memoHash": h("2025 rent"),
        }
        a = collective.asset(land)
        assert (a.kind, a.counterparty, a.annual_income, a.contract_ends_at, a.income_received) == (
            AssetKind.RESOURCE,
            v.outsider.address,
            12_000_00,
            ends,
            12_000_00,
        )
        assert collective.collective(v.id).balance == 12_000_00
        assert cash.balance_of(collective.address) == 12_000_00

    def test_income_reverts_for_an_asset_of_another_collective_retired_or_unknown(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        v = village
        other, _ = collective.create(
            v.township,
            v.supervisor.address,
            h("other"),
            [(v.alice.address, OfficerRole.COMMITTEE)],
            TIERS,
            LIFETIME,
        )
        theirs, _ = collective.register_asset(v.alice, other, AssetKind.PROPERTY, 1)
        ours, _ = collective.register_asset(v.alice, v.id, AssetKind.PROPERTY, 1)
        collective.retire_asset(v.supervisor, ours, h("demolished"))
        cases = [
            (theirs, "CollectiveAssetNotInCollective", (theirs, v.id)),
            (ours, "CollectiveAssetRetired", (ours,)),
            (99, "CollectiveUnknownAsset", (99,)),
        ]
        for asset, error, args in cases:
            assert_reverts(lambda a=asset: collective.record_income(v.outsider, v.id, 1, a), error, *args)
        assert_reverts(lambda: collective.record_income(v.outsider, v.id, 0), "CollectiveZeroAmount")

    def test_income_reverts_without_allowance(self, village: Village, collective: CollectiveClient) -> None:
        v = village
        assert_reverts(
            lambda: collective.record_income(v.outsider, v.id, 5, approve=False),
            "ERC20InsufficientAllowance",
            collective.address,
            0,
            5,
        )

    def test_supervisor_revalues_and_retires_officers_do_not(
        self, village: Village, collective: CollectiveClient
    ) -> None:
        v = village
        hall, _ = collective.register_asset(v.alice, v.id, AssetKind.PROPERTY, 100_000_00)
        assert_reverts(
            lambda: collective.revalue_asset(v.alice, hall, 1),
            "CollectiveNotSupervisor",
            v.id,
            v.alice.address,
        )
        event = collective.revalue_asset(v.supervisor, hall, 80_000_00, h("appraisal")).named(
            "AssetRevalued"
        )[0]
        assert (event["previous"], event["value"]) == (100_000_00, 80_000_00)
        collective.retire_asset(v.supervisor, hall)
        assert collective.asset(hall).retired
        assert_reverts(lambda: collective.retire_asset(v.supervisor, hall), "CollectiveAssetRetired", hall)

    def test_register_reverts_for_non_officer_invalid_kind_or_past_contract(
        self, village: Village, collective: CollectiveClient, w3: Web3
    ) -> None:
        v = village
        assert_reverts(
            lambda: collective.register_asset(v.outsider, v.id, AssetKind.PROPERTY, 1),
            "CollectiveNotOfficer",
            v.id,
            v.outsider.address,
        )
        assert_reverts(
            lambda: collective.register_asset(v.alice, v.id, AssetKind.NONE, 1),
            "CollectiveInvalidAssetKind",
            AssetKind.NONE,
        )
        pond, _ = collective.register_asset(v.alice, v.id, AssetKind.RESOURCE, 1)
        ts = pending_ts(w3)
        assert_reverts(
            lambda: collective.set_income_contract(v.alice, pond, v.outsider.address, 1, ts),
            "CollectiveContractEndsInPast",
            ts,
            ts,
        )


class TestSplitPayments:
    """The tier comes from the amount plus what was recently committed to the same payee."""

    def test_small_proposals_to_one_payee_climb_to_the_township_tier(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        """Before: every 1,000-yuan proposal needed the committee alone, however many there were."""
        v = funded
        terms, results = [], []
        for _ in range(8):
            pid, result = collective.propose(
                v.alice, v.id, v.gym.address, 1_000_00, INFRA, h("road"), h("inv")
            )
            p = collective.proposal(pid)
            terms.append((p.township_required, p.delay))
            results.append(result)
        assert terms == [(False, 0)] * 5 + [(True, NOTICE)] * 3  # the sixth brings the basis above 5,000
        bases = [r.named("ProposalTierBasis")[0].args for r in results]
        assert [(b["recent"], b["basis"]) for b in bases] == [
            (i * 1_000_00, (i + 1) * 1_000_00) for i in range(8)
        ]
        assert collective.recent_to(v.id, v.gym.address) == 8_000_00

    def test_other_budget_lines_count_for_the_same_payee(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        propose(collective, v, 3_000_00, INFRA)
        pid = propose(collective, v, 3_000_00, WELFARE)
        assert collective.proposal(pid).township_required
        other, _ = collective.propose(v.alice, v.id, v.outsider.address, 3_000_00, INFRA, h("x"), h("y"))
        assert not collective.proposal(other).township_required  # another payee starts from zero

    def test_executed_payments_count_within_the_window_and_lapse_after(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        collective.execute(v.treasurer, approved(collective, v, 4_000_00))
        assert collective.recent_to(v.id, v.gym.address) == 4_000_00
        assert collective.tier_for_payment(v.id, v.gym.address, 2_000_00) == TIERS[1]
        assert collective.tier_for(v.id, 2_000_00) == TIERS[0]  # the amount alone
        devtools.increase_time(collective.w3, 29 * DAY)
        assert collective.recent_to(v.id, v.gym.address) == 4_000_00  # still within 30 Beijing days
        devtools.increase_time(collective.w3, DAY)
        assert collective.recent_to(v.id, v.gym.address) == 0
        assert collective.tier_for_payment(v.id, v.gym.address, 2_000_00) == TIERS[0]

    def test_rejected_and_cancelled_proposals_stop_counting(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        first, second = propose(collective, v, 3_000_00), propose(collective, v, 1_000_00)
        assert collective.recent_to(v.id, v.gym.address) == 4_000_00
        collective.reject(v.bob, first)
        collective.cancel(v.alice, second)
        assert collective.recent_to(v.id, v.gym.address) == 0
        assert not collective.proposal(propose(collective, v, 4_000_00)).township_required

    def test_a_basis_above_the_ceiling_takes_the_highest_tier(
        self, funded: Village, collective: CollectiveClient
    ) -> None:
        v = funded
        propose(collective, v, 49_000_00)
        pid = propose(collective, v, 2_000_00)
        assert collective.proposal(pid).township_required and collective.proposal(pid).delay == NOTICE
        assert_reverts(
            lambda: propose(collective, v, CEILING + 1),
            "CollectiveAmountAboveTiers",
            v.id,
            CEILING + 1,
            CEILING,
        )

    def test_the_township_sets_the_window_with_an_event(
        self, funded: Village, registered: Actors, collective: CollectiveClient
    ) -> None:
        v = funded
        assert collective.split_window_days() == 30
        collective.execute(v.treasurer, approved(collective, v, 4_000_00))
        event = collective.set_split_window(v.township, 1).named("SplitWindowSet")[0].args
        assert (event["previous"], event["windowDays"], event["by"]) == (30, 1, v.township.address)
        devtools.increase_time(collective.w3, DAY)
        assert collective.recent_to(v.id, v.gym.address) == 0
        for bad in (0, 91):
            assert_reverts(
                lambda bad=bad: collective.set_split_window(v.township, bad),
                "CollectiveInvalidSplitWindow",
                bad,
                90,
            )
        role = collective.fund.functions.TOWNSHIP_ROLE().call()
        assert_reverts(
            lambda: collective.set_split_window(v.supervisor, 90),
            "AccessControlUnauthorizedAccount",
            v.supervisor.address,
            role,
        )


class TestFrozenPayee:
    def test_no_new_proposal_to_a_frozen_payee_and_an_approved_one_waits(
        self, funded: Village, collective: CollectiveClient, cash: CashClient
    ) -> None:
        v = funded
        pid = approved(collective, v, 100)
        cash.freeze(v.township, v.gym.address)
        assert_reverts(lambda: propose(collective, v, 100), "CollectivePayeeFrozen", v.gym.address)
        assert_reverts(lambda: collective.execute(v.treasurer, pid), "WalletFrozen", v.gym.address)
        assert collective.proposal_state(pid) == ProposalState.EXECUTABLE  # waits, before its expiry
        cash.unfreeze(v.township, v.gym.address)
        collective.execute(v.treasurer, pid)
        assert cash.balance_of(v.gym.address) == 100


class TestFrozenOfficer:
    """An officer whose own wallet the regulator froze cannot act on the collective's money
    (the red team's finding: a frozen treasurer proposed and executed, and the payee was paid)."""

    def test_a_frozen_proposer_cannot_propose(
        self, funded: Village, collective: CollectiveClient, cash: CashClient
    ) -> None:
        v = funded
        cash.freeze(v.township, v.alice.address)
        assert_reverts(lambda: propose(collective, v, 100), "CollectiveOfficerFrozen", v.id, v.alice.address)
        cash.unfreeze(v.township, v.alice.address)
        propose(collective, v, 100)

    def test_a_frozen_approver_cannot_approve(
        self, funded: Village, collective: CollectiveClient, cash: CashClient
    ) -> None:
        v = funded
        pid = propose(collective, v, 100)
        cash.freeze(v.township, v.bob.address)
        assert_reverts(lambda: collective.approve(v.bob, pid), "CollectiveOfficerFrozen", v.id, v.bob.address)
        assert collective.proposal(pid).committee == 0

    def test_a_frozen_treasurer_cannot_execute_and_the_payment_waits(
        self, funded: Village, registered: Actors, collective: CollectiveClient, cash: CashClient
    ) -> None:
        v = funded
        cash.register(registered.operator, v.treasurer.address, Kind.PERSONAL, 2, 0, identity("treasurer"))
        pid = approved(collective, v, 100)
        cash.freeze(v.township, v.treasurer.address)
        assert_reverts(
            lambda: collective.execute(v.treasurer, pid), "CollectiveOfficerFrozen", v.id, v.treasurer.address
        )
        assert cash.balance_of(v.gym.address) == 0
        assert collective.proposal_state(pid) == ProposalState.EXECUTABLE  # waits
        collective.execute(v.carol, pid)  # an unfrozen officer still can
        assert cash.balance_of(v.gym.address) == 100

    def test_a_frozen_officer_cannot_change_the_books(
        self, funded: Village, registered: Actors, collective: CollectiveClient, cash: CashClient, w3: Web3
    ) -> None:
        # The second red team: a frozen treasurer still registered assets (and so could move the
        # books, if not the money). Registering, recording an income contract, revaluing and
        # retiring are all refused to a frozen officer or supervisor.
        v = funded
        land, _ = collective.register_asset(v.alice, v.id, AssetKind.RESOURCE, 100_00, h("plot 1"))
        cash.freeze(v.township, v.alice.address)
        assert_reverts(
            lambda: collective.register_asset(v.alice, v.id, AssetKind.PROPERTY, 1, h("barn")),
            "CollectiveOfficerFrozen",
            v.id,
            v.alice.address,
        )
        ends = w3.eth.get_block("latest")["timestamp"] + 365 * DAY
        assert_reverts(
            lambda: collective.set_income_contract(v.alice, land, v.gym.address, 1_000_00, ends),
            "CollectiveOfficerFrozen",
            v.id,
            v.alice.address,
        )
        cash.register(registered.operator, v.supervisor.address, Kind.PERSONAL, 2, 0, identity("station"))
        cash.freeze(v.township, v.supervisor.address)
        assert_reverts(
            lambda: collective.revalue_asset(v.supervisor, land, 1),
            "CollectiveOfficerFrozen",
            v.id,
            v.supervisor.address,
        )
        assert_reverts(
            lambda: collective.retire_asset(v.supervisor, land),
            "CollectiveOfficerFrozen",
            v.id,
            v.supervisor.address,
        )
        cash.unfreeze(v.township, v.supervisor.address)
        collective.revalue_asset(v.supervisor, land, 1)

    def test_a_frozen_officer_still_rejects_and_cancels(
        self, funded: Village, collective: CollectiveClient, cash: CashClient
    ) -> None:
        v = funded
        first, second = propose(collective, v, 100), propose(collective, v, 200)
        cash.freeze(v.township, v.alice.address)
        cash.freeze(v.township, v.bob.address)
        collective.reject(v.bob, first, h("no"))
        collective.cancel(v.alice, second)
