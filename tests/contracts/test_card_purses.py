"""CardPurses on HardWalletSettlement: earmarked purses (elderly-care voucher, meal allowance)
spent before cash at the merchants their programme allows, clone accounting, expiry."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain import devtools, gas
from chain.accounts import dev_account
from chain.clients.hardwallet import (
    MAX_BATCH,
    CardForm,
    CardStatus,
    HardWalletClient,
    Outcome,
    Payment,
    PaymentDomain,
    SignedPayment,
    sign_payment,
)
from chain.clients.token import CashClient, Kind
from tests.conftest import Actors, identity
from tests.helpers import assert_reverts

KEY = bytes.fromhex("b2" * 32)
CARE, CANTEEN = 8050, 5814  # nursing/personal care; fast-food / canteens
CASH, ELDERLY, MEALS = 100_00, 300_00, 50_00
P_ELDERLY, P_MEALS = 1, 2
DAY = 86_400


def now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


@dataclass
class Purses:
    a: Actors
    funder: LocalAccount
    card: str
    care: str
    canteen: str
    expires_at: int
    domain: PaymentDomain
    signed_at: int  # when the card signs its payments: after its registration, never ahead of the chain


@pytest.fixture
def purses(registered: Actors, cash: CashClient, hardwallet: HardWalletClient) -> Purses:
    a, funder = registered, dev_account(9)
    op = a.operator
    cash.register(op, funder.address, Kind.INSTITUTION, 1, 0, identity("civil-affairs"))
    care, canteen = Account.create().address, Account.create().address
    cash.register(op, care, Kind.MERCHANT, 2, CARE, identity("care"))
    cash.register(op, canteen, Kind.MERCHANT, 2, CANTEEN, identity("canteen"))
    cash.mint(op, funder.address, 10_000_00)
    cash.mint(op, a.alice.address, 1_000_00)
    card = Account.from_key(KEY).address
    hardwallet.register_card(op, card, a.alice.address, CardForm.CARD)
    hardwallet.load(a.alice, card, CASH)
    expires = now(hardwallet.w3) + 30 * DAY
    hardwallet.create_purse_programme(op, P_ELDERLY, funder.address, 500_00, expires, False, [CARE])
    hardwallet.create_purse_programme(op, P_MEALS, funder.address, 100_00, expires, True, [CANTEEN, CARE])
    hardwallet.fund_purse(funder, card, P_ELDERLY, ELDERLY)
    hardwallet.fund_purse(funder, card, P_MEALS, MEALS)
    return Purses(a, funder, card, care, canteen, expires, hardwallet.domain, now(hardwallet.w3))


def pay(s: Purses, merchant: str, amount: int, counter: int) -> SignedPayment:
    return sign_payment(KEY, Payment(s.card, merchant, amount, counter, s.signed_at), s.domain)


def assert_conserved(hardwallet: HardWalletClient, cash: CashClient, s: Purses) -> None:
    t = hardwallet.totals()
    assert t["earmarked_funded"] == t["earmarked_spent"] + t["earmarked_expired"] + t["earmarked"]
    assert cash.balance_of(hardwallet.address) == t["reserve"] + t["earmarked"]
    held = 0
    for p in hardwallet.purses(s.card):
        assert p.funded == p.spent + p.expired + p.balance, p
        held += p.balance
    assert held == t["earmarked"]
    for pid in (P_ELDERLY, P_MEALS):
        prog = hardwallet.purse_programme(pid)
        assert prog.funded == prog.spent + prog.expired + prog.held


class TestProgrammesAndFunding:
    def test_funding_fills_slots_in_order_and_pulls_from_the_funder(
        self, purses: Purses, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        got = [(p.programme, p.balance, p.funded) for p in hardwallet.purses(purses.card)]
        assert got == [(P_ELDERLY, ELDERLY, ELDERLY), (P_MEALS, MEALS, MEALS)]
        prog = hardwallet.purse_programme(P_ELDERLY)
        assert (prog.funder, prog.categories, prog.held, prog.to_holder_at_expiry) == (
            purses.funder.address,
            (CARE,),
            ELDERLY,
            False,
        )
        assert cash.balance_of(purses.funder.address) == 10_000_00 - ELDERLY - MEALS
        assert_conserved(hardwallet, cash, purses)

    def test_funding_emits_the_new_balance(self, purses: Purses, hardwallet: HardWalletClient) -> None:
        ev = hardwallet.fund_purse(purses.funder, purses.card, P_ELDERLY, 1_00).named("PurseFunded")[0]
        assert (ev["card"], ev["programme"], ev["funder"], ev["amount"], ev["balance"]) == (
            purses.card,
            P_ELDERLY,
            purses.funder.address,
            1_00,
            ELDERLY + 1_00,
        )

    def test_refusals_name_their_values(self, purses: Purses, hardwallet: HardWalletClient) -> None:
        a, f, card = purses.a, purses.funder, purses.card
        role = hardwallet.contract.functions.OPERATOR_ROLE().call()
        later = purses.expires_at
        assert_reverts(
            lambda: hardwallet.create_purse_programme(a.alice, 3, f.address, 1, later, False, [CARE]),
            "AccessControlUnauthorizedAccount",
            a.alice.address,
            role,
        )
        assert_reverts(
            lambda: hardwallet.create_purse_programme(a.operator, P_MEALS, f.address, 1, later, False, [1]),
            "PurseProgrammeExists",
            P_MEALS,
        )
        stranger = Account.create().address
        assert_reverts(
            lambda: hardwallet.create_purse_programme(a.operator, 3, stranger, 1, later, False, [CARE]),
            "PurseInvalidProgramme",
            3,
            stranger,
            1,
            later,
        )
        assert_reverts(
            lambda: hardwallet.create_purse_programme(a.operator, 3, f.address, 1, later, False, []),
            "PurseCategoryCount",
            0,
            8,
        )
        assert_reverts(
            lambda: hardwallet.create_purse_programme(
                a.operator, 3, f.address, 1, later, False, [CARE, CARE]
            ),
            "PurseInvalidCategory",
            CARE,
        )
        assert_reverts(
            lambda: hardwallet.fund_purse(a.alice, card, P_ELDERLY, 1),
            "PurseNotFunder",
            P_ELDERLY,
            a.alice.address,
        )
        assert_reverts(lambda: hardwallet.fund_purse(f, card, 9, 1), "PurseUnknownProgramme", 9)
        assert_reverts(lambda: hardwallet.fund_purse(f, card, P_ELDERLY, 0), "PurseZeroAmount")
        assert_reverts(
            lambda: hardwallet.fund_purse(f, card, P_MEALS, 100_00 - MEALS + 1),
            "PurseCapExceeded",
            card,
            P_MEALS,
            100_00,
            100_00 + 1,
        )
        unknown = Account.create().address
        assert_reverts(
            lambda: hardwallet.fund_purse(f, unknown, P_ELDERLY, 1), "HardWalletUnknownCard", unknown
        )
        hardwallet.report_lost(a.alice, card)
        assert_reverts(
            lambda: hardwallet.fund_purse(f, card, P_ELDERLY, 1),
            "HardWalletWrongStatus",
            card,
            CardStatus.ACTIVE,
            CardStatus.LOST,
        )

    def test_a_card_holds_at_most_four_purses(self, purses: Purses, hardwallet: HardWalletClient) -> None:
        a, f = purses.a, purses.funder
        for pid in (3, 4, 5):
            hardwallet.create_purse_programme(
                a.operator, pid, f.address, 10_00, purses.expires_at, False, [CARE]
            )
        hardwallet.fund_purse(f, purses.card, 3, 1_00)
        hardwallet.fund_purse(f, purses.card, 4, 1_00)
        assert_reverts(
            lambda: hardwallet.fund_purse(f, purses.card, 5, 1_00), "PurseSlotsFull", purses.card, 4
        )


class TestSettlement:
    def test_care_merchant_spends_the_purses_before_cash(
        self, purses: Purses, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = purses
        # 360 yuan at the care home: elderly purse 300, then meals (allows CARE too) 50, cash 10.
        res = hardwallet.settle(s.a.operator, [pay(s, s.care, 360_00, 1)])
        assert res.outcomes[0].outcome == Outcome.SETTLED
        spent = [
            (e["programme"], e["amount"], e["balance"], e["counter"]) for e in res.tx.named("PurseSpent")
        ]
        assert spent == [(P_ELDERLY, ELDERLY, 0, 1), (P_MEALS, MEALS, 0, 1)]
        assert cash.balance_of(s.care) == 360_00
        info = hardwallet.card(s.card)
        assert (info.reserve, info.settled, info.shortfall) == (CASH - 10_00, 10_00, 0)
        assert [p.spent for p in hardwallet.purses(s.card)] == [ELDERLY, MEALS]
        assert_conserved(hardwallet, cash, s)

    def test_a_merchant_no_purse_allows_is_paid_from_cash_only(
        self, purses: Purses, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = purses
        res = hardwallet.settle(
            s.a.operator, [pay(s, s.a.gym.address, 40_00, 1), pay(s, s.canteen, 60_00, 2)]
        )
        assert [o.outcome for o in res.outcomes] == [Outcome.SETTLED, Outcome.SETTLED]
        # gym (7997): cash only; canteen: meals purse 50, cash 10; the elderly purse untouched.
        assert [(e["programme"], e["amount"]) for e in res.tx.named("PurseSpent")] == [(P_MEALS, MEALS)]
        assert [p.balance for p in hardwallet.purses(s.card)] == [ELDERLY, 0]
        assert hardwallet.card(s.card).reserve == CASH - 40_00 - 10_00
        assert_conserved(hardwallet, cash, s)

    def test_a_clone_blocks_and_then_spends_no_purse(
        self, purses: Purses, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = purses
        # At the gym only cash pays: 150 yuan against 100 cash -> shortfall 50, card blocked.
        res = hardwallet.settle(s.a.operator, [pay(s, s.a.gym.address, 150_00, 1), pay(s, s.care, 20_00, 2)])
        assert [o.outcome for o in res.outcomes] == [Outcome.SHORTFALL, Outcome.SHORTFALL]
        info = hardwallet.card(s.card)
        assert (info.status, info.reserve, info.shortfall) == (CardStatus.BLOCKED, 0, 50_00 + 20_00)
        assert res.tx.named("PurseSpent") == []
        assert [p.balance for p in hardwallet.purses(s.card)] == [ELDERLY, MEALS]
        assert cash.balance_of(s.care) == 0
        assert_conserved(hardwallet, cash, s)

    def test_a_refused_merchant_undoes_the_purse_draw(
        self, purses: Purses, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = purses
        cash.freeze(s.a.regulator, s.care)
        res = hardwallet.settle(s.a.operator, [pay(s, s.care, 30_00, 1)])
        assert res.outcomes[0].outcome == Outcome.REJECTED
        assert res.tx.named("PurseSpent") == []
        assert [p.balance for p in hardwallet.purses(s.card)] == [ELDERLY, MEALS]
        assert not hardwallet.is_counter_used(s.card, 1)
        assert_conserved(hardwallet, cash, s)

    def test_an_expired_purse_is_not_spent(
        self, purses: Purses, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = purses
        devtools.increase_time(hardwallet.w3, 31 * DAY)
        hardwallet.settle(s.a.operator, [pay(s, s.care, 30_00, 1)])
        assert [p.balance for p in hardwallet.purses(s.card)] == [ELDERLY, MEALS]
        assert hardwallet.card(s.card).reserve == CASH - 30_00


class TestExpiry:
    def test_unspent_value_returns_to_the_funder_or_the_holder_as_configured(
        self, purses: Purses, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        s = purses
        assert_reverts(
            lambda: hardwallet.expire_purse(s.a.bob, s.card, P_ELDERLY),
            "PurseNotExpired",
            P_ELDERLY,
            s.expires_at,
        )
        hardwallet.settle(s.a.operator, [pay(s, s.care, 100_00, 1)])  # elderly 300 -> 200
        devtools.increase_time(hardwallet.w3, 31 * DAY)
        funder_before, alice_before = cash.balance_of(s.funder.address), cash.balance_of(s.a.alice.address)
        ev = hardwallet.expire_purse(s.a.bob, s.card, P_ELDERLY).named("PurseExpired")[0]
        assert (ev["to"], ev["amount"]) == (s.funder.address, 200_00)
        # The meal allowance is the holder's once granted (toHolderAtExpiry); it moved to slot 0.
        assert [(p.programme, p.balance) for p in hardwallet.purses(s.card)] == [(P_MEALS, MEALS)]
        ev = hardwallet.expire_purse(s.a.bob, s.card, P_MEALS).named("PurseExpired")[0]
        assert (ev["to"], ev["amount"]) == (s.a.alice.address, MEALS)
        assert cash.balance_of(s.funder.address) == funder_before + 200_00
        assert cash.balance_of(s.a.alice.address) == alice_before + MEALS
        assert hardwallet.purses(s.card) == []
        assert tuple(hardwallet.contract.functions.purseBooks(s.card, P_ELDERLY).call()) == (
            ELDERLY,
            200_00,
            100_00,
        )
        assert_reverts(
            lambda: hardwallet.expire_purse(s.a.bob, s.card, P_ELDERLY), "PurseNotHeld", s.card, P_ELDERLY
        )
        assert_conserved(hardwallet, cash, s)


class TestGasBound:
    def test_the_costliest_purse_path_fits_the_settle_bound(
        self, purses: Purses, hardwallet: HardWalletClient, cash: CashClient
    ) -> None:
        """Four purses allowed at the merchant, each drawn and then undone (the merchant refused),
        for a full batch; then settled. Both under chain/gas.py's settle bound (no estimate)."""
        s, f = purses, purses.funder
        for pid in (3, 4):
            hardwallet.create_purse_programme(
                s.a.operator, pid, f.address, 10_00, s.expires_at, False, [CARE]
            )
            hardwallet.fund_purse(f, s.card, pid, 1)
        # elderly 300 yuan, meals 50 yuan: a payment of 350 yuan + 2 fen draws all four purses.
        amount = ELDERLY + MEALS + 2
        hardwallet.set_limits(s.a.operator, amount, 10_000_00, 3 * DAY)
        payments = [pay(s, s.care, amount, i + 1) for i in range(MAX_BATCH)]
        cash.freeze(s.a.regulator, s.care)
        for batch in (payments[:1], payments):
            refused = hardwallet.settle(s.a.operator, batch)
            assert refused.count(Outcome.REJECTED) == len(batch)
            assert refused.tx.gas_used < gas.bound(hardwallet.settle_call(batch))  # type: ignore[operator]
        cash.unfreeze(s.a.regulator, s.care)
        settled = hardwallet.settle(s.a.operator, payments[:1])
        assert len(settled.tx.named("PurseSpent")) == 4
        assert settled.tx.gas_used < gas.bound(hardwallet.settle_call(payments[:1]))  # type: ignore[operator]
        assert_conserved(hardwallet, cash, s)
