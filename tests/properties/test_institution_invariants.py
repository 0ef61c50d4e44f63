"""Stateful property test of the two tiers (issue 24): the central bank allocates and withdraws
reserves, three institutions issue to and redeem from the wallets they serve, and customers pay
across institutions. After every step the chain agrees with a small Python model on each outcome
(which error, or success), each institution's reserve and outstanding issuance, and each balance;
the supply equals the sum of the institutions' outstanding and never exceeds the reserves; no
institution is over its reserve."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chain import devtools
from chain.accounts import INSTITUTION_DEV_ACCOUNTS, dev_account
from chain.backends import in_process
from chain.clients.tiers import InstitutionsClient, authorise_institution
from chain.clients.token import CashClient, Kind
from chain.deploy import deploy_all
from chain.exceptions import ContractError
from tests.conftest import identity
from tests.helpers import fast_profile_sizes

FIRST = 2**128 - 1
ADMIN, OPERATOR, CENTRAL_BANK = dev_account(0), dev_account(1), dev_account(2)
SIGNERS = {
    1: OPERATOR,
    2: dev_account(INSTITUTION_DEV_ACCOUNTS[0]),
    3: dev_account(INSTITUTION_DEV_ACCOUNTS[1]),
}
# Each institution serves two customers (tier 2: a cap far above the amounts here).
CUSTOMERS = {
    1: [dev_account(3), dev_account(4)],
    2: [dev_account(5), dev_account(6)],
    3: [dev_account(7), dev_account(8)],
}
SERVED = {a.address: i for i, accounts in CUSTOMERS.items() for a in accounts}
HOLDERS = [a for accounts in CUSTOMERS.values() for a in accounts]

_base: dict[str, object] = {}


def base_chain() -> tuple[CashClient, InstitutionsClient, object]:
    if not _base:
        w3 = in_process()
        manifest = deploy_all(w3)
        cash = CashClient(w3, manifest)
        book = InstitutionsClient(w3, manifest, cash.tx)
        for i in (2, 3):
            authorise_institution(book, ADMIN, CENTRAL_BANK, SIGNERS[i].address, f"bank {i}")
        for i, accounts in CUSTOMERS.items():
            for a in accounts:
                if i == 1:
                    cash.register(OPERATOR, a.address, Kind.PERSONAL, 2, 0, identity(a.address))
                else:
                    book.register(SIGNERS[i], a.address, Kind.PERSONAL, 2, 0, identity(a.address))
        for a in HOLDERS:  # each customer lets its institution redeem
            cash.tx.transact(a, cash.cash.functions.approve(SIGNERS[SERVED[a.address]].address, 2**255))
        _base.update(cash=cash, book=book, snap=devtools.snapshot(w3))
    return _base["cash"], _base["book"], _base["snap"]  # type: ignore[return-value]


institutions = st.sampled_from([1, 2, 3])
holders = st.sampled_from(HOLDERS)
amounts = st.integers(1, 3_000_00)


class InstitutionMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.cash, self.book, snap = base_chain()
        devtools.revert(self.cash.w3, snap)
        _base["snap"] = devtools.snapshot(self.cash.w3)  # eth-tester snapshots are single-use
        self.cash.tx.nonces.reset()
        self.reserve = {1: FIRST, 2: 0, 3: 0}
        self.outstanding = {1: 0, 2: 0, 3: 0}
        self.balance = {a.address: 0 for a in HOLDERS}

    def _outcome(self, call: object, expected: str | None) -> None:
        try:
            call()  # type: ignore[operator]
            got = None
        except ContractError as exc:
            got = exc.name
        assert got == expected, f"expected {expected}, got {got}"

    @rule(i=st.sampled_from([2, 3]), amount=amounts)
    def allocate(self, i: int, amount: int) -> None:
        self._outcome(lambda: self.book.allocate(CENTRAL_BANK, i, amount), None)
        self.reserve[i] += amount

    @rule(i=st.sampled_from([2, 3]), amount=amounts)
    def withdraw(self, i: int, amount: int) -> None:
        refused = amount > self.reserve[i] or self.reserve[i] - amount < self.outstanding[i]
        self._outcome(
            lambda: self.book.withdraw(CENTRAL_BANK, i, amount),
            "ReserveBelowOutstanding" if refused else None,
        )
        if not refused:
            self.reserve[i] -= amount

    @rule(i=institutions, holder=holders, amount=amounts)
    def issue(self, i: int, holder: object, amount: int) -> None:
        to = holder.address  # type: ignore[attr-defined]
        if SERVED[to] != i:
            expected: str | None = "WalletServedElsewhere"
        elif self.outstanding[i] + amount > self.reserve[i]:
            expected = "ReserveExceeded"
        else:
            expected = None
        self._outcome(lambda: self.cash.mint(SIGNERS[i], to, amount), expected)
        if expected is None:
            self.outstanding[i] += amount
            self.balance[to] += amount

    @rule(holder=holders, amount=amounts)
    def redeem(self, holder: object, amount: int) -> None:
        frm = holder.address  # type: ignore[attr-defined]
        i = SERVED[frm]
        expected = "ERC20InsufficientBalance" if amount > self.balance[frm] else None
        self._outcome(lambda: self.cash.redeem(SIGNERS[i], frm, amount), expected)
        if expected is None:
            self.outstanding[i] -= amount
            self.balance[frm] -= amount

    @rule(payer=holders, payee=holders, amount=amounts)
    def pay(self, payer: object, payee: object, amount: int) -> None:
        a, b = payer.address, payee.address  # type: ignore[attr-defined]
        expected = "ERC20InsufficientBalance" if amount > self.balance[a] else None
        self._outcome(
            lambda: self.cash.tx.transact(payer, self.cash.cash.functions.transfer(b, amount)), expected
        )
        if expected is None:
            self.balance[a] -= amount
            self.balance[b] += amount

    @invariant()
    def the_book_agrees_with_the_model(self) -> None:
        if not hasattr(self, "book"):
            return
        for i in (1, 2, 3):
            record = self.book.institution(i)
            assert (record.reserve, record.outstanding) == (self.reserve[i], self.outstanding[i])
            assert record.outstanding <= record.reserve
        for a, fen in self.balance.items():
            assert self.cash.balance_of(a) == fen

    @invariant()
    def supply_is_the_sum_of_outstanding_within_the_reserves(self) -> None:
        if not hasattr(self, "book"):
            return
        supply = self.cash.total_supply()
        totals = self.book.totals()
        assert supply == sum(self.outstanding.values()) == totals["issued"] - totals["redeemed"]
        assert supply <= totals["reserve"]
        assert self.book.book.functions.institutionsOverReserve().call() == 0


TestInstitutionInvariants = InstitutionMachine.TestCase
fast_profile_sizes(TestInstitutionInvariants, 3, 12)
