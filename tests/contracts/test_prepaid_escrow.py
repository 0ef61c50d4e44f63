"""PrepaidEscrow: supervised prepayments, consumption, signed claims, cancellation, refunds."""

from __future__ import annotations

import pytest
from web3 import Web3

from chain import devtools
from chain.clients.prepaid import PackageStatus, PrepaidClient
from chain.clients.token import CashClient, Kind
from tests.conftest import Actors, identity
from tests.helpers import assert_reverts

DAY = 86_400


def now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def selector(signature: str) -> bytes:
    return bytes(Web3.keccak(text=signature)[:4])


def assert_conserved(prepaid: PrepaidClient, cash: CashClient, *ids: int) -> None:
    """deposited == released + refunded + held, per package and in total; balance == total held."""
    for i in ids:
        p = prepaid.package(i)
        assert p.deposited == p.released + p.refunded + p.held, p
    t = prepaid.totals()
    assert t["deposited"] == t["released"] + t["refunded"] + t["held"], t
    assert cash.balance_of(prepaid.escrow.address) == t["held"]


@pytest.fixture
def shop(registered: Actors, cash: CashClient, prepaid: PrepaidClient) -> Actors:
    """gym fully supervised (10000 bps); a school (outsider) 60% supervised, ceiling 3,000 yuan;
    alice holds 10,000 yuan, carol 50,000."""
    a = registered
    cash.register(a.operator, a.outsider.address, Kind.MERCHANT, 2, 8299, identity("school"))
    prepaid.enrol(a.regulator, a.gym.address, 10_000)
    prepaid.enrol(a.regulator, a.outsider.address, 6_000, 3_000_00)
    cash.mint(a.operator, a.alice.address, 10_000_00)
    cash.mint(a.operator, a.carol.address, 50_000_00)
    return a


class TestEnrolMerchant:
    def test_regulator_enrols_with_share_and_ceiling(self, shop: Actors, prepaid: PrepaidClient) -> None:
        m = prepaid.merchant(shop.outsider.address)
        assert (m.enrolled, m.closed, m.supervised_bps, m.ceiling) == (True, False, 6_000, 3_000_00)

    def test_emits_merchant_enrolled(self, registered: Actors, prepaid: PrepaidClient) -> None:
        event = prepaid.enrol(registered.regulator, registered.gym.address, 5_000, 0).named(
            "MerchantEnrolled"
        )[0]
        assert event.args == {"merchant": registered.gym.address, "supervisedBps": 5_000, "ceiling": 0}

    def test_reverts_when_wallet_is_not_a_merchant(self, registered: Actors, prepaid: PrepaidClient) -> None:
        a = registered
        assert_reverts(
            lambda: prepaid.enrol(a.regulator, a.alice.address, 10_000),
            "PrepaidNotMerchantWallet",
            a.alice.address,
        )

    def test_reverts_when_already_enrolled(self, shop: Actors, prepaid: PrepaidClient) -> None:
        assert_reverts(
            lambda: prepaid.enrol(shop.regulator, shop.gym.address, 10_000),
            "PrepaidMerchantAlreadyEnrolled",
            shop.gym.address,
        )

    def test_reverts_when_share_outside_1_to_10000(self, registered: Actors, prepaid: PrepaidClient) -> None:
        for bps in (0, 10_001):
            assert_reverts(
                lambda b=bps: prepaid.enrol(registered.regulator, registered.gym.address, b),
                "PrepaidInvalidShare",
                bps,
            )

    def test_reverts_when_caller_is_not_regulator(self, registered: Actors, prepaid: PrepaidClient) -> None:
        role = prepaid.escrow.functions.REGULATOR_ROLE().call()
        assert_reverts(
            lambda: prepaid.enrol(registered.operator, registered.gym.address, 10_000),
            "AccessControlUnauthorizedAccount",
            registered.operator.address,
            role,
        )


