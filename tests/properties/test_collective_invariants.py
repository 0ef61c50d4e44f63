"""Stateful property test of three-assets collective fund supervision (ghost state in a model).

Two collectives share the contract. Random sequences of income (untagged, tagged to the
collective's own land, or to the other collective's), proposals (amounts drawn around the tier
limits and the lines' remaining budgets, by officers and strangers, to registered, unregistered
and frozen payees), approvals (committee members, the proposer, treasurers, strangers, the
supervisor, twice), executions, rejections, cancellations, clock moves to the time-lock and
expiry edges, and supervisor actions (freeze, officer changes, budget amendments, a new fiscal
year, new tiers) run against the chain and a Python model of CollectiveFund. Every outcome is
predicted before the call: success, or the exact custom error with its arguments.

After every step: each collective, line and proposal on chain equals the model; per collective
balance == income - paid; the contract holds exactly the sum of the balances; for every line of
the current year spent <= budget and spent == the executed proposals charged to it; every
payment out of the contract (each Transfer log from it) is the one execution of a proposal whose
distinct committee approvers, none of them its proposer, and township approval meet the
requirement copied from its tier; the tier of every proposal is the one of its split basis (its
amount plus the collective's pending proposals to the same payee and its payments to it within the
split window, which the township moves now and then), and the chain's `recentTo` equals the model's.
No proposal is made to a frozen payee; an approved one waits until the payee is unfrozen. An
officer whose own wallet is frozen (a payee that is also an officer) neither proposes, approves nor
executes (`CollectiveOfficerFrozen`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import event_abi_to_log_topic
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from web3 import Web3

from chain import devtools
from chain.accounts import dev_account
from chain.backends import in_process
from chain.clients.collective import (
    AssetKind,
    CollectiveClient,
    OfficerRole,
    ProposalStatus,
    Tier,
)
from chain.clients.token import CashClient, Kind
from chain.deploy import deploy_all
from chain.exceptions import ContractError
from chain.sender import TxResult
from tests.conftest import identity
from tests.properties.models.collective import YEAR, Coll, Prop
from tests.properties.models.common import weighted

HOUR = 3_600
DAY = 24 * HOUR

OPERATOR = dev_account(1)
TOWNSHIP = dev_account(2)
PAYER = dev_account(0)  # a lessee and the township's subsidy account: tier 1, no caps
ACCOUNTS = [dev_account(i) for i in range(3, 10)]
BY_ADDRESS = {a.address: a for a in [*ACCOUNTS, PAYER]}
A3, A4, A5, A6, A7, A8, A9 = ACCOUNTS
# Registered payees (a supplier, a villager); A9 is never registered.
PAYEES = [A6.address, A7.address, A9.address]
REGISTERED_PAYEES = {A6.address, A7.address}
# (supervisor, officers, tiers, proposal lifetime, budget lines). Small amounts, so that lines
# run out and income runs short.
SETUP = [
    (
        A8,
        [
            (A3, OfficerRole.COMMITTEE),
            (A4, OfficerRole.COMMITTEE),
            (A5, OfficerRole.COMMITTEE),
            (A6, OfficerRole.TREASURER),
        ],
        [Tier(1_000, 1), Tier(5_000, 2, True, HOUR)],
        2 * DAY,
        [6_000, 3_000],
    ),
    (
        A9,
        [(A4, OfficerRole.COMMITTEE), (A5, OfficerRole.COMMITTEE), (A3, OfficerRole.TREASURER)],
        [Tier(3_000, 2, False, 0)],
        DAY,
        [4_000],
    ),
]
BEIJING = 8 * HOUR  # split-window days are Beijing calendar days

Outcome = tuple[str, tuple[Any, ...]] | None  # None: success; else (custom error, its arguments)

_base: dict[str, Any] = {}


def line_name(i: int) -> bytes:
    return f"line {i}".encode().ljust(32, b"\0")


def base_chain() -> tuple[CollectiveClient, CashClient, Any]:
    """One chain for the module: payees registered, payer funded, collectives created."""
    if not _base:
        w3 = in_process()
        # As in the prepaid machine: let the one-run gas estimator installed on the class work.
        vars(w3.provider.ethereum_tester.backend.chain).pop("gas_estimator", None)
        manifest = deploy_all(w3)
        cash = CashClient(w3, manifest)
        fund = CollectiveClient(w3, manifest, cash.tx)
        cash.register(OPERATOR, PAYER.address, Kind.PERSONAL, 1, 0, identity("payer"))
        cash.register(OPERATOR, A6.address, Kind.MERCHANT, 1, 1520, identity("supplier"))
        cash.register(OPERATOR, A7.address, Kind.PERSONAL, 2, 0, identity("villager"))
        cash.mint(OPERATOR, PAYER.address, 10**12)
        cash.approve(PAYER, fund.address, 2**256 - 1)
        for supervisor, officers, tiers, lifetime, budgets in SETUP:
            cid, _ = fund.create(
                TOWNSHIP,
                supervisor.address,
                b"\1" * 32,
                [(a.address, r) for a, r in officers],
                tiers,
                lifetime,
            )
            fund.open_year(supervisor, cid, YEAR, [(line_name(i), b) for i, b in enumerate(budgets)])
            fund.register_asset(officers[0][0], cid, AssetKind.RESOURCE, 100_000)  # asset id == cid
        _base["fund"], _base["cash"] = fund, cash
        _base["snap"] = devtools.snapshot(w3)
    return _base["fund"], _base["cash"], _base["snap"]


def has_pending(machine: CollectiveMachine) -> bool:
    return any(p.status == ProposalStatus.PENDING for p in machine.props.values())


class CollectiveMachine(RuleBasedStateMachine):
    @initialize(
        opening=st.lists(
            st.tuples(st.sampled_from([1, 2]), st.integers(1, 5_000), st.integers(0, 3)),
            min_size=2,
            max_size=4,
        )
    )
    def start(self, opening: list[tuple[int, int, int]]) -> None:
        """Revert to the base chain; fund both collectives and open a few proposals, some of them
        (partly) approved already."""
        self.fund, self.cash, snap = base_chain()
        self.w3: Web3 = self.cash.w3
        devtools.revert(self.w3, snap)
        self.snap = devtools.snapshot(self.w3)  # eth-tester snapshots are single-use
        _base["snap"] = self.snap
        self.cash.tx.nonces.reset()
        self.colls: dict[int, Coll] = {}
        for cid, (supervisor, officers, tiers, lifetime, budgets) in enumerate(SETUP, start=1):
            self.colls[cid] = Coll(
                supervisor.address,
                {a.address: (OfficerRole(r), slot) for slot, (a, r) in enumerate(officers)},
                list(tiers),
                lifetime,
                list(budgets),
                [0] * len(budgets),
            )
        self.assets = {1: 1, 2: 2}  # asset -> collective; not retired
        self.asset_income = {1: 0, 2: 0}
        self.props: dict[int, Prop] = {}
        self.frozen_wallets: set[str] = set()
        self.split_window = 30
        self.paid_by_log: set[int] = set()
        self.last_block = self.w3.eth.block_number
        executed = self.fund.fund.events.ProposalExecuted().abi
        transfer = self.cash.cash.events.Transfer().abi
        self.executed_topic = event_abi_to_log_topic(executed)
        self.transfer_topic = event_abi_to_log_topic(transfer)
        for cid in self.colls:
            self.record_income(cid, 8_000, 0)
        for cid, amount, approvals in opening:
            c = self.colls[cid]
            proposer = BY_ADDRESS[next(iter(c.officers))]
            pid = self._propose_as(proposer, cid, PAYEES[0], amount, 0)
            for approver in self._useful_approvers(self.props[pid])[:approvals] if pid else []:
                self._approve_as(BY_ADDRESS[approver], pid)

    # -- helpers ---------------------------------------------------------------------------

    def _pending(self) -> int:
        return int(self.w3.provider.ethereum_tester.get_block_by_number("pending")["timestamp"])  # type: ignore[attr-defined]

    def _advance(self, seconds: int) -> None:
        if seconds >= 1:
            devtools.increase_time(self.w3, seconds)

    def _run(self, what: str, call: Callable[[], TxResult], expected: Outcome) -> TxResult | None:
        event(f"{what}: {expected[0] if expected else 'ok'}")
        try:
            result = call()
        except ContractError as exc:
            assert (exc.name, exc.args_tuple) == expected, f"{what}: expected {expected}, got {exc.signature}"
            return None
        assert expected is None, f"{what}: expected {expected}, but the call succeeded"
        return result

    def _recent(self, cid: int, payee: str, ts: int) -> int:
        """Pending proposals of ``cid`` to ``payee`` plus its payments to it in the split window."""
        today = (ts + BEIJING) // DAY
        return sum(
            p.amount
            for p in self.props.values()
            if p.collective == cid
            and p.payee == payee
            and (
                p.status == ProposalStatus.PENDING
                or (p.executed_day is not None and today - p.executed_day < self.split_window)
            )
        )

    def _pick_prop(self, data: st.DataObject) -> int:
        pending = [i for i, p in self.props.items() if p.status == ProposalStatus.PENDING]
        any_id = st.integers(1, len(self.props) + 1)
        if not pending:
            return data.draw(any_id, label="proposal")
        return data.draw(weighted((4, st.sampled_from(pending)), (1, any_id)), label="proposal")

    def _pick_account(self, data: st.DataObject, useful: list[str]) -> LocalAccount:
        everyone = st.sampled_from([*ACCOUNTS, PAYER])
        if not useful:
            return data.draw(everyone, label="caller")
        options = st.sampled_from([BY_ADDRESS[a] for a in useful])
        return data.draw(weighted((3, options), (1, everyone)), label="caller")

    def _edge(self, data: st.DataObject, p: Prop | None) -> None:
        """Sometimes move the clock so that the next transaction runs at, just before or just
        after the proposal's executable time or expiry."""
        if p is None or data.draw(st.integers(0, 3), label="edge") != 3:
            return
        edges = [p.expires_at, p.expires_at + 1]
        if p.ready_at:
            edges += [p.ready_at + p.delay - 1, p.ready_at + p.delay]
        target = data.draw(st.sampled_from(edges), label="at")
        self._advance(target - 1 - self._pending())

    def _live(self, pid: int, p: Prop, c: Coll, ts: int) -> Outcome:
        if p.epoch != c.epoch:
            return ("CollectiveProposalStale", (pid, p.epoch, c.epoch))
        if ts > p.expires_at:
            return ("CollectiveProposalExpired", (pid, p.expires_at))
        return None

    def _pending_check(self, pid: int) -> Outcome:
        if pid not in self.props:
            return ("CollectiveUnknownProposal", (pid,))
        if self.props[pid].status != ProposalStatus.PENDING:
            return ("CollectiveProposalNotPending", (pid, self.props[pid].status))
        return None

    # -- income ----------------------------------------------------------------------------

    @rule(
        cid=st.sampled_from([1, 2]), amount=st.integers(0, 6_000), tag=st.sampled_from([0, 1, 2, 0, 1, 2, 3])
    )
    def record_income(self, cid: int, amount: int, tag: int) -> None:
        """Income untagged (0), tagged to a land asset (1, 2: one of them the other collective's),
        or to an unknown asset (3)."""
        expected: Outcome = None
        if amount == 0:
            expected = ("CollectiveZeroAmount", ())
        elif tag == 3:
            expected = ("CollectiveUnknownAsset", (3,))
        elif tag and self.assets[tag] != cid:
            expected = ("CollectiveAssetNotInCollective", (tag, cid))
        result = self._run(
            "income", lambda: self.fund.record_income(PAYER, cid, amount, tag, approve=False), expected
        )
        if result is None:
            return
        c = self.colls[cid]
        c.balance += amount
        c.income += amount
        if tag:
            self.asset_income[tag] += amount

    # -- proposals -------------------------------------------------------------------------

    @rule(data=st.data(), cid=st.sampled_from([1, 2]))
    def propose(self, data: st.DataObject, cid: int) -> None:
        c = self.colls[cid]
        village = [a for a, (r, _) in c.officers.items() if r != OfficerRole.NONE]
        proposer = self._pick_account(data, village)
        payee = data.draw(weighted((6, st.sampled_from(PAYEES[:2])), (1, st.just(PAYEES[2]))), label="payee")
        line = data.draw(weighted((6, st.integers(0, len(c.budgets) - 1)), (1, st.just(len(c.budgets)))))
        remaining = c.budgets[line] - c.spent[line] if line < len(c.budgets) else 0
        limits = [t.max_amount for t in c.tiers]
        candidates = sorted({1, remaining, remaining + 1, *limits, *(x + 1 for x in limits)} - {0})
        amount = data.draw(
            weighted((4, st.sampled_from(candidates)), (2, st.integers(1, 2_000)), (1, st.just(0))),
            label="amount",
        )
        self._propose_as(proposer, cid, payee, amount, line)

    def _propose_as(self, proposer: LocalAccount, cid: int, payee: str, amount: int, line: int) -> int | None:
        c = self.colls[cid]
        remaining = c.budgets[line] - c.spent[line] if line < len(c.budgets) else 0
        ts = self._pending()
        expected: Outcome = None
        tier: Tier | None = None
        if c.frozen:
            expected = ("CollectiveFrozen", (cid,))
        elif c.role(proposer.address) == OfficerRole.NONE:
            expected = ("CollectiveNotOfficer", (cid, proposer.address))
        elif proposer.address in self.frozen_wallets:
            expected = ("CollectiveOfficerFrozen", (cid, proposer.address))
        elif payee not in REGISTERED_PAYEES:
            expected = ("CollectivePayeeNotRegistered", (payee,))
        elif payee in self.frozen_wallets:
            expected = ("CollectivePayeeFrozen", (payee,))
        elif amount == 0:
            expected = ("CollectiveZeroAmount", ())
        elif line >= len(c.budgets):
            expected = ("CollectiveUnknownLine", (cid, line))
        elif amount > remaining:
            expected = ("CollectiveBudgetExceeded", (cid, line, remaining, amount))
        else:
            tier = next((t for t in c.tiers if amount <= t.max_amount), None)
            if tier is None:
                expected = ("CollectiveAmountAboveTiers", (cid, amount, c.tiers[-1].max_amount))
            else:  # split payments: the basis picks the tier, the highest one above them all
                basis = amount + self._recent(cid, payee, ts)
                tier = next((t for t in c.tiers if basis <= t.max_amount), c.tiers[-1])
        result = self._run(
            "propose", lambda: self.fund.propose(proposer, cid, payee, amount, line)[1], expected
        )
        if result is None:
            return None
        assert tier is not None
        pid = len(self.props) + 1
        assert result.named("ProposalCreated")[0]["proposalId"] == pid
        self.props[pid] = Prop(
            cid,
            proposer.address,
            payee,
            amount,
            line,
            tier.committee,
            tier.township,
            tier.delay,
            ts + c.lifetime,
            c.epoch,
            c.year,
        )
        return pid

    def _useful_approvers(self, p: Prop) -> list[str]:
        """Committee members who may still approve ``p``, and the supervisor when still needed."""
        c = self.colls[p.collective]
        useful = [
            a
            for a, (r, _) in c.officers.items()
            if r == OfficerRole.COMMITTEE and a != p.proposer and a not in p.approvers
        ]
        return useful + ([c.supervisor] if p.township_required and not p.township_approved else [])

    @precondition(has_pending)
    @rule(data=st.data())
    def approve(self, data: st.DataObject) -> None:
        pid = self._pick_prop(data)
        p = self.props.get(pid)
        self._edge(data, p)
        caller = self._pick_account(data, self._useful_approvers(p) if p else [])
        self._approve_as(caller, pid)

    def _approve_as(self, caller: LocalAccount, pid: int) -> None:
        p = self.props.get(pid)
        ts = self._pending()
        expected = self._pending_check(pid)
        township = False
        bit = 0
        if expected is None:
            assert p is not None
            c = self.colls[p.collective]
            role, slot = c.officers.get(caller.address, (OfficerRole.NONE, 0))
            township = caller.address == c.supervisor
            bit = 1 << slot
            if c.frozen:
                expected = ("CollectiveFrozen", (p.collective,))
            elif (live := self._live(pid, p, c, ts)) is not None:
                expected = live
            elif township:
                if p.township_approved:
                    expected = ("CollectiveAlreadyApproved", (pid, caller.address))
            elif role == OfficerRole.NONE:
                expected = ("CollectiveNotOfficer", (p.collective, caller.address))
            elif role != OfficerRole.COMMITTEE:
                expected = ("CollectiveNotApprover", (p.collective, caller.address))
            elif caller.address == p.proposer:
                expected = ("CollectiveSelfApproval", (pid, caller.address))
            elif p.approvals & bit:
                expected = ("CollectiveAlreadyApproved", (pid, caller.address))
            if expected is None and caller.address in self.frozen_wallets:
                expected = ("CollectiveOfficerFrozen", (p.collective, caller.address))
        result = self._run("approve", lambda: self.fund.approve(caller, pid), expected)
        if result is None:
            return
        assert p is not None
        if township:
            p.township_approved = True
        else:
            p.approvals |= bit
            p.approvers.append(caller.address)
        ready = result.named("ProposalReady")
        if not p.ready_at and p.approved:
            p.ready_at = ts
            assert [e["executableAt"] for e in ready] == [ts + p.delay]
        else:
            assert ready == []

    @precondition(has_pending)
    @rule(data=st.data())
    def execute(self, data: st.DataObject) -> None:
        pid = self._pick_prop(data)
        p = self.props.get(pid)
        self._edge(data, p)
        useful = [a for a, (r, _) in self.colls[p.collective].officers.items()] if p else []
        caller = self._pick_account(data, useful)
        ts = self._pending()
        expected = self._pending_check(pid)
        if expected is None:
            assert p is not None
            cid = p.collective
            c = self.colls[cid]
            remaining = c.budgets[p.line] - c.spent[p.line]
            if c.frozen:
                expected = ("CollectiveFrozen", (cid,))
            elif c.role(caller.address) == OfficerRole.NONE:
                expected = ("CollectiveNotOfficer", (cid, caller.address))
            elif caller.address in self.frozen_wallets:
                expected = ("CollectiveOfficerFrozen", (cid, caller.address))
            elif (live := self._live(pid, p, c, ts)) is not None:
                expected = live
            elif not p.approved:
                expected = (
                    "CollectiveNotApproved",
                    (pid, p.committee, p.committee_required, p.township_approved, p.township_required),
                )
            elif ts < p.ready_at + p.delay:
                expected = ("CollectiveTimelocked", (pid, p.ready_at + p.delay))
            elif p.amount > remaining:
                expected = ("CollectiveBudgetExceeded", (cid, p.line, remaining, p.amount))
            elif p.amount > c.balance:
                expected = ("CollectiveInsufficientFunds", (cid, c.balance, p.amount))
            elif p.payee in self.frozen_wallets:
                expected = ("WalletFrozen", (p.payee,))
        result = self._run("execute", lambda: self.fund.execute(caller, pid), expected)
        if result is None:
            return
        assert p is not None
        c = self.colls[p.collective]
        p.status = ProposalStatus.EXECUTED
        p.executed_day = (ts + BEIJING) // DAY
        c.spent[p.line] += p.amount
        c.balance -= p.amount
        c.paid += p.amount
        assert result.named("ProposalExecuted")[0]["lineSpent"] == c.spent[p.line]

    @precondition(has_pending)
    @rule(data=st.data(), cancel=st.booleans())
    def reject_or_cancel(self, data: st.DataObject, cancel: bool) -> None:
        pid = self._pick_prop(data)
        p = self.props.get(pid)
        useful: list[str] = []
        if p is not None:
            c = self.colls[p.collective]
            useful = [p.proposer] if cancel else [c.supervisor, *(a for a in c.officers if a != p.proposer)]
        caller = self._pick_account(data, useful)
        expected = self._pending_check(pid)
        if expected is None and p is not None:
            c = self.colls[p.collective]
            if cancel:
                if caller.address != p.proposer:
                    expected = ("CollectiveNotProposer", (pid, caller.address))
            elif caller.address != c.supervisor:
                role = c.role(caller.address)
                if role == OfficerRole.NONE:
                    expected = ("CollectiveNotOfficer", (p.collective, caller.address))
                elif role != OfficerRole.COMMITTEE:
                    expected = ("CollectiveNotApprover", (p.collective, caller.address))
        if cancel:
            result = self._run("cancel", lambda: self.fund.cancel(caller, pid), expected)
        else:
            result = self._run("reject", lambda: self.fund.reject(caller, pid), expected)
        if result is not None:
            assert p is not None
            p.status = ProposalStatus.CANCELLED if cancel else ProposalStatus.REJECTED

    # -- clock and supervision -------------------------------------------------------------

    @rule(seconds=st.one_of(st.integers(1, 2 * HOUR), st.integers(2 * HOUR, 3 * DAY)))
    def time_passes(self, seconds: int) -> None:
        self._advance(seconds)

    @rule(
        data=st.data(),
        cid=st.sampled_from([1, 2]),
        action=weighted(
            (2, st.just("freeze")),
            (1, st.just("officer")),
            (2, st.just("amend")),
            (1, st.just("payee_frozen")),
            (1, st.just("year")),
            (1, st.just("rules")),
            (1, st.just("window")),
        ),
    )
    def supervise(self, data: st.DataObject, cid: int, action: str) -> None:
        c = self.colls[cid]
        sup = BY_ADDRESS[c.supervisor]
        if action == "freeze":
            if c.frozen:
                self._run("unfreeze", lambda: self.fund.unfreeze(sup, cid), None)
            else:
                self._run("freeze", lambda: self.fund.freeze(sup, cid), None)
            c.frozen = not c.frozen
        elif action == "payee_frozen":  # the regulator freezes or unfreezes a payee's wallet
            payee = data.draw(st.sampled_from(sorted(REGISTERED_PAYEES)), label="payee")
            if payee in self.frozen_wallets:
                self.cash.unfreeze(TOWNSHIP, payee)
                self.frozen_wallets.discard(payee)
            else:
                self.cash.freeze(TOWNSHIP, payee)
                self.frozen_wallets.add(payee)
        elif action == "officer":
            account = data.draw(st.sampled_from(ACCOUNTS), label="account").address
            role = OfficerRole(data.draw(st.integers(0, 2), label="role"))
            previous = c.role(account)
            expected: Outcome = None
            if previous == role:
                expected = ("CollectiveOfficerUnchanged", (cid, account, role))
            elif account == c.supervisor:
                expected = ("CollectiveInvalidOfficer", (cid, account))
            if self._run("set_officer", lambda: self.fund.set_officer(sup, cid, account, role), expected):
                if role == OfficerRole.NONE:
                    del c.officers[account]
                elif previous == OfficerRole.NONE:
                    slot = c.free_slot()
                    assert slot is not None
                    c.officers[account] = (role, slot)
                else:
                    c.officers[account] = (role, c.officers[account][1])
                c.epoch += 1
        elif action == "amend":
            line = data.draw(st.integers(0, len(c.budgets) - 1), label="line")
            budget = data.draw(st.integers(max(c.spent[line] - 1, 0), c.spent[line] + 4_000), label="budget")
            expected = None
            if budget < c.spent[line]:
                expected = ("CollectiveBudgetBelowSpent", (cid, line, c.spent[line], budget))
            if self._run("amend", lambda: self.fund.amend_budget(sup, cid, line, budget), expected):
                c.budgets[line] = budget
        elif action == "year":
            budgets = data.draw(st.lists(st.integers(0, 6_000), min_size=1, max_size=3), label="budgets")
            lines = [(line_name(i), b) for i, b in enumerate(budgets)]
            self._run("open_year", lambda: self.fund.open_year(sup, cid, c.year + 1, lines), None)
            c.year += 1
            c.budgets, c.spent = budgets, [0] * len(budgets)
            c.epoch += 1
        elif action == "window":  # the township moves the split window (every collective)
            days = data.draw(st.sampled_from([0, 1, 2, 30, 91]), label="days")
            expected = None if 1 <= days <= 90 else ("CollectiveInvalidSplitWindow", (days, 90))
            if self._run("split_window", lambda: self.fund.set_split_window(TOWNSHIP, days), expected):
                self.split_window = days
        else:  # new tiers: committee-only up to a limit, then with the township
            limit = data.draw(st.integers(1, 3_000), label="limit")
            need = data.draw(st.integers(1, 2), label="committee")
            tiers = [Tier(limit, need), Tier(limit + 3_000, need, True, HOUR)]
            self._run("set_rules", lambda: self.fund.set_rules(sup, cid, tiers, c.lifetime), None)
            c.tiers = tiers
            c.epoch += 1

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def split_basis_matches_the_model(self) -> None:
        if not hasattr(self, "colls"):
            return
        # A call runs on the latest block or on top of it (the pending one): either clock.
        clocks = (int(self.w3.eth.get_block("latest")["timestamp"]), self._pending())
        for cid in self.colls:
            for payee in REGISTERED_PAYEES:
                models = {self._recent(cid, payee, ts) for ts in clocks}
                assert self.fund.recent_to(cid, payee) in models, (cid, payee, models)

    @invariant()
    def collectives_match_the_model(self) -> None:
        for cid, c in self.colls.items():
            on_chain = self.fund.collective(cid)
            assert (on_chain.supervisor, on_chain.frozen, on_chain.year, on_chain.epoch) == (
                c.supervisor,
                c.frozen,
                c.year,
                c.epoch,
            )
            assert (on_chain.balance, on_chain.total_income, on_chain.total_paid) == (
                c.balance,
                c.income,
                c.paid,
            )
            assert c.balance == c.income - c.paid
            assert self.fund.officers(cid) == {a: r for a, (r, _) in c.officers.items()}
            lines = self.fund.lines(cid)
            assert [(ln.budget, ln.spent) for ln in lines] == list(zip(c.budgets, c.spent, strict=True))
            for i, ln in enumerate(lines):
                assert ln.spent <= ln.budget
                charged = [
                    p.amount
                    for p in self.props.values()
                    if p.collective == cid
                    and p.year == c.year
                    and p.line == i
                    and p.status == ProposalStatus.EXECUTED
                ]
                assert ln.spent == sum(charged)
        for asset, cid in self.assets.items():
            a = self.fund.asset(asset)
            assert (a.collective_id, a.income_received) == (cid, self.asset_income[asset])

    @invariant()
    def money_is_backed(self) -> None:
        total = sum(c.balance for c in self.colls.values())
        assert self.fund.total_balance() == total
        assert self.cash.balance_of(self.fund.address) == total

    @invariant()
    def proposals_match_the_model(self) -> None:
        assert self.fund.counts()["proposals"] == len(self.props)
        for pid, p in self.props.items():
            q = self.fund.proposal(pid)
            assert (q.collective_id, q.proposer, q.payee, q.amount, q.line, q.status) == (
                p.collective,
                p.proposer,
                p.payee,
                p.amount,
                p.line,
                p.status,
            )
            assert (q.committee, q.committee_required, q.township_approved, q.township_required) == (
                p.committee,
                p.committee_required,
                p.township_approved,
                p.township_required,
            )
            assert (q.approvals, q.epoch, q.year, q.expires_at, q.delay, q.ready_at) == (
                p.approvals,
                p.epoch,
                p.year,
                p.expires_at,
                p.delay,
                p.ready_at,
            )

    @invariant()
    def every_payment_is_an_approved_executed_proposal(self) -> None:
        latest = self.w3.eth.block_number
        if latest <= self.last_block:
            return
        fund_topic = "0x" + bytes(12).hex() + self.fund.address[2:].lower()
        logs = self.w3.eth.get_logs(
            {
                "address": self.cash.cash.address,
                "fromBlock": self.last_block + 1,
                "toBlock": latest,
                "topics": ["0x" + self.transfer_topic.hex(), fund_topic],
            }
        )
        self.last_block = latest
        for log in logs:
            receipt = self.w3.eth.get_transaction_receipt(log["transactionHash"])
            executed = [
                e for e in self.cash.tx.events.decode_receipt(receipt) if e.name == "ProposalExecuted"
            ]
            transfer = self.cash.cash.events.Transfer().process_log(log)["args"]
            assert len(executed) == 1, "a payment without exactly one executed proposal"
            pid = executed[0]["proposalId"]
            assert pid not in self.paid_by_log, "a proposal paid twice"
            self.paid_by_log.add(pid)
            p = self.props[pid]
            assert (transfer["to"], transfer["value"]) == (p.payee, p.amount)
            assert p.status == ProposalStatus.EXECUTED
            assert len(set(p.approvers)) == p.committee >= p.committee_required
            assert p.proposer not in p.approvers
            assert p.township_approved or not p.township_required
        executed_ids = {i for i, p in self.props.items() if p.status == ProposalStatus.EXECUTED}
        assert self.paid_by_log == executed_ids


TestCollectiveInvariants = CollectiveMachine.TestCase
