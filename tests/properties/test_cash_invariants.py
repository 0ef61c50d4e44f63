"""Stateful property test of the digital cash (Solmate-style invariants with ghost state).

Random sequences of mints, transfers, redemptions, freezes and day changes run against the
chain and against a small Python model of the rules. After every step: the chain agrees with the
model on each outcome (which error, or success) and each balance; total supply equals the sum of
balances; no wallet is above its tier's balance cap or its daily cap.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chain import devtools
from chain.accounts import dev_account
from chain.backends import in_process
from chain.clients.token import CashClient, Kind
from chain.deploy import deploy_all
from chain.exceptions import ContractError
from tests.conftest import identity
from tests.helpers import fast_profile_sizes
from tests.properties.models.cash import TIERS, Model

DAY = 86_400
OFFSET = 8 * 3600
# Three registered holders of different tiers and one wallet that is never registered.
HOLDERS = [(dev_account(3), 3), (dev_account(4), 4), (dev_account(5), 2)]
STRANGER = dev_account(6)
OPERATOR = dev_account(1)
REGULATOR = dev_account(2)

_base: dict[str, object] = {}


def base_chain() -> tuple[CashClient, object]:
    """One chain for the whole module, with the holders registered; examples revert to it."""
    if not _base:
        w3 = in_process()
        cash = CashClient(w3, deploy_all(w3))
        for account, tier in HOLDERS:
            cash.register(OPERATOR, account.address, Kind.PERSONAL, tier, 0, identity(account.address))
        _base["cash"] = cash
        _base["snap"] = devtools.snapshot(w3)
    return _base["cash"], _base["snap"]  # type: ignore[return-value]


wallets = st.sampled_from([a.address for a, _ in HOLDERS] + [STRANGER.address])
holders = st.sampled_from([a for a, _ in HOLDERS])
amounts = st.one_of(st.integers(0, 3_000_00), st.integers(3_000_00, 60_000_00))


class CashMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.cash, snap = base_chain()
        devtools.revert(self.cash.w3, snap)
        self.snap = devtools.snapshot(self.cash.w3)  # eth-tester snapshots are single-use
        _base["snap"] = self.snap
        self.cash.tx.nonces.reset()
        self.model = Model(
            tiers={a.address: t for a, t in HOLDERS}, balances={a.address: 0 for a, _ in HOLDERS}
        )

    def _pending_day(self) -> int:
        ts = self.cash.w3.provider.ethereum_tester.get_block_by_number("pending")["timestamp"]
        return (ts + OFFSET) // DAY

    def _outcome(self, call) -> str | None:  # type: ignore[no-untyped-def]
        try:
            call()
        except ContractError as exc:
            return exc.name
        return None

    @rule(to=wallets, amount=amounts)
    def mint(self, to: str, amount: int) -> None:
        expected = self.model.expect_mint(to, amount)
        assert self._outcome(lambda: self.cash.mint(OPERATOR, to, amount)) == expected
        if expected is None:
            self.model.balances[to] += amount

    @rule(sender=holders, to=wallets, amount=amounts)
    def transfer(self, sender, to: str, amount: int) -> None:  # type: ignore[no-untyped-def]
        frm = sender.address
        day = self._pending_day()
        expected = self.model.expect_transfer(frm, to, amount, day)
        assert self._outcome(lambda: self.cash.transfer(sender, to, amount)) == expected
        if expected is None:
            self.model.balances[frm] -= amount
            self.model.balances[to] += amount
            self.model.spent[frm] = (day, self.model.spent_on(frm, day) + amount)

    @rule(holder=holders, amount=st.integers(1, 5_000_00))
    def redeem(self, holder, amount: int) -> None:  # type: ignore[no-untyped-def]
        wallet = holder.address
        if wallet in self.model.frozen:
            expected: str | None = "WalletFrozen"
        elif self.model.balances[wallet] < amount:
            expected = "ERC20InsufficientBalance"
        else:
            expected = None
        self.cash.approve(
            holder, OPERATOR.address, amount
        )  # approving is not a movement: allowed when frozen
        assert self._outcome(lambda: self.cash.redeem(OPERATOR, wallet, amount)) == expected
        if expected is None:
            self.model.balances[wallet] -= amount

    @rule(holder=holders)
    def toggle_freeze(self, holder) -> None:  # type: ignore[no-untyped-def]
        if holder.address in self.model.frozen:
            self.cash.unfreeze(REGULATOR, holder.address)
            self.model.frozen.discard(holder.address)
        else:
            self.cash.freeze(REGULATOR, holder.address)
            self.model.frozen.add(holder.address)

    @rule(hours=st.sampled_from([1, 12, 24, 30]))
    def time_passes(self, hours: int) -> None:
        devtools.increase_time(self.cash.w3, hours * 3600)

    @invariant()
    def chain_matches_model(self) -> None:
        for wallet, balance in self.model.balances.items():
            assert self.cash.balance_of(wallet) == balance
        assert self.cash.balance_of(STRANGER.address) == 0

    @invariant()
    def supply_equals_sum_of_balances(self) -> None:
        total = sum(self.cash.balance_of(a.address) for a, _ in HOLDERS) + self.cash.balance_of(
            STRANGER.address
        )
        assert self.cash.total_supply() == total

    @invariant()
    def no_wallet_above_its_caps(self) -> None:
        for account, tier in HOLDERS:
            balance_cap, _, daily_cap = TIERS[tier]
            assert self.cash.balance_of(account.address) <= balance_cap
            assert self.cash.spent_today(account.address) <= daily_cap


TestCashInvariants = CashMachine.TestCase
# 4 sequences of 20 steps (hypothesis ran 3) reach every rule; measured with XCPAY_RULE_REACH.
fast_profile_sizes(TestCashInvariants, 4, 20)