class TestPrepay:
    def test_fully_supervised_package_is_all_held(
        self, shop: Actors, prepaid: PrepaidClient, cash: CashClient, w3: Web3
    ) -> None:
        a = shop
        pid, result = prepaid.prepay(a.alice, a.gym.address, 10, 200_00, now(w3) + 30 * DAY, 50_00)
        event = result.named("PackagePrepaid")[0]
        assert (event["total"], event["immediate"], event["held"]) == (2_000_00, 0, 2_000_00)
        p = prepaid.package(pid)
        assert (p.consumer, p.merchant, p.status, p.sessions, p.held) == (
            a.alice.address,
            a.gym.address,
            PackageStatus.OPEN,
            10,
            2_000_00,
        )
        assert cash.balance_of(a.alice.address) == 8_000_00
        assert cash.balance_of(a.gym.address) == 0
        assert_conserved(prepaid, cash, pid)

    def test_unsupervised_share_goes_to_the_merchant_at_once(
        self, shop: Actors, prepaid: PrepaidClient, cash: CashClient, w3: Web3
    ) -> None:
        a = shop
        pid, _ = prepaid.prepay(a.alice, a.outsider.address, 5, 100_00, now(w3) + DAY)
        assert cash.balance_of(a.outsider.address) == 200_00  # 40% of 500 yuan
        assert prepaid.package(pid).held == 300_00
        assert_conserved(prepaid, cash, pid)

    def test_reverts_when_merchant_not_enrolled(self, shop: Actors, prepaid: PrepaidClient, w3: Web3) -> None:
        a = shop
        assert_reverts(
            lambda: prepaid.prepay(a.alice, a.bob.address, 1, 1, now(w3) + DAY),
            "PrepaidMerchantNotEnrolled",
            a.bob.address,
        )

    def test_reverts_when_merchant_closed(self, shop: Actors, prepaid: PrepaidClient, w3: Web3) -> None:
        a = shop
        prepaid.close_merchant(a.regulator, a.gym.address)
        assert_reverts(
            lambda: prepaid.prepay(a.alice, a.gym.address, 1, 1, now(w3) + DAY),
            "PrepaidMerchantClosed",
            a.gym.address,
        )

    def test_reverts_when_merchant_frozen(
        self, shop: Actors, prepaid: PrepaidClient, cash: CashClient, w3: Web3
    ) -> None:
        a = shop
        cash.freeze(a.regulator, a.gym.address)
        assert_reverts(
            lambda: prepaid.prepay(a.alice, a.gym.address, 1, 1, now(w3) + DAY),
            "PrepaidMerchantFrozen",
            a.gym.address,
        )

    def test_reverts_when_package_empty(self, shop: Actors, prepaid: PrepaidClient, w3: Web3) -> None:
        a = shop
        assert_reverts(
            lambda: prepaid.prepay(a.alice, a.gym.address, 0, 100, now(w3) + DAY),
            "PrepaidEmptyPackage",
            0,
            100,
        )
        assert_reverts(
            lambda: prepaid.prepay(a.alice, a.gym.address, 3, 0, now(w3) + DAY), "PrepaidEmptyPackage", 3, 0
        )

    def test_reverts_when_end_date_in_the_past(self, shop: Actors, prepaid: PrepaidClient, w3: Web3) -> None:
        a = shop
        past = now(w3) - 1
        err = assert_reverts(
            lambda: prepaid.prepay(a.alice, a.gym.address, 1, 1, past), "PrepaidExpiryInPast"
        )
        assert err.args_dict["expiresAt"] == past and err.args_dict["nowTs"] > past

    def test_reverts_when_above_the_ceiling(self, shop: Actors, prepaid: PrepaidClient, w3: Web3) -> None:
        a = shop
        assert_reverts(
            lambda: prepaid.prepay(a.alice, a.outsider.address, 31, 100_00, now(w3) + DAY),
            "PrepaidCeilingExceeded",
            a.outsider.address,
            3_000_00,
            3_100_00,
        )

    def test_reverts_when_fee_above_the_held_part(
        self, shop: Actors, prepaid: PrepaidClient, w3: Web3
    ) -> None:
        a = shop
        assert_reverts(
            lambda: prepaid.prepay(a.alice, a.outsider.address, 1, 100_00, now(w3) + DAY, 60_01),
            "PrepaidFeeTooHigh",
            60_01,
            60_00,
        )

    def test_reverts_when_consumer_payment_cap_exceeded(
        self, shop: Actors, prepaid: PrepaidClient, w3: Web3
    ) -> None:
        a = shop  # alice is tier 3: 5,000 yuan a payment
        assert_reverts(
            lambda: prepaid.prepay(a.alice, a.gym.address, 1, 5_000_01, now(w3) + DAY),
            "TierPaymentCapExceeded",
            a.alice.address,
            5_000_00,
            5_000_01,
        )

    def test_reverts_without_approval(self, shop: Actors, prepaid: PrepaidClient, w3: Web3) -> None:
        a = shop
        assert_reverts(
            lambda: prepaid.prepay(a.alice, a.gym.address, 1, 100, now(w3) + DAY, approve=False),
            "ERC20InsufficientAllowance",
            prepaid.escrow.address,
            0,
            100,
        )


