"""A card's earmarked purses offline (wallets/hardwallet.py) against CardPurses on chain.

The card keeps per-purse balances (programme, balance, categories, expiry) beside its cash and
refuses offline what its cash plus the purses allowed at the terminal's merchant category cannot
cover; it draws purses in the settlement's order. Its view after a series of payments must be
exactly what the contract computes when it settles them: otherwise a card could sign beyond what
covers it at a merchant no purse allows, and be blocked as a clone.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from chain import devtools
from chain.accounts import dev_account
from chain.clients.hardwallet import (
    CardForm,
    CardStatus,
    HardWalletClient,
    Outcome,
    RejectReason,
    SignedPayment,
)
from chain.clients.token import CashClient, Kind
from tests.conftest import Actors, identity
from wallets.hardwallet import (
    MAX_PURSES,
    CardPurse,
    CardRefused,
    CategoryRequired,
    HardWallet,
    InsufficientOfflineBalance,
)
from wallets.terminal import Terminal

KEY = bytes.fromhex("c3" * 32)
ISSUER = b"issuer-secret-of-the-purse-cards"
CARE, CANTEEN, GROCERY, GYM = 8050, 5814, 5411, 7997
P_ELDERLY, P_MEALS, P_MARKET = 11, 12, 13
CASH = 100_00
DAY = 86_400
T0 = 1_800_000_000


# -- the card alone (no chain) -----------------------------------------------------------------


def offline_card(cash: int = CASH) -> HardWallet:
    from chain.clients.hardwallet import PaymentDomain

    domain = PaymentDomain(131277322940537, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    card = HardWallet(KEY, domain, issuer_secret=ISSUER)
    if cash:
        card.credit(cash)
    card.credit_purse(P_ELDERLY, 300_00, categories=[CARE], expires_at=T0 + 30 * DAY)
    card.credit_purse(P_MEALS, 50_00, categories=[CANTEEN, CARE], expires_at=T0 + 30 * DAY)
    card.credit_purse(P_MARKET, 40_00, categories=[CARE, GROCERY], expires_at=T0 + 2 * DAY)
    return card


def view(card: HardWallet) -> tuple[int, list[tuple[int, int]]]:
    return card.offline_balance, [(p.programme, p.balance) for p in card.purses]


SHOP = Account.from_key(b"\x07" * 32).address


class TestOfflinePurses:
    def test_a_payment_at_an_allowed_category_draws_the_purses_in_slot_order_then_cash(self) -> None:
        card = offline_card()
        card.sign_payment(SHOP, 380_00, T0, category=CARE)  # elderly 300, meals 50, market 30
        assert view(card) == (CASH, [(P_ELDERLY, 0), (P_MEALS, 0), (P_MARKET, 10_00)])
        card.sign_payment(SHOP, 50_00, T0, category=CARE)  # market 10, then 40 of cash
        assert view(card) == (60_00, [(P_ELDERLY, 0), (P_MEALS, 0), (P_MARKET, 0)])

    def test_a_payment_where_no_purse_is_allowed_is_paid_from_cash_only(self) -> None:
        card = offline_card()
        card.sign_payment(SHOP, 30_00, T0, category=GYM)
        assert view(card) == (70_00, [(P_ELDERLY, 300_00), (P_MEALS, 50_00), (P_MARKET, 40_00)])

    def test_refuses_beyond_cash_where_no_purse_is_allowed_and_changes_nothing(self) -> None:
        card = offline_card()
        before, counter = view(card), card.counter
        with pytest.raises(InsufficientOfflineBalance) as refused:
            card.sign_payment(SHOP, CASH + 1, T0, category=GYM)
        assert (refused.value.cash, refused.value.earmarked, refused.value.amount) == (CASH, 0, CASH + 1)
        assert (view(card), card.counter) == (before, counter)

    def test_refuses_beyond_cash_plus_the_allowed_purses_naming_both(self) -> None:
        card = offline_card()
        with pytest.raises(InsufficientOfflineBalance) as refused:
            card.sign_payment(SHOP, CASH + 40_00 + 1, T0, category=GROCERY)
        # at a grocery only the market purse (40.00) is allowed: cash 100.00 + 40.00
        assert (refused.value.cash, refused.value.earmarked, refused.value.balance) == (
            CASH,
            40_00,
            CASH + 40_00,
        )
        assert "10000 fen of cash plus 4000 fen of purses" in str(refused.value)
        assert card.counter == 0
        card.sign_payment(SHOP, CASH + 40_00, T0, category=GROCERY)  # exactly what covers it
        assert view(card) == (0, [(P_ELDERLY, 300_00), (P_MEALS, 50_00), (P_MARKET, 0)])

    def test_an_expired_purse_is_not_counted(self) -> None:
        card = offline_card()
        late = T0 + 2 * DAY + 1  # the market purse expired, the others not
        assert card.spendable(GROCERY, T0 + 2 * DAY) == CASH + 40_00  # its last second still counts
        assert card.spendable(GROCERY, late) == CASH
        with pytest.raises(InsufficientOfflineBalance):
            card.sign_payment(SHOP, CASH + 1, late, category=GROCERY)
        card.sign_payment(SHOP, 10_00, late, category=GROCERY)
        assert view(card)[0] == 90_00 and card.purses[2].balance == 40_00

    def test_without_a_category_a_card_holding_purse_value_signs_nothing(self) -> None:
        card = offline_card()
        with pytest.raises(CategoryRequired):
            card.sign_payment(SHOP, 1, T0)
        assert card.counter == 0
        plain = HardWallet.issue(card.domain)  # no purses: the category does not matter
        plain.credit(10_00)
        plain.sign_payment(SHOP, 10_00, T0)
        # once every purse is past its expiry the card again signs without one
        card.sign_payment(SHOP, 1_00, T0 + 31 * DAY)
        assert view(card)[0] == 99_00

    def test_the_terminal_presents_its_category_and_clock(self) -> None:
        card = offline_card()
        Terminal(SHOP, card.domain, category=CANTEEN, clock=lambda: T0).charge(card, 60_00)
        assert view(card) == (90_00, [(P_ELDERLY, 300_00), (P_MEALS, 0), (P_MARKET, 40_00)])
        with pytest.raises(CategoryRequired):
            Terminal(SHOP, card.domain, clock=lambda: T0).charge(card, 1_00)
        with pytest.raises(ValueError):
            Terminal(SHOP, card.domain, category=2**16)

    def test_purse_slots_mirror_the_contract(self) -> None:
        card = offline_card()
        card.credit_purse(P_MEALS, 10_00, categories=[CARE, CANTEEN], expires_at=T0 + 30 * DAY)
        assert [p.programme for p in card.purses] == [P_ELDERLY, P_MEALS, P_MARKET]  # kept its slot
        assert card.purses[1] == CardPurse(P_MEALS, 60_00, frozenset({CARE, CANTEEN}), T0 + 30 * DAY)
        card.credit_purse(14, 1, categories=[GYM], expires_at=T0 + DAY)
        with pytest.raises(ValueError, match="4 purses"):
            card.credit_purse(15, 1, categories=[GYM], expires_at=T0 + DAY)
        assert len(card.purses) == MAX_PURSES
        assert card.expire_purse(P_ELDERLY) == 300_00  # the last slot moves into the freed one
        assert [p.programme for p in card.purses] == [14, P_MEALS, P_MARKET]
        assert card.expire_purse(P_MARKET) == 40_00
        assert [p.programme for p in card.purses] == [14, P_MEALS]
        with pytest.raises(ValueError):
            card.expire_purse(P_MARKET)
        for bad in (
            {"categories": [], "expires_at": T0},
            {"categories": [0], "expires_at": T0},
            {"categories": [CARE, CARE], "expires_at": T0},
            {"categories": [CARE], "expires_at": 0},
        ):
            with pytest.raises(ValueError):
                card.credit_purse(16, 1, **bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="other terms"):
            card.credit_purse(P_MEALS, 1, categories=[CARE], expires_at=T0 + 30 * DAY)
        with pytest.raises(ValueError):
            card.credit_purse(P_MEALS, 0, categories=[CARE, CANTEEN], expires_at=T0 + 30 * DAY)

    def test_the_card_image_keeps_its_purses(self) -> None:
        card = offline_card()
        card.sign_payment(SHOP, 300_00, T0, category=CARE)  # the elderly purse is spent: slot kept
        image = card.save("pw", issuer_secret=ISSUER, scrypt_n=2**10)
        restored = HardWallet.restore(image, "pw", issuer_secret=ISSUER)
        assert restored.purses == card.purses and view(restored) == view(card)
        assert restored.purses[0].balance == 0


# -- the card against the contract -------------------------------------------------------------


@dataclass
class Scene:
    a: Actors
    hw: HardWalletClient
    cash: CashClient
    funder: LocalAccount
    merchants: dict[int, str]  # category -> merchant
    card: HardWallet
    w3: Web3

    def clock(self) -> int:
        """The block time the next transaction will see (what the terminal's clock reads)."""
        tester = self.w3.provider.ethereum_tester  # type: ignore[attr-defined]
        return int(tester.get_block_by_number("pending")["timestamp"])

    def terminal(self, category: int) -> Terminal:
        return Terminal(self.merchants[category], self.hw.domain, category=category, clock=self.clock)

    def fund(self, programme: int, amount: int) -> None:
        """Fund on chain, then credit the card with the programme's terms as the chain has them."""
        self.hw.fund_purse(self.funder, self.card.address, programme, amount)
        terms = self.hw.purse_programme(programme)
        self.card.credit_purse(programme, amount, categories=terms.categories, expires_at=terms.expires_at)

    def chain_view(self) -> tuple[int, list[tuple[int, int]]]:
        purses = [(p.programme, p.balance) for p in self.hw.purses(self.card.address)]
        return self.hw.card(self.card.address).reserve, purses


def build_scene(a: Actors, hw: HardWalletClient, cash: CashClient) -> Scene:
    op, funder = a.operator, dev_account(9)
    cash.register(op, funder.address, Kind.INSTITUTION, 1, 0, identity("civil-affairs"))
    cash.mint(op, funder.address, 10_000_00)
    hw.approve(funder, 2**255)
    merchants = {GYM: a.gym.address}
    for mcc in (CARE, CANTEEN, GROCERY):
        m = Account.create().address
        cash.register(op, m, Kind.MERCHANT, 2, mcc, identity(f"merchant {mcc}"))
        merchants[mcc] = m
    cash.mint(op, a.alice.address, 1_000_00)
    card = HardWallet(KEY, hw.domain, offline_cap=hw.offline_cap())
    hw.register_card(op, card.address, a.alice.address, CardForm.CARD)
    hw.load(a.alice, card.address, CASH)
    card.credit(CASH)
    return Scene(a, hw, cash, funder, merchants, card, hw.w3)


def create_programmes(s: Scene) -> None:
    """Elderly care (care only), meals (canteen and care), market (care and grocery, 2 days)."""
    op, funder, now = s.a.operator, s.funder.address, s.clock()
    s.hw.create_purse_programme(op, P_ELDERLY, funder, 500_00, now + 30 * DAY, False, [CARE])
    s.hw.create_purse_programme(op, P_MEALS, funder, 100_00, now + 30 * DAY, True, [CANTEEN, CARE])
    s.hw.create_purse_programme(op, P_MARKET, funder, 100_00, now + 2 * DAY, False, [CARE, GROCERY])


@pytest.fixture
def scene(registered: Actors, hardwallet: HardWalletClient, cash: CashClient) -> Scene:
    s = build_scene(registered, hardwallet, cash)
    create_programmes(s)
    s.fund(P_ELDERLY, 300_00)
    s.fund(P_MEALS, 50_00)
    s.fund(P_MARKET, 40_00)
    return s


def upload(s: Scene, *terminals: Terminal) -> list[Outcome]:
    return [o.outcome for t in terminals for o in t.upload_to_chain(s.hw, s.a.operator)]


class TestTheCardMatchesTheSettlement:
    def test_payments_at_allowed_and_other_categories_settle_as_the_card_computed(self, scene: Scene) -> None:
        s = scene
        care, canteen, grocery, gym = (s.terminal(c) for c in (CARE, CANTEEN, GROCERY, GYM))
        grocery.charge(s.card, 30_00)  # market 30
        canteen.charge(s.card, 70_00)  # meals 50 + cash 20
        with pytest.raises(InsufficientOfflineBalance) as refused:
            gym.charge(s.card, 80_01)  # no purse at a gym: cash 80.00 only
        assert (refused.value.cash, refused.value.earmarked) == (80_00, 0)
        with pytest.raises(InsufficientOfflineBalance) as refused:
            grocery.charge(s.card, 90_01)  # market 10 + cash 80
        assert (refused.value.cash, refused.value.earmarked) == (80_00, 10_00)
        assert s.card.counter == 2 and gym.pending == []
        care.charge(s.card, 350_00)  # elderly 300 + market 10 + cash 40
        gym.charge(s.card, 40_00)  # cash 40
        assert view(s.card) == (0, [(P_ELDERLY, 0), (P_MEALS, 0), (P_MARKET, 0)])
        assert upload(s, grocery, canteen, care, gym) == [Outcome.SETTLED] * 4
        assert s.chain_view() == view(s.card)
        assert s.hw.card(s.card.address).status == CardStatus.ACTIVE
        assert s.hw.card(s.card.address).shortfall == 0
        assert s.cash.balance_of(s.merchants[CARE]) == 350_00

    def test_an_expired_and_closed_purse_moves_the_last_slot_on_both_sides(self, scene: Scene) -> None:
        s = scene
        care, grocery = s.terminal(CARE), s.terminal(GROCERY)
        devtools.increase_time(s.w3, 2 * DAY + 60)  # the market purse is past its expiry
        with pytest.raises(InsufficientOfflineBalance) as refused:
            grocery.charge(s.card, CASH + 1)
        assert refused.value.earmarked == 0
        grocery.charge(s.card, 10_00)  # cash: the expired purse is skipped here and on chain
        assert upload(s, grocery) == [Outcome.SETTLED]
        assert (
            s.chain_view()
            == view(s.card)
            == (90_00, [(P_ELDERLY, 300_00), (P_MEALS, 50_00), (P_MARKET, 40_00)])
        )
        s.hw.expire_purse(s.a.operator, s.card.address, P_MARKET)
        s.card.expire_purse(P_MARKET)
        s.fund(P_MEALS, 20_00)
        # a new programme takes the free slot after the others
        s.hw.create_purse_programme(
            s.a.operator, 14, s.funder.address, 100_00, s.clock() + DAY, False, [CARE]
        )
        s.fund(14, 25_00)
        care.charge(s.card, 380_00)  # elderly 300, meals 70, programme 14: 10
        assert upload(s, care) == [Outcome.SETTLED]
        assert s.chain_view() == view(s.card) == (90_00, [(P_ELDERLY, 0), (P_MEALS, 0), (14, 15_00)])

    def test_a_refused_payment_is_undone_on_chain_and_settles_later_as_the_card_computed(
        self, scene: Scene
    ) -> None:
        s = scene
        canteen = s.terminal(CANTEEN)
        canteen.charge(s.card, 60_00)  # meals 50 + cash 10
        s.cash.freeze(s.a.regulator, s.merchants[CANTEEN])
        [refused] = canteen.upload_to_chain(s.hw, s.a.operator)
        assert refused.reason == RejectReason.MERCHANT_REFUSED and not refused.final
        assert s.chain_view() == (CASH, [(P_ELDERLY, 300_00), (P_MEALS, 50_00), (P_MARKET, 40_00)])
        s.cash.unfreeze(s.a.regulator, s.merchants[CANTEEN])
        assert upload(s, canteen) == [Outcome.SETTLED]
        assert (
            s.chain_view() == view(s.card) == (90_00, [(P_ELDERLY, 300_00), (P_MEALS, 0), (P_MARKET, 40_00)])
        )

    def test_the_old_way_a_card_counting_its_purse_as_cash_is_blocked(self, scene: Scene) -> None:
        """Why the card keeps purses apart: credited with its purse value as cash, a card signs at
        a gym what only the elderly purse (care only) could pay, and is blocked as a clone."""
        s = scene
        legacy = HardWallet(bytes.fromhex("c4" * 32), s.hw.domain)
        s.hw.register_card(s.a.operator, legacy.address, s.a.alice.address, CardForm.CARD)
        s.hw.load(s.a.alice, legacy.address, 10_00)
        s.hw.fund_purse(s.funder, legacy.address, P_ELDERLY, 100_00)
        legacy.credit(10_00 + 100_00)
        gym = s.terminal(GYM)
        gym.charge(legacy, 50_00)
        assert upload(s, gym) == [Outcome.SHORTFALL]
        assert s.hw.card(legacy.address).status == CardStatus.BLOCKED
        # the purse-aware card refuses the same payment offline instead
        with pytest.raises(CardRefused):
            gym.charge(s.card, CASH + 1)


# -- the same as a property --------------------------------------------------------------------

CATEGORIES = (CARE, CANTEEN, GROCERY, GYM)
payments = st.lists(
    st.tuples(st.sampled_from(CATEGORIES), st.integers(1, 200_00), st.booleans()), min_size=1, max_size=12
)


@pytest.fixture
def base(registered: Actors, hardwallet: HardWalletClient, cash: CashClient) -> Scene:
    return build_scene(registered, hardwallet, cash)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    funding=st.tuples(st.integers(0, 300_00), st.integers(0, 100_00), st.integers(0, 100_00)),
    series=payments,
)
def test_any_series_settles_to_the_cards_own_view(
    base: Scene, funding: tuple[int, int, int], series: list[tuple[int, int, bool]]
) -> None:
    """Any purses, any payments at any of the categories (some after the market purse expired):
    what the card signed settles with no shortfall, and the chain's per-purse balances and cash
    equal the card's. Refused payments change nothing on the card."""
    s = base
    snap = devtools.snapshot(s.w3)
    card = s.card
    try:
        s.card = HardWallet(KEY, s.hw.domain, offline_cap=s.hw.offline_cap())
        s.card.credit(CASH)
        create_programmes(s)
        order = [P_MEALS, P_ELDERLY, P_MARKET] if funding[0] % 2 else [P_ELDERLY, P_MARKET, P_MEALS]
        for programme in order:
            amount = dict(zip((P_ELDERLY, P_MEALS, P_MARKET), funding, strict=True))[programme]
            if amount:
                s.fund(programme, amount)
        terminals = {c: s.terminal(c) for c in CATEGORIES}
        signed: list[SignedPayment] = []

        def settle() -> None:  # in counter order, as one terminal uploads its queue
            if signed:
                result = s.hw.settle(s.a.operator, signed)
                assert [o.outcome for o in result.outcomes] == [Outcome.SETTLED] * len(signed)
                signed.clear()
            assert s.chain_view() == view(s.card)

        expired = False
        for category, amount, late in series:
            if late and not expired:
                settle()  # terminals upload before the programme expires (see wallets/hardwallet.py)
                devtools.increase_time(s.w3, 2 * DAY + 60)
                expired = True
            before, counter = view(s.card), s.card.counter
            try:
                signed.append(terminals[category].charge(s.card, amount))
            except InsufficientOfflineBalance:
                assert (view(s.card), s.card.counter) == (before, counter)
        settle()
    finally:
        s.card = card
        devtools.revert(s.w3, snap)
        s.cash.tx.nonces.reset()
