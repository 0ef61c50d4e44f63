"""Stateful property test of holds, court orders and recovery on the digital cash.

Random sequences of mints, transfers, redemptions, freezes, holds placed and lifted, court orders
(proposed by one regulator, approved by another) and recoveries (proposed by the operator,
approved by a regulator) run against the chain and a small Python model. After every step the
chain agrees with the model on each outcome (which error, or success), each balance and each held
amount; the supply equals the sum of balances; no wallet is above its balance or daily cap; a
retired wallet holds nothing; every identity resolves to exactly its one live personal wallet.

Each holder also holds something in every family that holds for wallets (a voucher holding, a
prepaid package, a quick-pay mandate, a card with a reserve). A recovered wallet's family holdings
are moved to its successor by a step of their own (refused for a wallet not retired, to any other
address, and a second time); per family nothing is left on the retired wallet, the successor holds
exactly what the old one held, and the family's totals and the supply do not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from web3 import Web3

from chain import devtools
from chain.accounts import dev_account
from chain.backends import in_process
from chain.clients.hardwallet import CardForm, HardWalletClient, QuickPayClient
from chain.clients.prepaid import PrepaidClient
from chain.clients.token import CashClient, Kind, bytes32_text
from chain.clients.vouchers import Grant, Mode, Terms, VoucherClient, programme_name
from chain.deploy import deploy_all
from chain.exceptions import ContractError
from tests.conftest import identity
from tests.helpers import fast_profile_sizes

DAY = 86_400
OFFSET = 8 * 3600
TIERS = {
    3: (20_000_00, 5_000_00, 10_000_00),
    4: (10_000_00, 2_000_00, 5_000_00),
    2: (500_000_00, 50_000_00, 100_000_00),
}
HOLDERS = [(dev_account(3), 3), (dev_account(4), 4), (dev_account(5), 2)]
# New wallets for recoveries (funded development accounts: they pay gas once they hold the cash).
SPARES = [dev_account(7), dev_account(8), dev_account(10)]
STRANGER = dev_account(6)
OPERATOR = dev_account(1)
REGULATOR = dev_account(2)
CHECKER = dev_account(9)  # a second regulator key
SIGNERS = [a for a, _ in HOLDERS] + SPARES + [STRANGER]
START = 5_000_00  # each holder's cash at the start, so that court orders and holds have money to act on
CASE = bytes32_text("(2026)苏0507执9号")
EVIDENCE = Web3.keccak(text="verified in branch")

ISSUER = dev_account(11)  # an institution: the voucher programme's issuer
MERCHANT = Web3.to_checksum_address("0x" + "5e" * 20)  # a merchant wallet (it signs nothing here)
VOUCHER, SESSIONS, PRICE, RESERVE = 100_00, 10, 10_00, 50_00  # each holder's family holdings

_base: dict[str, object] = {}


@dataclass(frozen=True)
class Families:
    vouchers: VoucherClient
    prepaid: PrepaidClient
    quickpay: QuickPayClient
    hardwallet: HardWalletClient
    programme: int
    # per holder: (package id, mandate id, card address)
    held: dict[str, tuple[int, int, str]]


def base_chain() -> tuple[CashClient, Families, object]:
    """One chain for the module: holders registered, a second regulator, each holder's family
    holdings (the day rolled over after them: no cap is charged today); examples revert to it."""
    if not _base:
        w3 = in_process()
        manifest = deploy_all(w3)
        cash = CashClient(w3, manifest)
        vouchers, prepaid = VoucherClient(w3, manifest, cash.tx), PrepaidClient(w3, manifest, cash.tx)
        quickpay, hardwallet = QuickPayClient(w3, manifest, cash.tx), HardWalletClient(w3, manifest, cash.tx)
        for account, tier in HOLDERS:
            cash.register(OPERATOR, account.address, Kind.PERSONAL, tier, 0, identity(account.address))
            cash.mint(OPERATOR, account.address, START + SESSIONS * PRICE + RESERVE)
        role = cash.registry.functions.REGULATOR_ROLE().call()
        cash.tx.transact(dev_account(0), cash.registry.functions.grantRole(role, CHECKER.address))
        cash.register(OPERATOR, ISSUER.address, Kind.INSTITUTION, 1, 0, identity("issuer"))
        cash.register(OPERATOR, MERCHANT, Kind.MERCHANT, 2, 5411, identity("merchant"))
        cash.mint(OPERATOR, ISSUER.address, 10_000_00)
        t = int(w3.eth.get_block("latest")["timestamp"])
        year = t + 365 * DAY
        terms = Terms(programme_name("red packets"), Mode.GRANT_LIST, t, year, 1_000_00, VOUCHER)
        programme, _ = vouchers.create(ISSUER, terms, [5411])
        vouchers.grant(ISSUER, programme, [Grant(a.address, VOUCHER) for a, _ in HOLDERS])
        prepaid.enrol(REGULATOR, MERCHANT, 10_000)
        held = {}
        for i, (account, _) in enumerate(HOLDERS):
            package, _ = prepaid.prepay(account, MERCHANT, SESSIONS, PRICE, year)
            mandate, _ = quickpay.grant(account, MERCHANT, 10_00, 20_00, year)
            card = Web3.to_checksum_address(f"0x{i + 1:040x}")
            hardwallet.register_card(OPERATOR, card, account.address, CardForm.CARD)
            hardwallet.load(account, card, RESERVE)
            held[account.address] = (package, mandate, card)
        devtools.increase_time(w3, DAY)
        _base["cash"] = cash
        _base["families"] = Families(vouchers, prepaid, quickpay, hardwallet, programme, held)
        _base["snap"] = devtools.snapshot(w3)
    return _base["cash"], _base["families"], _base["snap"]  # type: ignore[return-value]


@dataclass
class Wallet:
    tier: int
    identity: bytes
    balance: int = 0
    frozen: bool = False
    retired: bool = False
    day: int = 0
    spent: int = 0

    def spent_on(self, day: int) -> int:
        return self.spent if self.day == day else 0


@dataclass
class Model:
    wallets: dict[str, Wallet] = field(default_factory=dict)
    holds: dict[int, tuple[str, int]] = field(default_factory=dict)  # active: id -> (wallet, amount)
    orders: dict[int, tuple[str, str, int, int]] = field(default_factory=dict)  # pending
    recoveries: dict[int, tuple[str, str]] = field(default_factory=dict)  # pending: id -> (lost, new)
    hold_count: int = 0
    order_count: int = 0
    recovery_count: int = 0
    spares: list[LocalAccount] = field(default_factory=lambda: list(SPARES))
    successor: dict[str, str] = field(default_factory=dict)  # retired -> the wallet that replaced it
    # who holds each family holding (a voucher holding is named by its first holder)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)

    def held(self, wallet: str) -> int:
        return sum(amount for w, amount in self.holds.values() if w == wallet)

    def admitted(self, wallet: str) -> str | None:
        w = self.wallets.get(wallet)
        if w is None:
            return "WalletNotRegistered"
        if w.retired:
            return "WalletRetired"
        if w.frozen:
            return "WalletFrozen"
        return None

    def expect_out(self, frm: str, amount: int) -> str | None:
        """The sender's side of a movement: admitted, then the holds."""
        if err := self.admitted(frm):
            return err
        held = self.held(frm)
        if held and amount > max(self.wallets[frm].balance - held, 0):
            return "AmountFrozen"
        return None

    def expect_in(self, to: str, after: int) -> str | None:
        if err := self.admitted(to):
            return err
        return None

    def over_cap(self, to: str, after: int) -> bool:
        return after > TIERS[self.wallets[to].tier][0]