@pytest.fixture
def package(shop: Actors, prepaid: PrepaidClient, w3: Web3) -> int:
    """alice: 10 sessions of 333 fen at the school (60% held: 1,998 fen), 500 fen cancellation fee."""
    pid, _ = prepaid.prepay(shop.alice, shop.outsider.address, 10, 333, now(w3) + 30 * DAY, 500)
    return pid


class TestConsume:
    def test_releases_the_held_share_of_the_sessions(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient
    ) -> None:
        before = cash.balance_of(shop.outsider.address)
        event = prepaid.consume(shop.alice, package, 3).named("SessionsConsumed")[0]
        assert event.args == {
            "id": package,
            "sessions": 3,
            "amount": 599,
            "remaining": 7,
            "bySignature": False,
        }
        assert cash.balance_of(shop.outsider.address) == before + 599
        assert_conserved(prepaid, cash, package)

    def test_last_session_releases_exactly_what_is_held(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient
    ) -> None:
        for n in (3, 3, 3, 1):
            prepaid.consume(shop.alice, package, n)
        p = prepaid.package(package)
        assert (p.status, p.held, p.released) == (PackageStatus.CONSUMED, 0, p.deposited)
        assert_conserved(prepaid, cash, package)

    def test_reverts_when_more_sessions_than_remain(
        self, shop: Actors, package: int, prepaid: PrepaidClient
    ) -> None:
        prepaid.consume(shop.alice, package, 8)
        assert_reverts(
            lambda: prepaid.consume(shop.alice, package, 3), "PrepaidTooManySessions", package, 3, 2
        )
        assert_reverts(
            lambda: prepaid.consume(shop.alice, package, 0), "PrepaidTooManySessions", package, 0, 2
        )

    def test_reverts_when_caller_is_not_the_consumer(
        self, shop: Actors, package: int, prepaid: PrepaidClient
    ) -> None:
        assert_reverts(
            lambda: prepaid.consume(shop.bob, package, 1), "PrepaidNotConsumer", package, shop.bob.address
        )

    def test_reverts_after_cancel(self, shop: Actors, package: int, prepaid: PrepaidClient) -> None:
        prepaid.cancel(shop.alice, package)
        assert_reverts(lambda: prepaid.consume(shop.alice, package, 1), "PrepaidPackageClosed", package)

    def test_reverts_after_the_end_date(
        self, shop: Actors, package: int, prepaid: PrepaidClient, w3: Web3
    ) -> None:
        devtools.increase_time(w3, 31 * DAY)
        expires = prepaid.package(package).expires_at
        assert_reverts(
            lambda: prepaid.consume(shop.alice, package, 1), "PrepaidPackageExpired", package, expires
        )

    def test_reverts_when_package_unknown(self, shop: Actors, prepaid: PrepaidClient) -> None:
        assert_reverts(lambda: prepaid.consume(shop.alice, 999, 1), "PrepaidUnknownPackage", 999)

    def test_reverts_while_the_merchant_is_frozen(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient
    ) -> None:
        cash.freeze(shop.regulator, shop.outsider.address)
        assert_reverts(lambda: prepaid.consume(shop.alice, package, 1), "WalletFrozen", shop.outsider.address)
        assert_conserved(prepaid, cash, package)

    def test_reverts_while_the_consumer_is_frozen(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient
    ) -> None:
        cash.freeze(shop.regulator, shop.alice.address)
        assert_reverts(
            lambda: prepaid.consume(shop.alice, package, 1),
            "PrepaidConsumerFrozen",
            package,
            shop.alice.address,
        )
        assert prepaid.package(package).used == 0
        cash.unfreeze(shop.regulator, shop.alice.address)
        prepaid.consume(shop.alice, package, 1)
        assert_conserved(prepaid, cash, package)

    def test_single_sessions_release_cumulatively(
        self, shop: Actors, prepaid: PrepaidClient, cash: CashClient, w3: Web3
    ) -> None:
        """200 sessions of 1 fen, fully supervised: after 100 one-session calls, 100 fen released."""
        pid, _ = prepaid.prepay(shop.alice, shop.gym.address, 200, 1, now(w3) + DAY)
        for _ in range(100):
            prepaid.consume(shop.alice, pid, 1)
        p = prepaid.package(pid)
        assert (p.used, p.released, p.held) == (100, 100, 100)
        assert cash.balance_of(shop.gym.address) == 100
        assert_conserved(prepaid, cash, pid)

    def test_release_after_used_sessions_is_the_share_due_whatever_the_split(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient
    ) -> None:
        """1,998 fen held for 10 sessions: after k sessions floor(1998 * k / 10) is released."""
        released = prepaid.package(package).released  # the unsupervised 40%
        immediate = released
        for k, n in enumerate((1, 1, 1, 2, 1, 3, 1), start=1):
            prepaid.consume(shop.alice, package, n)
            used = prepaid.package(package).used
            assert prepaid.package(package).released == immediate + 1_998 * used // 10, (k, used)
        assert prepaid.package(package).status is PackageStatus.CONSUMED
        assert_conserved(prepaid, cash, package)


