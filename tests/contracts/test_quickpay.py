"""QuickPay (钱包快付): mandates with per-payment and daily caps, expiry and revocation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from web3 import Web3

from chain import devtools
from chain.clients.hardwallet import QuickPayClient, order_ref
from chain.clients.token import CashClient
from tests.conftest import Actors
from tests.helpers import assert_reverts

DAY = 86_400
PER_PAYMENT, DAILY = 50_00, 120_00


def now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


@dataclass
class Granted:
    a: Actors
    id: int
    expires_at: int


@pytest.fixture
def granted(w3: Web3, registered: Actors, cash: CashClient, quickpay: QuickPayClient) -> Granted:
    """alice (1,000 yuan) grants the gym 50 yuan per payment, 120 yuan a day, for 30 days."""
    a = registered
    cash.mint(a.operator, a.alice.address, 1_000_00)
    quickpay.approve(a.alice, 1_000_00)
    expires = now(w3) + 30 * DAY
    mandate_id, _ = quickpay.grant(a.alice, a.gym.address, PER_PAYMENT, DAILY, expires)
    return Granted(a, mandate_id, expires)


class TestGrant:
    def test_holder_grants_a_merchant_a_mandate(self, granted: Granted, quickpay: QuickPayClient) -> None:
        m = quickpay.mandate(granted.id)
        assert (m.holder, m.merchant, m.per_payment_cap, m.daily_cap, m.expires_at, m.revoked) == (
            granted.a.alice.address,
            granted.a.gym.address,
            PER_PAYMENT,
            DAILY,
            granted.expires_at,
            False,
        )

    def test_reverts_for_a_non_merchant_payee(
        self, w3: Web3, registered: Actors, quickpay: QuickPayClient
    ) -> None:
        a = registered
        assert_reverts(
            lambda: quickpay.grant(a.alice, a.bob.address, 1, 1, now(w3) + DAY),
            "QuickPayInvalidMerchant",
            a.bob.address,
        )

    def test_reverts_for_an_unregistered_holder(
        self, w3: Web3, registered: Actors, quickpay: QuickPayClient
    ) -> None:
        a = registered
        assert_reverts(
            lambda: quickpay.grant(a.outsider, a.gym.address, 1, 1, now(w3) + DAY),
            "QuickPayInvalidHolder",
            a.outsider.address,
        )

    def test_reverts_on_bad_caps_or_past_expiry(
        self, w3: Web3, registered: Actors, quickpay: QuickPayClient
    ) -> None:
        a, t = registered, now(w3)
        for per, daily in ((0, 10), (11, 10)):
            assert_reverts(
                lambda p=per, d=daily: quickpay.grant(a.alice, a.gym.address, p, d, t + DAY),
                "QuickPayInvalidCaps",
                per,
                daily,
            )
        err = assert_reverts(lambda: quickpay.grant(a.alice, a.gym.address, 1, 1, t), "QuickPayExpiryInPast")
        assert err.args_tuple[0] == t


class TestPull:
    def test_merchant_pulls_within_the_caps(
        self, granted: Granted, quickpay: QuickPayClient, cash: CashClient
    ) -> None:
        a = granted.a
        ref = order_ref("bus-0001")
        event = quickpay.pull(a.gym, granted.id, 30_00, ref).named("MandatePulled")[0]
        assert (event["amount"], event["spentToday"], bytes(event["orderRef"])) == (30_00, 30_00, ref)
        assert cash.balance_of(a.gym.address) == 30_00
        assert cash.balance_of(a.alice.address) == 1_000_00 - 30_00
        assert quickpay.spent_today(granted.id) == 30_00 and quickpay.is_reference_used(granted.id, ref)

    def test_reverts_over_the_per_payment_cap(self, granted: Granted, quickpay: QuickPayClient) -> None:
        assert_reverts(
            lambda: quickpay.pull(granted.a.gym, granted.id, PER_PAYMENT + 1, order_ref("x")),
            "QuickPayOverPaymentCap",
            granted.id,
            PER_PAYMENT,
            PER_PAYMENT + 1,
        )

    def test_reverts_over_the_daily_cap_and_resets_the_next_day(
        self, w3: Web3, granted: Granted, quickpay: QuickPayClient
    ) -> None:
        gym = granted.a.gym
        quickpay.pull(gym, granted.id, 50_00, order_ref("1"))
        quickpay.pull(gym, granted.id, 50_00, order_ref("2"))
        assert_reverts(
            lambda: quickpay.pull(gym, granted.id, 20_01, order_ref("3")),
            "QuickPayOverDailyCap",
            granted.id,
            DAILY,
            120_01,
        )
        quickpay.pull(gym, granted.id, 20_00, order_ref("3"))  # exactly at the cap
        devtools.increase_time(w3, DAY)
        assert quickpay.spent_today(granted.id) == 0
        quickpay.pull(gym, granted.id, 50_00, order_ref("4"))
        assert quickpay.mandate(granted.id).total_pulled == 170_00

    def test_reverts_after_expiry(self, w3: Web3, granted: Granted, quickpay: QuickPayClient) -> None:
        devtools.increase_time(w3, 31 * DAY)
        assert_reverts(
            lambda: quickpay.pull(granted.a.gym, granted.id, 1_00, order_ref("late")),
            "QuickPayExpired",
            granted.id,
            granted.expires_at,
        )

    def test_reverts_after_revocation(
        self, granted: Granted, quickpay: QuickPayClient, cash: CashClient
    ) -> None:
        a = granted.a
        quickpay.pull(a.gym, granted.id, 10_00, order_ref("before"))
        event = quickpay.revoke(a.alice, granted.id).named("MandateRevoked")[0]
        assert event["holder"] == a.alice.address and quickpay.mandate(granted.id).revoked
        assert_reverts(
            lambda: quickpay.pull(a.gym, granted.id, 10_00, order_ref("after")), "QuickPayRevoked", granted.id
        )
        assert cash.balance_of(a.gym.address) == 10_00

    def test_only_the_holder_revokes_and_only_once(self, granted: Granted, quickpay: QuickPayClient) -> None:
        a = granted.a
        assert_reverts(
            lambda: quickpay.revoke(a.gym, granted.id), "QuickPayNotHolder", granted.id, a.gym.address
        )
        quickpay.revoke(a.alice, granted.id)
        assert_reverts(lambda: quickpay.revoke(a.alice, granted.id), "QuickPayRevoked", granted.id)

    def test_reverts_when_caller_is_not_the_mandates_merchant(
        self, granted: Granted, quickpay: QuickPayClient
    ) -> None:
        carol = granted.a.carol
        assert_reverts(
            lambda: quickpay.pull(carol, granted.id, 1_00, order_ref("x")),
            "QuickPayNotMerchant",
            granted.id,
            carol.address,
        )

    def test_an_order_reference_pays_once(
        self, granted: Granted, quickpay: QuickPayClient, cash: CashClient
    ) -> None:
        ref = order_ref("retry-me")
        quickpay.pull(granted.a.gym, granted.id, 5_00, ref)
        assert_reverts(
            lambda: quickpay.pull(granted.a.gym, granted.id, 5_00, ref),
            "QuickPayDuplicateReference",
            granted.id,
            ref,
        )
        assert cash.balance_of(granted.a.gym.address) == 5_00

    def test_reverts_on_zero_amount_and_unknown_mandate(
        self, granted: Granted, quickpay: QuickPayClient
    ) -> None:
        gym = granted.a.gym
        assert_reverts(lambda: quickpay.pull(gym, granted.id, 0, order_ref("z")), "QuickPayZeroAmount")
        assert_reverts(lambda: quickpay.pull(gym, 999, 1, order_ref("z")), "QuickPayUnknownMandate", 999)

    def test_the_token_still_applies_allowance_freeze_and_tier_caps(
        self, w3: Web3, granted: Granted, quickpay: QuickPayClient, cash: CashClient
    ) -> None:
        a = granted.a
        quickpay.approve(a.alice, 1_00)
        assert_reverts(
            lambda: quickpay.pull(a.gym, granted.id, 2_00, order_ref("a")),
            "ERC20InsufficientAllowance",
            quickpay.contract.address,
            1_00,
            2_00,
        )
        quickpay.approve(a.alice, 1_000_00)
        cash.freeze(a.regulator, a.alice.address)
        assert_reverts(
            lambda: quickpay.pull(a.gym, granted.id, 2_00, order_ref("a")), "WalletFrozen", a.alice.address
        )
        # bob is tier 4: 2,000 yuan per payment at most, whatever the mandate says
        cash.mint(a.operator, a.bob.address, 3_000_00)
        quickpay.approve(a.bob, 3_000_00)
        big, _ = quickpay.grant(a.bob, a.gym.address, 3_000_00, 3_000_00, now(w3) + DAY)
        cap = cash.tier_limits(4).payment_cap
        assert_reverts(
            lambda: quickpay.pull(a.gym, big, cap + 1, order_ref("b")),
            "TierPaymentCapExceeded",
            a.bob.address,
            cap,
            cap + 1,
        )


class TestFreeze:
    """QuickPay holds nothing: a pull is the holder's own transfer (transferFrom), so the token judges
    the holder and the merchant exactly as for any payment; the payee is the merchant named at grant
    (a registered Merchant wallet; kinds never change in the registry)."""

    def test_a_frozen_holder_cannot_be_pulled_and_the_order_stays_payable_once_unfrozen(
        self, granted: Granted, quickpay: QuickPayClient, cash: CashClient
    ) -> None:
        a = granted.a
        cash.freeze(a.regulator, a.alice.address)
        assert_reverts(
            lambda: quickpay.pull(a.gym, granted.id, 10_00, order_ref("o1")), "WalletFrozen", a.alice.address
        )
        assert not quickpay.is_reference_used(granted.id, order_ref("o1"))
        assert quickpay.spent_today(granted.id) == 0
        cash.unfreeze(a.regulator, a.alice.address)
        quickpay.pull(a.gym, granted.id, 10_00, order_ref("o1"))
        assert cash.balance_of(a.gym.address) == 10_00

    def test_a_frozen_merchant_cannot_pull(
        self, granted: Granted, quickpay: QuickPayClient, cash: CashClient
    ) -> None:
        a = granted.a
        cash.freeze(a.regulator, a.gym.address)
        assert_reverts(
            lambda: quickpay.pull(a.gym, granted.id, 10_00, order_ref("o1")), "WalletFrozen", a.gym.address
        )
        assert cash.balance_of(a.alice.address) == 1_000_00

    def test_a_frozen_quickpay_contract_cannot_pull(
        self, granted: Granted, quickpay: QuickPayClient, cash: CashClient
    ) -> None:
        """QuickPay is a registered wallet (the token admits only registered, unfrozen spenders), so
        the regulator can stop every mandate at once by freezing it."""
        a = granted.a
        contract = quickpay.contract.address
        cash.freeze(a.regulator, contract)
        assert_reverts(
            lambda: quickpay.pull(a.gym, granted.id, 10_00, order_ref("o1")), "WalletFrozen", contract
        )
        assert not quickpay.is_reference_used(granted.id, order_ref("o1"))
        cash.unfreeze(a.regulator, contract)
        quickpay.pull(a.gym, granted.id, 10_00, order_ref("o1"))
        assert cash.balance_of(a.gym.address) == 10_00

    def test_a_frozen_holder_still_revokes(
        self, granted: Granted, quickpay: QuickPayClient, cash: CashClient
    ) -> None:
        a = granted.a
        cash.freeze(a.regulator, a.alice.address)
        assert quickpay.revoke(a.alice, granted.id).named("MandateRevoked")
        assert_reverts(
            lambda: quickpay.pull(a.gym, granted.id, 1_00, order_ref("o2")), "QuickPayRevoked", granted.id
        )