def outcome(call) -> str | None:  # type: ignore[no-untyped-def]
    try:
        call()
    except ContractError as exc:
        return exc.name
    return None


addresses = st.sampled_from([a.address for a in SIGNERS])
signers = st.sampled_from(SIGNERS)
amounts = st.one_of(st.integers(0, 3_000_00), st.integers(3_000_00, 30_000_00))


class IdentityMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.cash, self.families, snap = base_chain()
        devtools.revert(self.cash.w3, snap)
        self.snap = devtools.snapshot(self.cash.w3)  # eth-tester snapshots are single-use
        _base["snap"] = self.snap
        self.cash.tx.nonces.reset()
        self.model = Model(wallets={a.address: Wallet(t, identity(a.address), START) for a, t in HOLDERS})
        f = self.families
        for holder, (package, mandate, card) in f.held.items():
            for kind, item in (("voucher", holder), ("package", str(package)), ("mandate", str(mandate))):
                self.model.owners[(kind, item)] = holder
            self.model.owners[("card", card)] = holder
        self.family_totals = self._family_totals()
        f = self.families
        elsewhere = (f.vouchers.address, f.prepaid.address, f.hardwallet.address, ISSUER.address, MERCHANT)
        self.elsewhere = sum(self.cash.balance_of(a) for a in elsewhere)

    def _family_totals(self) -> tuple[int, int, int]:
        """What the voucher, prepaid and card contracts hold (each equal to its token balance)."""
        f = self.families
        totals = (
            f.vouchers.total_held(),
            f.prepaid.totals()["held"],
            int(f.hardwallet.contract.functions.totalReserve().call()),
        )
        addresses = (f.vouchers.address, f.prepaid.address, f.hardwallet.address)
        assert totals == tuple(self.cash.balance_of(a) for a in addresses)
        return totals

    def _day(self) -> int:
        ts = self.cash.w3.provider.ethereum_tester.get_block_by_number("pending")["timestamp"]
        return (ts + OFFSET) // DAY

    # -- ordinary movements ------------------------------------------------------------------

    @rule(to=addresses, amount=amounts)
    def mint(self, to: str, amount: int) -> None:
        m = self.model
        if amount == 0:
            expected: str | None = "ZeroAmount"
        elif err := m.admitted(to):
            expected = err
        elif m.over_cap(to, m.wallets[to].balance + amount):
            expected = "TierBalanceCapExceeded"
        else:
            expected = None
        assert outcome(lambda: self.cash.mint(OPERATOR, to, amount)) == expected
        if expected is None:
            m.wallets[to].balance += amount

    @rule(sender=signers, to=addresses, amount=amounts)
    def transfer(self, sender: LocalAccount, to: str, amount: int) -> None:
        m, frm, day = self.model, sender.address, self._day()
        expected = m.expect_out(frm, amount)
        if expected is None:
            _, payment_cap, daily_cap = TIERS[m.wallets[frm].tier]
            if amount > payment_cap:
                expected = "TierPaymentCapExceeded"
            elif m.wallets[frm].spent_on(day) + amount > daily_cap:
                expected = "TierDailyCapExceeded"
            elif err := m.admitted(to):
                expected = err
            elif m.wallets[frm].balance < amount:
                expected = "ERC20InsufficientBalance"
            elif m.over_cap(to, m.wallets[to].balance + (0 if to == frm else amount)):
                expected = "TierBalanceCapExceeded"
        event(f"transfer: {expected or 'moved'}")
        assert outcome(lambda: self.cash.transfer(sender, to, amount)) == expected
        if expected is None:
            w = m.wallets[frm]
            w.spent, w.day = w.spent_on(day) + amount, day
            w.balance -= amount
            m.wallets[to].balance += amount

    @rule(holder=signers, amount=st.integers(1, 5_000_00))
    def redeem(self, holder: LocalAccount, amount: int) -> None:
        m, wallet = self.model, holder.address
        expected = m.expect_out(wallet, amount)
        if expected is None and m.wallets[wallet].balance < amount:
            expected = "ERC20InsufficientBalance"
        self.cash.approve(holder, OPERATOR.address, amount)  # approving is not a movement
        assert outcome(lambda: self.cash.redeem(OPERATOR, wallet, amount)) == expected
        if expected is None:
            m.wallets[wallet].balance -= amount

    @rule(wallet=addresses)
    def toggle_freeze(self, wallet: str) -> None:
        w = self.model.wallets.get(wallet)
        if w is None:
            return
        call = self.cash.unfreeze if w.frozen else self.cash.freeze
        expected = "WalletRetired" if w.retired else None
        assert outcome(lambda: call(REGULATOR, wallet)) == expected
        if expected is None:
            w.frozen = not w.frozen

    @rule(hours=st.sampled_from([1, 12, 24, 30]))
    def time_passes(self, hours: int) -> None:
        devtools.increase_time(self.cash.w3, hours * 3600)

    # -- holds -------------------------------------------------------------------------------

    @rule(wallet=addresses, amount=st.integers(1, 12_000_00))
    def place_hold(self, wallet: str, amount: int) -> None:
        m = self.model
        w = m.wallets.get(wallet)
        expected = "WalletNotRegistered" if w is None else "WalletRetired" if w.retired else None
        call = self.cash.place_hold_call(wallet, amount, bytes32_text("AML"), CASE)
        assert outcome(lambda: self.cash.tx.transact(REGULATOR, call)) == expected
        if expected is None:
            m.hold_count += 1
            m.holds[m.hold_count] = (wallet, amount)

    @precondition(lambda self: self.model.holds)
    @rule(pick=st.integers(0, 10))
    def lift_hold(self, pick: int) -> None:
        m = self.model
        hold_id = sorted(m.holds)[pick % len(m.holds)]
        wallet, _ = m.holds[hold_id]
        self.cash.tx.transact(CHECKER, self.cash.lift_hold_call(wallet, hold_id))
        del m.holds[hold_id]

    # -- court orders ------------------------------------------------------------------------

    @precondition(lambda self: len(self.model.orders) < 2)
    @rule(
        frm_pick=st.integers(0, 10),
        to_pick=st.integers(0, 10),
        amount=st.integers(0, 6_000_00),
        against_hold=st.booleans(),
    )
    def propose_court_order(self, frm_pick: int, to_pick: int, amount: int, against_hold: bool) -> None:
        m = self.model
        registered = sorted(m.wallets)  # retired ones included: refused as receivers
        frm, to = registered[frm_pick % len(registered)], registered[to_pick % len(registered)]
        holds = [i for i, (w, _) in sorted(m.holds.items()) if w == frm]
        hold_id = holds[0] if against_hold and holds else 0
        if m.wallets[to].retired:
            expected: str | None = "WalletRetired"
        elif amount == 0:
            expected = "InvalidAmount"
        else:
            expected = None
        call = self.cash.propose_court_order_call(frm, to, amount, CASE, hold_id)
        assert outcome(lambda: self.cash.tx.transact(REGULATOR, call)) == expected
        if expected is None:
            m.order_count += 1
            m.orders[m.order_count] = (frm, to, amount, hold_id)

    @precondition(lambda self: self.model.orders)
    @rule(pick=st.integers(0, 10))
    def approve_court_order(self, pick: int) -> None:
        m = self.model
        order_id = sorted(m.orders)[pick % len(m.orders)]
        frm, to, amount, hold_id = m.orders[order_id]
        if m.wallets[frm].retired:
            expected: str | None = "WalletRetired"
        elif err := m.admitted(to):
            expected = err
        elif m.wallets[frm].balance < amount:
            expected = "ERC20InsufficientBalance"
        elif m.over_cap(to, m.wallets[to].balance + (0 if to == frm else amount)):
            expected = "TierBalanceCapExceeded"
        else:
            expected = None
        event(f"court order: {expected or 'executed'}")
        supply = self.cash.total_supply()
        assert outcome(
            lambda: self.cash.tx.transact(CHECKER, self.cash.approve_court_order_call(order_id))
        ) == (expected)
        assert self.cash.total_supply() == supply
        if expected is None:
            del m.orders[order_id]
            m.wallets[frm].balance -= amount  # held and frozen money included; no cap charged
            m.wallets[to].balance += amount
            if hold_id in m.holds:
                wallet, left = m.holds[hold_id]
                if left <= amount:
                    del m.holds[hold_id]
                else:
                    m.holds[hold_id] = (wallet, left - amount)

    # -- recovery ----------------------------------------------------------------------------

    @precondition(lambda self: self.model.spares and not self.model.recoveries)
    @rule(pick=st.integers(0, 10))
    def propose_recovery(self, pick: int) -> None:
        m = self.model
        lost = sorted(m.wallets)[pick % len(m.wallets)]  # retired ones included: refused
        new = m.spares[0]
        expected = "WalletRetired" if m.wallets[lost].retired else None
        call = self.cash.propose_recovery_call(lost, new.address, EVIDENCE)
        assert outcome(lambda: self.cash.tx.transact(OPERATOR, call)) == expected
        if expected is None:
            m.spares.pop(0)
            m.recovery_count += 1
            m.recoveries[m.recovery_count] = (lost, new.address)

    @precondition(lambda self: self.model.recoveries)
    @rule(pick=st.integers(0, 10))
    def approve_recovery(self, pick: int) -> None:
        m = self.model
        rid = sorted(m.recoveries)[pick % len(m.recoveries)]
        lost, new = m.recoveries.pop(rid)
        old = m.wallets[lost]
        expected = "WalletRetired" if old.retired else None
        event(f"recovery: {expected or 'executed'}")
        supply = self.cash.total_supply()
        assert (
            outcome(lambda: self.cash.tx.transact(REGULATOR, self.cash.approve_recovery_call(rid)))
            == expected
        )
        assert self.cash.total_supply() == supply
        if expected is None:
            self._retired(lost, new)

    def _retired(self, lost: str, new: str) -> None:
        """The model after recovery of ``lost`` to ``new`` was approved."""
        m = self.model
        old = m.wallets[lost]
        m.wallets[new] = Wallet(old.tier, old.identity, old.balance, old.frozen, False, old.day, old.spent)
        old.balance, old.retired = 0, True
        m.successor[lost] = new
        for hold_id, (wallet, amount) in list(m.holds.items()):
            if wallet == lost:
                m.holds[hold_id] = (new, amount)

    @precondition(
        lambda self: (
            self.model.spares
            and any(not self.model.wallets[w].retired for w in set(self.model.owners.values()))
        )
    )
    @rule(pick=st.integers(0, 10), wrong=addresses)
    def recover_a_holder_of_family_assets(self, pick: int, wrong: str) -> None:
        """A live wallet holding something in every family is recovered (the operator proposes, a
        regulator approves) and its family holdings are moved to the successor at once."""
        m = self.model
        holders = sorted({w for w in m.owners.values() if not m.wallets[w].retired})
        lost, new = holders[pick % len(holders)], m.spares.pop(0).address
        result = self.cash.tx.transact(OPERATOR, self.cash.propose_recovery_call(lost, new, EVIDENCE))
        rid = int(result.named("RecoveryProposed")[0]["id"])
        m.recovery_count = rid
        supply = self.cash.total_supply()
        self.cash.tx.transact(REGULATOR, self.cash.approve_recovery_call(rid))
        assert self.cash.total_supply() == supply
        self._retired(lost, new)
        self._move_all(lost, wrong)

    # -- recovery of family-held assets --------------------------------------------------------

    def _move_call(self, kind: str, item: str, lost: str, to: str):  # type: ignore[no-untyped-def]
        f = self.families
        match kind:
            case "voucher":
                return f.vouchers.recover_grants_call(f.programme, lost, to)
            case "package":
                return f.prepaid.recover_package_call(int(item), lost, to)
            case "mandate":
                return f.quickpay.recover_mandate_call(int(item), lost, to)
        return f.hardwallet.recover_card_call(item, lost, to)

    def _held_by(self, kind: str, item: str, wallet: str) -> int:
        """What ``wallet`` holds of the family holding (kind, item) on chain: the voucher balance,
        the package's held fen, 1 for a mandate, the card's reserve (0 when it is another's)."""
        f = self.families
        match kind:
            case "voucher":
                return f.vouchers.balance(f.programme, wallet)
            case "package":
                p = f.prepaid.package(int(item))
                return p.held if p.consumer == wallet else 0
            case "mandate":
                return 1 if f.quickpay.mandate(int(item)).holder == wallet else 0
        c = f.hardwallet.card(item)
        return c.reserve if c.holder == wallet else 0

    @rule(pick=st.integers(0, 20), wrong=addresses)
    def move_family_holdings(self, pick: int, wrong: str) -> None:
        """Move every family holding of one wallet: refused unless it is retired, refused to any
        address but its successor; then each moves once and the successor holds exactly it."""
        self._move_all(sorted(self.model.wallets)[pick % len(self.model.wallets)], wrong)

    def _move_all(self, wallet: str, wrong: str) -> None:
        m = self.model
        mine = sorted(k for k, owner in m.owners.items() if owner == wallet)
        if not mine:
            return
        to = m.successor.get(wallet)
        if to is None:  # not retired: nothing of it moves
            kind, item = mine[0]
            call = self._move_call(kind, item, wallet, wrong)
            assert outcome(lambda: self.cash.tx.transact(STRANGER, call)) == "RecoveryNotRetired"
            return
        if wrong != to:
            kind, item = mine[0]
            call = self._move_call(kind, item, wallet, wrong)
            assert outcome(lambda: self.cash.tx.transact(STRANGER, call)) == "RecoveryWrongSuccessor"
        event(f"family holdings moved: {len(mine)}")
        supply = self.cash.total_supply()
        for kind, item in mine:
            before = (self._held_by(kind, item, wallet), self._held_by(kind, item, to))
            call = self._move_call(kind, item, wallet, to)
            assert outcome(lambda c=call: self.cash.tx.transact(STRANGER, c)) is None
            after = (self._held_by(kind, item, wallet), self._held_by(kind, item, to))
            assert after == (0, before[0] + before[1]), (kind, item, before, after)
            assert outcome(lambda c=call: self.cash.tx.transact(STRANGER, c)) == "RecoveryNothingHeld"
            m.owners[(kind, item)] = to
        # per family and in total: nothing left behind or made
        assert self._family_totals() == self.family_totals
        assert self.cash.total_supply() == supply

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def chain_matches_model_and_keeps_every_invariant(self) -> None:
        """Balances and held amounts as modelled; supply == sum of balances; no wallet above its
        balance or daily cap; a retired wallet holds nothing; each live wallet is the one personal
        wallet its identity resolves to. (One pass: every read is a call into the chain.)"""
        m = self.model
        total = self.elsewhere  # no rule moves the families', the issuer's or the merchant's cash
        for address in (a.address for a in SIGNERS):
            w = m.wallets.get(address)
            balance = self.cash.balance_of(address)
            total += balance
            assert balance == (w.balance if w else 0)
            if w is None:
                continue
            assert self.cash.held_of(address) == (0 if w.retired else m.held(address))
            balance_cap, _, daily_cap = TIERS[w.tier]
            assert balance <= balance_cap
            if w.retired:
                assert balance == 0 and self.cash.is_retired(address)
            else:
                assert self.cash.spent_today(address) <= daily_cap
                assert self.cash.personal_wallet_of(w.identity) == address
        assert self.cash.total_supply() == total


TestIdentityInvariants = IdentityMachine.TestCase
fast_profile_sizes(TestIdentityInvariants, 10, 30)