class TestClaimWithSignature:
    def deadline(self, w3: Web3) -> int:
        return now(w3) + 3600

    def test_merchant_claims_with_the_consumers_signature(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient, w3: Web3
    ) -> None:
        d = self.deadline(w3)
        sig = prepaid.sign_consumption(shop.alice, package, 2, 0, d)
        event = prepaid.claim(shop.outsider, package, 2, d, sig).named("SessionsConsumed")[0]
        assert event["bySignature"] is True and event["sessions"] == 2
        assert prepaid.package(package).nonce == 1
        assert_conserved(prepaid, cash, package)

    def test_reverts_when_signature_is_replayed(
        self, shop: Actors, package: int, prepaid: PrepaidClient, w3: Web3
    ) -> None:
        d = self.deadline(w3)
        sig = prepaid.sign_consumption(shop.alice, package, 2, 0, d)
        prepaid.claim(shop.outsider, package, 2, d, sig)
        assert_reverts(
            lambda: prepaid.claim(shop.outsider, package, 2, d, sig), "PrepaidInvalidSignature", package
        )

    def test_reverts_when_signature_is_forged(
        self, shop: Actors, package: int, prepaid: PrepaidClient, w3: Web3
    ) -> None:
        d = self.deadline(w3)
        sig = prepaid.sign_consumption(shop.bob, package, 2, 0, d)  # not the consumer
        assert_reverts(
            lambda: prepaid.claim(shop.outsider, package, 2, d, sig), "PrepaidInvalidSignature", package
        )

    def test_reverts_when_signature_is_for_another_package(
        self, shop: Actors, package: int, prepaid: PrepaidClient, w3: Web3
    ) -> None:
        other, _ = prepaid.prepay(shop.alice, shop.outsider.address, 2, 100, now(w3) + DAY)
        d = self.deadline(w3)
        sig = prepaid.sign_consumption(shop.alice, other, 1, 0, d)
        assert_reverts(
            lambda: prepaid.claim(shop.outsider, package, 1, d, sig), "PrepaidInvalidSignature", package
        )

    def test_reverts_when_signature_is_for_another_chain(
        self, shop: Actors, package: int, prepaid: PrepaidClient, w3: Web3
    ) -> None:
        d = self.deadline(w3)
        sig = prepaid.sign_consumption(shop.alice, package, 1, 0, d, chain_id=1)
        assert_reverts(
            lambda: prepaid.claim(shop.outsider, package, 1, d, sig), "PrepaidInvalidSignature", package
        )

    def test_reverts_when_signature_is_for_other_sessions(
        self, shop: Actors, package: int, prepaid: PrepaidClient, w3: Web3
    ) -> None:
        d = self.deadline(w3)
        sig = prepaid.sign_consumption(shop.alice, package, 1, 0, d)
        assert_reverts(
            lambda: prepaid.claim(shop.outsider, package, 5, d, sig), "PrepaidInvalidSignature", package
        )

    def test_reverts_when_signature_expired(
        self, shop: Actors, package: int, prepaid: PrepaidClient, w3: Web3
    ) -> None:
        d = now(w3) + 10
        sig = prepaid.sign_consumption(shop.alice, package, 1, 0, d)
        devtools.increase_time(w3, 60)
        assert_reverts(lambda: prepaid.claim(shop.outsider, package, 1, d, sig), "PrepaidSignatureExpired", d)

    def test_reverts_when_the_consumer_is_frozen_even_with_a_signature_made_after_the_freeze(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient, w3: Web3
    ) -> None:
        cash.freeze(shop.regulator, shop.alice.address)
        d = self.deadline(w3)
        sig = prepaid.sign_consumption(shop.alice, package, 2, 0, d)
        assert_reverts(
            lambda: prepaid.claim(shop.outsider, package, 2, d, sig),
            "PrepaidConsumerFrozen",
            package,
            shop.alice.address,
        )
        p = prepaid.package(package)
        assert (p.used, p.nonce) == (0, 0)
        assert_conserved(prepaid, cash, package)

    def test_reverts_when_caller_is_not_the_merchant(
        self, shop: Actors, package: int, prepaid: PrepaidClient, w3: Web3
    ) -> None:
        d = self.deadline(w3)
        sig = prepaid.sign_consumption(shop.alice, package, 1, 0, d)
        assert_reverts(
            lambda: prepaid.claim(shop.bob, package, 1, d, sig),
            "PrepaidNotMerchant",
            package,
            shop.bob.address,
        )


