"""Stateful property test of voucher programmes (Solmate-style invariants with ghost state).

Random programmes (grant list or open enrolment, plain or minimum-spend vouchers, with or without a
merchant list, starting now or tomorrow, a Merkle root that is sometimes worth more than the
budget), batch grants (to people, and now and then to a stranger or past a cap or the budget),
Merkle claims (honest, forged, repeated), enrolments, spends and holder-signed spends at allowed and
disallowed merchants, freezes and unfreezes of holders, merchants and the issuer (no new grants
out of a frozen issuer's budget, its clawback waits, its holders spend on), clock jumps across starts and
expiries, and clawbacks (again and again) run against the chain and against a Python model. Every
outcome is predicted before the call: success with the exact voucher share, or the exact custom
error and arguments. After every step: each programme on chain equals the model and budget ==
spent + returned + outstanding + ungranted; outstanding is the sum of its holders' balances; the
contract holds exactly the sum of outstanding and ungranted; every wallet holds what the model says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_account import Account
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chain import devtools
from chain.accounts import dev_account
from chain.backends import in_process
from chain.clients.token import CashClient, Kind
from chain.clients.vouchers import (
    MCC_GROCERY,
    MCC_RESTAURANT,
    Grant,
    Mode,
    Terms,
    VoucherClient,
    merkle_tree,
    programme_name,
)
from chain.deploy import deploy_all
from chain.exceptions import ContractError
from chain.sender import TxResult
from tests.conftest import identity
from tests.helpers import fast_profile_sizes
from tests.properties.models.vouchers import Programme

DAY = 86_400
YUAN = 100
OPERATOR, REGULATOR, KEEPER = dev_account(1), dev_account(2), dev_account(3)
ISSUER = dev_account(8)
ISSUER_OPENING = 10_000_000 * YUAN
HOLDER_OPENING = 5_000 * YUAN
PEOPLE = [dev_account(i) for i in (4, 5, 6)]  # tier 2; they hold gas and sign their own spends
STRANGER = Account.from_key(b"\x77" * 32).address  # never registered
MCC_GYM = 7997
# (address, category): the first two are allowed by some programmes, the gym by none.
MERCHANTS = [
    (Account.from_key(bytes([0x40 + i]) * 32).address, mcc) for i, mcc in enumerate((5411, 5812, 7997))
]
GRANTEES = [p.address for p in PEOPLE] + [STRANGER]

Outcome = tuple[str, tuple[Any, ...]] | None

_base: dict[str, Any] = {}


def base_chain() -> tuple[VoucherClient, CashClient, Any]:
    if not _base:
        w3 = in_process()
        vars(w3.provider.ethereum_tester.backend.chain).pop("gas_estimator", None)  # see the prepaid test
        manifest = deploy_all(w3)
        cash = CashClient(w3, manifest)
        vouchers = VoucherClient(w3, manifest, cash.tx)
        cash.register(OPERATOR, ISSUER.address, Kind.INSTITUTION, 1, 0, identity("issuer"))
        cash.mint(OPERATOR, ISSUER.address, ISSUER_OPENING)
        cash.approve(ISSUER, vouchers.address, 2**255)
        for person in PEOPLE:
            cash.register(OPERATOR, person.address, Kind.PERSONAL, 2, 0, identity(person.address))
            cash.mint(OPERATOR, person.address, HOLDER_OPENING)
            vouchers.approve_cash(person, 2**255)
        for address, mcc in MERCHANTS:
            cash.register(OPERATOR, address, Kind.MERCHANT, 2, mcc, identity(address))
        _base["clients"] = vouchers, cash
        _base["snap"] = devtools.snapshot(w3)
    return *_base["clients"], _base["snap"]


grants_strategy = st.lists(
    st.tuples(st.integers(0, len(GRANTEES) - 1), st.integers(1, 300_00)), min_size=1, max_size=4
)


class VoucherMachine(RuleBasedStateMachine):
    @initialize(count=st.integers(1, 2), data=st.data())
    def start(self, count: int, data: st.DataObject) -> None:
        """Revert to the base chain and create a programme or two."""
        self.vouchers, self.cash, snap = base_chain()
        self.w3 = self.cash.w3
        devtools.revert(self.w3, snap)
        self.cash.tx.nonces.reset()
        self.programmes: list[Programme] = []
        self.frozen: set[str] = set()
        self.issuer_frozen = False
        self.cash_of = {p.address: HOLDER_OPENING for p in PEOPLE} | {m: 0 for m, _ in MERCHANTS}
        self.cash_of[ISSUER.address] = ISSUER_OPENING
        self.nonces = {p.address: 0 for p in PEOPLE}
        self.touched: Programme | None = None
        for _ in range(count):
            self.create(data)
            self._seed(self.programmes[-1])

    def _seed(self, p: Programme) -> None:
        """Give every person a share of a new programme, so that spends have something to spend."""
        for person in PEOPLE:
            amount = min(p.terms.per_person_cap, p.terms.budget // 4)
            if p.terms.mode == Mode.OPEN_ENROLMENT:
                amount = p.terms.per_person_cap
            if self._grant_refusal(p, person.address, amount, {}) is not None:
                continue
            if p.terms.mode == Mode.OPEN_ENROLMENT:
                self.vouchers.enrol(person, p.pid)
            else:
                self.vouchers.grant(ISSUER, p.pid, [Grant(person.address, amount)])
            self._record_grant(p, person.address, amount)

    # -- helpers ---------------------------------------------------------------------------

    def _now(self) -> int:
        """The block.timestamp the next transaction will see."""
        return int(self.w3.provider.ethereum_tester.get_block_by_number("pending")["timestamp"])

    def _run(self, what: str, call: Callable[[], TxResult], expected: Outcome) -> TxResult | None:
        event(f"{what}: {expected[0] if expected else 'ok'}")
        try:
            result = call()
        except ContractError as exc:
            assert (exc.name, exc.args_tuple) == expected, f"{what}: expected {expected}, got {exc.signature}"
            return None
        assert expected is None, f"{what}: expected {expected}, but the call succeeded"
        return result

    def _grant_refusal(self, p: Programme, holder: str, amount: int, pending: dict[str, int]) -> Outcome:
        """What ``_grant`` says to ``amount`` more for ``holder``; ``pending`` holds earlier rows."""
        if holder == STRANGER:
            return ("VoucherNotPersonal", (holder,))
        after = p.holdings.get(holder, [0, 0, 0])[0] + pending.get(holder, 0) + amount
        if after > p.terms.per_person_cap:
            return ("VoucherOverPersonCap", (p.pid, holder, p.terms.per_person_cap, after))
        ungranted = p.terms.budget - p.granted - sum(pending.values())
        if amount > ungranted:
            return ("VoucherOverBudget", (p.pid, ungranted, amount))
        return None

    def _record_grant(self, p: Programme, holder: str, amount: int) -> None:
        p.holdings.setdefault(holder, [0, 0, 0])[0] += amount
        p.granted += amount

    def _allowed(self, p: Programme) -> list[tuple[str, int]]:
        """The merchants programme ``p`` pays (category allowed, listed when it has a list)."""
        return [(m, c) for m, c in MERCHANTS if c in p.categories and (not p.merchant_list or m in p.listed)]

    def _pick(self, data: st.DataObject, mode: Mode | None = None) -> Programme:
        """A programme (of ``mode``, when given and there is one)."""
        of_mode = [p for p in self.programmes if mode is None or p.terms.mode == mode]
        self.touched = data.draw(st.sampled_from(of_mode or self.programmes), label="programme")
        return self.touched

    # -- rules -----------------------------------------------------------------------------

    @rule(data=st.data())
    def create(self, data: st.DataObject) -> None:
        """A new programme on random terms; a grant-list one sometimes with a Merkle root."""
        mode = data.draw(st.sampled_from([Mode.GRANT_LIST, Mode.OPEN_ENROLMENT]), label="mode")
        budget = data.draw(st.integers(100, 2_000), label="budget yuan") * YUAN
        cap = data.draw(st.sampled_from([budget // 2, budget // 4, budget, 30 * YUAN + 1]), label="cap")
        rule_kind = data.draw(st.sampled_from(["plain", "threshold", "discount"]), label="rule")
        min_bill, discount = {
            "plain": (0, 0),
            "threshold": (50 * YUAN, 0),
            "discount": (100 * YUAN, 20 * YUAN),
        }[rule_kind]
        categories = data.draw(
            st.sampled_from([[MCC_GROCERY], [MCC_RESTAURANT], [MCC_GROCERY, MCC_RESTAURANT]]), label="mccs"
        )
        listed = [MERCHANTS[0][0]] if data.draw(st.booleans(), label="merchant list") else []
        now = self._now()
        starts = now + data.draw(st.sampled_from([0, 0, 0, DAY]), label="start")
        terms = Terms(
            programme_name(f"prop {len(self.programmes)}"),
            mode,
            starts,
            starts + data.draw(st.integers(2, 8), label="days") * DAY,
            budget,
            cap,
            min_bill,
            discount,
        )
        expected: Outcome = ("WalletFrozen", (ISSUER.address,)) if self.issuer_frozen else None
        result = self._run(
            "create",
            lambda: self.vouchers.create(ISSUER, terms, categories, listed, approve=False)[1],
            expected,
        )
        if result is None:  # a frozen issuer funds nothing
            return
        pid = int(result.named("ProgrammeCreated")[0]["id"])
        p = Programme(pid, terms, categories, set(listed), bool(listed))
        self.cash_of[ISSUER.address] -= budget
        if mode == Mode.GRANT_LIST and data.draw(st.booleans(), label="merkle"):
            rows = data.draw(grants_strategy, label="leaves")
            p.leaves = [Grant(GRANTEES[h], amount) for h, amount in rows]
            p.tree = merkle_tree(pid, p.leaves)
            self.vouchers.set_grant_root(ISSUER, pid, p.tree.root, len(p.leaves))
        self.programmes.append(p)
        self.touched = p

    @rule(data=st.data(), rows=grants_strategy)
    def grant(self, data: st.DataObject, rows: list[tuple[int, int]]) -> None:
        p = self._pick(data, Mode.GRANT_LIST)
        grants = [Grant(GRANTEES[h], amount) for h, amount in rows]
        expected: Outcome = None
        if p.terms.mode != Mode.GRANT_LIST:
            expected = ("VoucherWrongMode", (p.pid, Mode.GRANT_LIST))
        elif self._now() > p.terms.expires_at:
            expected = ("VoucherExpired", (p.pid, p.terms.expires_at))
        elif self.issuer_frozen:
            expected = ("VoucherIssuerFrozen", (p.pid, ISSUER.address))
        pending: dict[str, int] = {}
        if expected is None:
            for g in grants:
                expected = self._grant_refusal(p, g.holder, g.amount, pending)
                if expected is not None:
                    break
                pending[g.holder] = pending.get(g.holder, 0) + g.amount
        if self._run("grant", lambda: self.vouchers.grant(ISSUER, p.pid, grants), expected):
            for g in grants:
                self._record_grant(p, g.holder, g.amount)

    @precondition(lambda self: any(p.tree is not None for p in self.programmes))
    @rule(data=st.data(), honest=st.integers(0, 5))
    def claim(self, data: st.DataObject, honest: int) -> None:
        """Mostly the leaf as it is; one time in six with its amount raised by one fen (forged)."""
        p = data.draw(st.sampled_from([p for p in self.programmes if p.tree is not None]), label="programme")
        assert p.tree is not None
        self.touched = p
        i = data.draw(st.integers(0, len(p.leaves)), label="leaf")  # one past the end: unknown
        leaf = p.leaves[min(i, len(p.leaves) - 1)]
        g = leaf if honest else Grant(leaf.holder, leaf.amount + 1)
        expected: Outcome = None
        if self._now() > p.terms.expires_at:
            expected = ("VoucherExpired", (p.pid, p.terms.expires_at))
        elif i >= len(p.leaves):
            expected = ("VoucherUnknownLeaf", (p.pid, i))
        elif i in p.claimed:
            expected = ("VoucherAlreadyClaimed", (p.pid, i))
        elif not honest:
            expected = ("VoucherInvalidProof", (p.pid, i))
        elif self.issuer_frozen:  # the claim waits; the leaf stays claimable
            expected = ("VoucherIssuerFrozen", (p.pid, ISSUER.address))
        else:
            expected = self._grant_refusal(p, g.holder, g.amount, {})
        proof = p.tree.proof(min(i, len(p.leaves) - 1))
        if self._run("claim", lambda: self.vouchers.claim(KEEPER, p.pid, i, g, proof), expected):
            p.claimed.add(i)
            self._record_grant(p, g.holder, g.amount)

    @rule(data=st.data(), who=st.integers(0, len(PEOPLE) - 1))
    def enrol(self, data: st.DataObject, who: int) -> None:
        p = self._pick(data, Mode.OPEN_ENROLMENT)
        holder = PEOPLE[who]
        expected: Outcome = None
        if p.terms.mode != Mode.OPEN_ENROLMENT:
            expected = ("VoucherWrongMode", (p.pid, Mode.OPEN_ENROLMENT))
        elif self._now() > p.terms.expires_at:
            expected = ("VoucherExpired", (p.pid, p.terms.expires_at))
        elif p.holdings.get(holder.address, [0])[0] != 0:
            expected = ("VoucherAlreadyEnrolled", (p.pid, holder.address))
        elif holder.address in self.frozen:
            expected = ("VoucherHolderFrozen", (holder.address,))
        elif self.issuer_frozen:
            expected = ("VoucherIssuerFrozen", (p.pid, ISSUER.address))
        else:
            expected = self._grant_refusal(p, holder.address, p.terms.per_person_cap, {})
        if self._run("enrol", lambda: self.vouchers.enrol(holder, p.pid), expected):
            self._record_grant(p, holder.address, p.terms.per_person_cap)

    @rule(
        data=st.data(),
        aim=st.integers(0, 5),
        bill=st.one_of(st.integers(1, 600_00), st.sampled_from([50_00 - 1, 50_00, 100_00 - 1, 100_00])),
        signed=st.booleans(),
    )
    def spend(self, data: st.DataObject, aim: int, bill: int, signed: bool) -> None:
        """Five times in six aimed at a holder with a balance and a merchant the programme allows."""
        holding = [
            (p, h) for p in self.programmes for h in PEOPLE if p.balance(h.address) and self._allowed(p)
        ]
        if aim and holding:
            p, holder = data.draw(st.sampled_from(holding), label="programme and holder")
            self.touched = p
            merchant, mcc = data.draw(st.sampled_from(self._allowed(p)), label="merchant")
        else:
            p = self._pick(data)
            holder = data.draw(st.sampled_from(PEOPLE), label="holder")
            merchant, mcc = data.draw(st.sampled_from(MERCHANTS), label="merchant")
        now, t = self._now(), p.terms
        expected: Outcome = None
        share = 0
        if now < t.starts_at:
            expected = ("VoucherNotStarted", (p.pid, t.starts_at))
        elif now > t.expires_at:
            expected = ("VoucherExpired", (p.pid, t.expires_at))
        elif mcc not in p.categories:
            expected = ("VoucherCategoryNotAllowed", (p.pid, merchant, mcc))
        elif p.merchant_list and merchant not in p.listed:
            expected = ("VoucherMerchantNotListed", (p.pid, merchant))
        elif holder.address in self.frozen:
            expected = ("VoucherHolderFrozen", (holder.address,))
        elif merchant in self.frozen:
            expected = ("VoucherMerchantFrozen", (merchant,))
        elif bill < t.min_bill:
            expected = ("VoucherBelowMinimum", (p.pid, t.min_bill, bill))
        elif p.balance(holder.address) == 0:
            expected = ("VoucherNoBalance", (p.pid, holder.address))
        else:
            share = t.share(bill, p.balance(holder.address))
            own = bill - share
            if own > self.cash_of[holder.address]:
                expected = ("ERC20InsufficientBalance", (holder.address, self.cash_of[holder.address], own))
        if signed:
            deadline = now + 600
            signature = self.vouchers.sign_spend(holder, p.pid, merchant, bill, deadline)
            call = lambda: self.vouchers.spend_with_signature(  # noqa: E731
                KEEPER, p.pid, holder.address, merchant, bill, deadline, signature
            )
        else:
            call = lambda: self.vouchers.spend(holder, p.pid, merchant, bill)  # noqa: E731
        result = self._run("spend signed" if signed else "spend", call, expected)
        if result is None:
            return
        spent = result.named("Spent")[0]
        assert (spent["voucher"], spent["cash"], spent["category"]) == (share, bill - share, mcc)
        p.holdings[holder.address][1] += share
        p.spent += share
        p.by_category[mcc] = p.by_category.get(mcc, 0) + share
        self.cash_of[holder.address] -= bill - share
        self.cash_of[merchant] += bill
        if signed:
            self.nonces[holder.address] += 1

    @rule(who=st.integers(0, len(PEOPLE) + len(MERCHANTS) - 1))
    def toggle_freeze(self, who: int) -> None:
        address = PEOPLE[who].address if who < len(PEOPLE) else MERCHANTS[who - len(PEOPLE)][0]
        if address in self.frozen:
            self.cash.unfreeze(REGULATOR, address)
            self.frozen.discard(address)
        else:
            self.cash.freeze(REGULATOR, address)
            self.frozen.add(address)

    @rule()
    def toggle_issuer_freeze(self) -> None:
        if self.issuer_frozen:
            self.cash.unfreeze(REGULATOR, ISSUER.address)
        else:
            self.cash.freeze(REGULATOR, ISSUER.address)
        self.issuer_frozen = not self.issuer_frozen

    @rule(seconds=st.sampled_from([3_600, 3_600, DAY, 4 * DAY]))
    def warp(self, seconds: int) -> None:
        devtools.increase_time(self.w3, seconds)

    @rule(data=st.data(), named=st.lists(st.integers(0, len(GRANTEES) - 1), max_size=4))
    def close(self, data: st.DataObject, named: list[int]) -> None:
        p = self._pick(data)
        holders = [GRANTEES[i] for i in named]
        expected: Outcome = None
        plan: dict[str, int] = {}
        if self._now() <= p.terms.expires_at:
            expected = ("VoucherNotExpired", (p.pid, p.terms.expires_at))
        else:
            for h in holders:
                if p.balance(h) > 0 and h not in plan:
                    plan[h] = p.balance(h)
            if p.budget_returned and not plan:
                expected = ("VoucherNothingToReturn", (p.pid,))
            elif self.issuer_frozen:  # the clawback waits unless it returns nothing at all
                returning = sum(plan.values()) + (0 if p.budget_returned else p.terms.budget - p.granted)
                if returning:
                    expected = ("WalletFrozen", (ISSUER.address,))
        result = self._run("close", lambda: self.vouchers.close(KEEPER, p.pid, holders), expected)
        if result is None:
            return
        amount = sum(plan.values())
        if not p.budget_returned:
            p.returned_budget = p.terms.budget - p.granted
            p.budget_returned = True
            amount += p.returned_budget
        for h, left in plan.items():
            p.holdings[h][2] += left
        p.returned_grants += sum(plan.values())
        self.cash_of[ISSUER.address] += amount
        assert [(e["holder"], e["amount"]) for e in result.named("GrantReturned")] == list(plan.items())

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def programmes_match_the_model_and_conserve(self) -> None:
        """Every programme's counters after every step; holders and categories of the one touched.

        (A step changes one programme at most, so checking the touched one in depth keeps every
        holder balance and category total checked after each change, at a third of the calls.)
        """
        for p in getattr(self, "programmes", []):
            on_chain = self.vouchers.programme(p.pid)
            assert (
                on_chain.granted,
                on_chain.spent,
                on_chain.returned_grants,
                on_chain.returned_budget,
                on_chain.budget_returned,
            ) == (p.granted, p.spent, p.returned_grants, p.returned_budget, p.budget_returned)
            assert (
                on_chain.budget
                == on_chain.spent + on_chain.returned + on_chain.outstanding + on_chain.ungranted
            )
        p = getattr(self, "touched", None)
        if p is None:
            return
        t = self.vouchers.totals(p.pid)
        assert t.budget == t.spent + t.returned + t.outstanding + t.ungranted
        assert (t.outstanding, t.ungranted) == (p.outstanding, p.ungranted)
        balances = {h.address: self.vouchers.balance(p.pid, h.address) for h in PEOPLE}
        assert balances == {h: p.balance(h) for h in balances}
        assert t.outstanding == sum(balances.values())  # the stranger is never granted anything
        assert {c: v for c, v in t.by_category.items() if v} == {c: v for c, v in p.by_category.items() if v}
        self.touched = None

    @invariant()
    def the_contract_holds_exactly_outstanding_plus_ungranted(self) -> None:
        if not hasattr(self, "programmes"):
            return
        held = sum(p.outstanding + p.ungranted for p in self.programmes)
        assert self.cash.balance_of(self.vouchers.address) == self.vouchers.total_held() == held
        assert {a: self.cash.balance_of(a) for a in self.cash_of} == self.cash_of
        assert {a: self.vouchers.nonce(a) for a in self.nonces} == self.nonces


TestVoucherInvariants = VoucherMachine.TestCase
# 4 sequences of 20 steps reach every rule (the third reaches the last: claim); XCPAY_RULE_REACH.
fast_profile_sizes(TestVoucherInvariants, 4, 20)