class TestCancel:
    def test_returns_the_held_part_minus_the_fee(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient
    ) -> None:
        prepaid.consume(shop.alice, package, 3)  # 599 released, 1,399 held
        alice, school = cash.balance_of(shop.alice.address), cash.balance_of(shop.outsider.address)
        event = prepaid.cancel(shop.alice, package).named("PackageCancelled")[0]
        assert event.args == {"id": package, "refund": 899, "fee": 500}
        assert cash.balance_of(shop.alice.address) == alice + 899
        assert cash.balance_of(shop.outsider.address) == school + 500
        assert prepaid.package(package).status == PackageStatus.CANCELLED
        assert_conserved(prepaid, cash, package)

    def test_fee_never_exceeds_what_is_left(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient
    ) -> None:
        prepaid.consume(shop.alice, package, 9)  # 200 left held, fee 500
        event = prepaid.cancel(shop.alice, package).named("PackageCancelled")[0]
        assert (event["refund"], event["fee"]) == (0, 200)
        assert_conserved(prepaid, cash, package)

    def test_reverts_while_the_consumer_is_frozen(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient
    ) -> None:
        cash.freeze(shop.regulator, shop.alice.address)
        assert_reverts(
            lambda: prepaid.cancel(shop.alice, package), "PrepaidConsumerFrozen", package, shop.alice.address
        )
        assert prepaid.package(package).status is PackageStatus.OPEN
        assert_conserved(prepaid, cash, package)

    def test_reverts_when_cancelled_twice(self, shop: Actors, package: int, prepaid: PrepaidClient) -> None:
        prepaid.cancel(shop.alice, package)
        assert_reverts(lambda: prepaid.cancel(shop.alice, package), "PrepaidPackageClosed", package)

    def test_reverts_when_caller_is_not_the_consumer(
        self, shop: Actors, package: int, prepaid: PrepaidClient
    ) -> None:
        assert_reverts(
            lambda: prepaid.cancel(shop.outsider, package),
            "PrepaidNotConsumer",
            package,
            shop.outsider.address,
        )


class TestRefund:
    def test_anyone_refunds_the_consumer_after_the_end_date(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient, w3: Web3
    ) -> None:
        prepaid.consume(shop.alice, package, 4)
        held = prepaid.package(package).held
        devtools.increase_time(w3, 31 * DAY)
        before = cash.balance_of(shop.alice.address)
        event = prepaid.refund(shop.bob, package).named("PackageRefunded")[0]  # bob: a keeper
        assert event.args == {"id": package, "amount": held, "merchantClosed": False}
        assert cash.balance_of(shop.alice.address) == before + held
        assert_conserved(prepaid, cash, package)

    def test_reverts_before_the_end_date(self, shop: Actors, package: int, prepaid: PrepaidClient) -> None:
        assert_reverts(lambda: prepaid.refund(shop.bob, package), "PrepaidNotRefundable", package)

    def test_reverts_when_refunded_twice(
        self, shop: Actors, package: int, prepaid: PrepaidClient, w3: Web3
    ) -> None:
        devtools.increase_time(w3, 31 * DAY)
        prepaid.refund(shop.bob, package)
        assert_reverts(lambda: prepaid.refund(shop.bob, package), "PrepaidPackageClosed", package)

    def test_closed_merchant_makes_packages_refundable_and_stops_consumption(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient
    ) -> None:
        assert prepaid.close_merchant(shop.regulator, shop.outsider.address).named("MerchantClosed")
        assert_reverts(
            lambda: prepaid.consume(shop.alice, package, 1), "PrepaidMerchantClosed", shop.outsider.address
        )
        event = prepaid.refund(shop.bob, package).named("PackageRefunded")[0]
        assert event["merchantClosed"] is True and event["amount"] == 1_998
        assert_conserved(prepaid, cash, package)

    def test_refund_to_a_frozen_consumer_waits_until_unfrozen(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient
    ) -> None:
        prepaid.close_merchant(shop.regulator, shop.outsider.address)
        cash.freeze(shop.regulator, shop.alice.address)
        assert_reverts(
            lambda: prepaid.refund(shop.bob, package), "PrepaidConsumerFrozen", package, shop.alice.address
        )
        assert prepaid.package(package).held == 1_998  # still held for alice
        cash.unfreeze(shop.regulator, shop.alice.address)
        prepaid.refund(shop.bob, package)
        assert_conserved(prepaid, cash, package)

    def test_batch_refunds_every_open_package_and_defers_frozen_consumers(
        self, shop: Actors, prepaid: PrepaidClient, cash: CashClient, w3: Web3
    ) -> None:
        a = shop
        ids = [prepaid.prepay(a.alice, a.gym.address, 2, 100_00, now(w3) + DAY)[0] for _ in range(3)]
        ids += [prepaid.prepay(a.carol, a.gym.address, 1, 50_00, now(w3) + DAY)[0] for _ in range(2)]
        prepaid.consume(a.alice, ids[0], 2)  # fully consumed: nothing to refund
        prepaid.close_merchant(a.regulator, a.gym.address)
        cash.freeze(a.regulator, a.carol.address)
        result = prepaid.refund_batch(a.bob, prepaid.packages_of(a.gym.address))
        assert [e["id"] for e in result.named("PackageRefunded")] == ids[1:3]
        deferred = [(e["id"], e["consumer"], e["reason"]) for e in result.named("RefundDeferred")]
        frozen = selector("PrepaidConsumerFrozen(uint256,address)")
        assert deferred == [(i, a.carol.address, frozen) for i in ids[3:]]
        cash.unfreeze(a.regulator, a.carol.address)
        prepaid.refund_batch(a.bob, ids)
        assert all(prepaid.package(i).held == 0 for i in ids)
        assert_conserved(prepaid, cash, *ids)

    def test_batch_defers_a_consumer_at_balance_cap_and_refunds_the_rest(
        self, shop: Actors, prepaid: PrepaidClient, cash: CashClient, w3: Web3
    ) -> None:
        a = shop
        cash.mint(a.operator, a.bob.address, 1_000_00)
        mine, _ = prepaid.prepay(a.alice, a.gym.address, 1, 100_00, now(w3) + DAY)
        bobs, _ = prepaid.prepay(a.bob, a.gym.address, 1, 50_00, now(w3) + DAY)
        cap = cash.tier_limits(3).balance_cap
        cash.mint(a.operator, a.alice.address, cap - cash.balance_of(a.alice.address))  # alice at her cap
        prepaid.close_merchant(a.regulator, a.gym.address)
        result = prepaid.refund_batch(a.outsider, [mine, bobs])
        assert [e["id"] for e in result.named("PackageRefunded")] == [bobs]
        deferred = result.named("RefundDeferred")[0]
        assert (deferred["id"], deferred["consumer"], deferred["reason"]) == (
            mine,
            a.alice.address,
            selector("TierBalanceCapExceeded(address,uint256,uint256)"),
        )
        assert prepaid.package(mine).status is PackageStatus.OPEN and prepaid.package(mine).held == 100_00
        assert_conserved(prepaid, cash, mine, bobs)
        cash.transfer(a.alice, a.carol.address, 100_00)  # room again: the retry refunds
        assert [e["id"] for e in prepaid.refund_batch(a.outsider, [mine, bobs]).named("PackageRefunded")] == [
            mine
        ]
        assert_conserved(prepaid, cash, mine, bobs)

    def test_batch_reverts_as_a_whole_while_the_token_is_paused(
        self, shop: Actors, package: int, prepaid: PrepaidClient, cash: CashClient
    ) -> None:
        prepaid.close_merchant(shop.regulator, shop.outsider.address)
        cash.pause(shop.regulator)
        assert_reverts(lambda: prepaid.refund_batch(shop.bob, [package]), "EnforcedPause")
        cash.unpause(shop.regulator)
        assert prepaid.refund_batch(shop.bob, [package]).named("PackageRefunded")

    def test_reverts_when_batch_too_large(self, shop: Actors, prepaid: PrepaidClient) -> None:
        assert_reverts(
            lambda: prepaid.refund_batch(shop.bob, list(range(1, 102))), "PrepaidBatchTooLarge", 101, 100
        )
