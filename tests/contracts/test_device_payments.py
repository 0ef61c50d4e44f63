"""DevicePayments (issue 23): vending machines pre-authorise a maximum, complete with the real
amount or release it; recycling bins pay people from a programme's budget within a daily cap."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from web3 import Web3

from chain import devtools
from chain.clients.devices import (
    DeviceClient,
    PreAuthMessage,
    PreAuthStatus,
    SignedPreAuth,
    recycling_ref,
    sign_preauth,
)
from chain.clients.hardwallet import CardForm, HardWalletClient
from chain.clients.token import CashClient
from tests.conftest import Actors
from tests.helpers import assert_reverts
from wallets.hardwallet import HardWallet

KEY = bytes.fromhex("b2" * 32)  # alice's card
WALLET = 500_00
COFFEE_MAX, COFFEE = 10_00, 6_50


def now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


@dataclass
class Setup:
    a: Actors
    card: HardWallet


@pytest.fixture
def setup(registered: Actors, cash: CashClient, hardwallet: HardWalletClient, devices: DeviceClient) -> Setup:
    """alice (500 yuan in her wallet, DevicePayments approved) holds a card; gym is the coffee machine."""
    a = registered
    cash.mint(a.operator, a.alice.address, WALLET)
    card = HardWallet(KEY, hardwallet.domain, form=CardForm.CARD)
    hardwallet.register_card(a.operator, card.address, a.alice.address, CardForm.CARD)
    devices.approve(a.alice, WALLET)
    return Setup(a, card)


def preauth(s: Setup, devices: DeviceClient, amount: int = COFFEE_MAX) -> int:
    signed = s.card.sign_preauth(s.a.gym.address, amount, devices.domain)
    pid, _ = devices.preauthorize(s.a.operator, signed)
    return pid


def assert_conserved(devices: DeviceClient, cash: CashClient) -> None:
    t = devices.totals()
    assert t["authorized"] == t["captured"] + t["released"] + t["open"]
    assert t["funded"] == t["paidout"] + t["returned"] + t["budget"]
    assert cash.balance_of(devices.address) == t["open"] + t["budget"]


class TestPreAuthorize:
    def test_holds_the_maximum_from_the_holders_wallet(
        self, setup: Setup, devices: DeviceClient, cash: CashClient
    ) -> None:
        pid = preauth(setup, devices)
        p = devices.preauth(pid)
        assert (p.card, p.holder, p.merchant, p.authorized, p.status) == (
            setup.card.address,
            setup.a.alice.address,
            setup.a.gym.address,
            COFFEE_MAX,
            PreAuthStatus.OPEN,
        )
        assert cash.balance_of(setup.a.alice.address) == WALLET - COFFEE_MAX
        assert devices.preauth_id_of(setup.card.address, p.counter) == pid
        assert_conserved(devices, cash)

    def test_reverts_when_the_same_counter_is_uploaded_again(
        self, setup: Setup, devices: DeviceClient
    ) -> None:
        signed = setup.card.sign_preauth(setup.a.gym.address, COFFEE_MAX, devices.domain)
        devices.preauthorize(setup.a.operator, signed)
        assert_reverts(
            lambda: devices.preauthorize(setup.a.operator, signed),
            "DeviceCounterUsed",
            setup.card.address,
            signed.message.counter,
        )

    def test_reverts_on_a_forged_or_foreign_signature(
        self, w3: Web3, setup: Setup, devices: DeviceClient, hardwallet: HardWalletClient
    ) -> None:
        good = setup.card.sign_preauth(setup.a.gym.address, COFFEE_MAX, devices.domain)
        raised = SignedPreAuth(
            PreAuthMessage(**{**good.message.__dict__, "max_amount": COFFEE_MAX * 2}), good.signature
        )
        assert_reverts(
            lambda: devices.preauthorize(setup.a.operator, raised),
            "DeviceInvalidSignature",
            setup.card.address,
        )
        # a signature under the card-payment domain cannot pre-authorise
        foreign = sign_preauth(KEY, good.message, hardwallet.domain)  # type: ignore[arg-type]
        assert_reverts(
            lambda: devices.preauthorize(setup.a.operator, foreign),
            "DeviceInvalidSignature",
            setup.card.address,
        )

    def test_reverts_above_the_cap_for_an_unknown_or_lost_card_and_a_non_merchant(
        self, setup: Setup, devices: DeviceClient, hardwallet: HardWalletClient
    ) -> None:
        a = setup.a
        _, cap = devices.limits()
        over = setup.card.sign_preauth(a.gym.address, cap + 1, devices.domain)
        assert_reverts(lambda: devices.preauthorize(a.operator, over), "DevicePreAuthAboveCap", cap, cap + 1)
        stranger = HardWallet(bytes.fromhex("c3" * 32), hardwallet.domain)
        unknown = stranger.sign_preauth(a.gym.address, 1_00, devices.domain)
        assert_reverts(
            lambda: devices.preauthorize(a.operator, unknown), "DeviceUnknownCard", stranger.address
        )
        to_bob = setup.card.sign_preauth(a.bob.address, 1_00, devices.domain)
        assert_reverts(
            lambda: devices.preauthorize(a.operator, to_bob), "DeviceInvalidMerchant", a.bob.address
        )
        hardwallet.report_lost(a.alice, setup.card.address)
        lost = setup.card.sign_preauth(a.gym.address, 1_00, devices.domain)
        assert_reverts(
            lambda: devices.preauthorize(a.operator, lost), "DeviceCardNotActive", setup.card.address, 3
        )

    def test_only_the_device_role_uploads(self, setup: Setup, devices: DeviceClient) -> None:
        signed = setup.card.sign_preauth(setup.a.gym.address, 1_00, devices.domain)
        err = assert_reverts(
            lambda: devices.preauthorize(setup.a.alice, signed), "AccessControlUnauthorizedAccount"
        )
        assert err.args_tuple[0] == setup.a.alice.address

    def test_a_frozen_holder_cannot_be_held(
        self, setup: Setup, devices: DeviceClient, cash: CashClient
    ) -> None:
        cash.freeze(setup.a.regulator, setup.a.alice.address)
        signed = setup.card.sign_preauth(setup.a.gym.address, 1_00, devices.domain)
        assert_reverts(
            lambda: devices.preauthorize(setup.a.operator, signed), "WalletFrozen", setup.a.alice.address
        )


class TestCompleteAndRelease:
    def test_completes_with_the_real_amount_and_returns_the_rest(
        self, setup: Setup, devices: DeviceClient, cash: CashClient
    ) -> None:
        pid = preauth(setup, devices)
        event = devices.complete(setup.a.operator, pid, COFFEE).named("PreAuthCompleted")[0]
        assert (event["amount"], event["returned"]) == (COFFEE, COFFEE_MAX - COFFEE)
        assert cash.balance_of(setup.a.gym.address) == COFFEE
        assert cash.balance_of(setup.a.alice.address) == WALLET - COFFEE
        p = devices.preauth(pid)
        assert (p.status, p.captured) == (PreAuthStatus.COMPLETED, COFFEE)
        assert_conserved(devices, cash)

    def test_reverts_a_completion_above_the_authorised_maximum(
        self, setup: Setup, devices: DeviceClient
    ) -> None:
        pid = preauth(setup, devices)
        assert_reverts(
            lambda: devices.complete(setup.a.operator, pid, COFFEE_MAX + 1),
            "DeviceCompletionAboveAuthorized",
            pid,
            COFFEE_MAX,
            COFFEE_MAX + 1,
        )

    def test_completes_or_releases_exactly_once(self, setup: Setup, devices: DeviceClient) -> None:
        op = setup.a.operator
        done, failed = preauth(setup, devices), preauth(setup, devices)
        devices.complete(op, done, COFFEE)
        devices.release(op, failed)
        for pid, status in ((done, PreAuthStatus.COMPLETED), (failed, PreAuthStatus.RELEASED)):
            assert_reverts(lambda p=pid: devices.complete(op, p, 1), "DevicePreAuthNotOpen", pid, int(status))
            assert_reverts(lambda p=pid: devices.release(op, p), "DevicePreAuthNotOpen", pid, int(status))
        assert_reverts(lambda: devices.complete(op, 99, 1), "DeviceUnknownPreAuth", 99)

    def test_a_failed_dispense_releases_the_whole_hold(
        self, setup: Setup, devices: DeviceClient, cash: CashClient
    ) -> None:
        pid = preauth(setup, devices)
        event = devices.release(setup.a.operator, pid).named("PreAuthReleased")[0]
        assert (event["amount"], event["expired"]) == (COFFEE_MAX, False)
        assert cash.balance_of(setup.a.alice.address) == WALLET
        assert cash.balance_of(setup.a.gym.address) == 0
        assert_conserved(devices, cash)

    def test_after_the_deadline_anyone_releases_and_nobody_completes(
        self, w3: Web3, setup: Setup, devices: DeviceClient, cash: CashClient
    ) -> None:
        pid = preauth(setup, devices)
        expires = devices.preauth(pid).expires_at
        assert_reverts(lambda: devices.release(setup.a.bob, pid), "DevicePreAuthNotExpired", pid, expires)
        devtools.increase_time(w3, expires - now(w3) + 1)
        assert_reverts(
            lambda: devices.complete(setup.a.operator, pid, 1), "DevicePreAuthExpired", pid, expires
        )
        event = devices.release(setup.a.bob, pid).named("PreAuthReleased")[0]
        assert (event["amount"], event["expired"], event["by"]) == (COFFEE_MAX, True, setup.a.bob.address)
        assert cash.balance_of(setup.a.alice.address) == WALLET
        assert_conserved(devices, cash)

    def test_a_frozen_holder_blocks_completion_until_unfrozen(
        self, setup: Setup, devices: DeviceClient, cash: CashClient
    ) -> None:
        pid = preauth(setup, devices)
        cash.freeze(setup.a.regulator, setup.a.alice.address)
        assert_reverts(
            lambda: devices.complete(setup.a.operator, pid, COFFEE), "WalletFrozen", setup.a.alice.address
        )
        assert devices.preauth(pid).status is PreAuthStatus.OPEN

    def test_limits_are_bounded(self, setup: Setup, devices: DeviceClient) -> None:
        assert_reverts(lambda: devices.set_limits(setup.a.operator, 59, 1), "DeviceInvalidLimits", 59, 1)
        assert_reverts(lambda: devices.set_limits(setup.a.operator, 600, 0), "DeviceInvalidLimits", 600, 0)
        devices.set_limits(setup.a.operator, 600, 50_00)
        assert devices.limits() == (600, 50_00)


@pytest.fixture
def programme(setup: Setup, devices: DeviceClient, cash: CashClient) -> int:
    """carol sponsors a recycling programme (100 yuan, 5 yuan a person a day) for gym's bins."""
    a = setup.a
    cash.mint(a.operator, a.carol.address, 100_00)
    pid, _ = devices.create_programme(a.operator, a.carol.address, a.gym.address, 5_00)
    devices.approve(a.carol, 100_00)
    devices.fund(a.carol, pid, 100_00)
    return pid


class TestRecycling:
    def test_a_bin_pays_a_wallet_and_a_cards_holder_within_the_daily_cap(
        self, setup: Setup, devices: DeviceClient, cash: CashClient, programme: int
    ) -> None:
        a = setup.a
        devices.payout(a.operator, programme, a.alice.address, 3_00, recycling_ref("bin1-1"))
        event = devices.payout(a.operator, programme, setup.card.address, 2_00, recycling_ref("bin1-2"))
        paid = event.named("RecyclingPaid")[0]
        assert (paid["person"], paid["card"], paid["paidToday"]) == (
            a.alice.address,
            setup.card.address,
            5_00,
        )
        assert cash.balance_of(a.alice.address) == WALLET + 5_00
        assert_reverts(
            lambda: devices.payout(a.operator, programme, a.alice.address, 1, recycling_ref("bin1-3")),
            "DeviceDailyCapExceeded",
            programme,
            a.alice.address,
            5_00,
            5_01,
        )
        assert devices.programme(programme).budget == 95_00
        assert_conserved(devices, cash)

    def test_the_cap_resets_the_next_beijing_day(
        self, w3: Web3, setup: Setup, devices: DeviceClient, programme: int
    ) -> None:
        a = setup.a
        devices.payout(a.operator, programme, a.bob.address, 5_00, recycling_ref("d1"))
        devtools.increase_time(w3, 86_400)
        devices.payout(a.operator, programme, a.bob.address, 5_00, recycling_ref("d2"))
        assert devices.paid_today(programme, a.bob.address) == 5_00

    def test_reverts_a_duplicate_reference_an_empty_budget_and_a_non_person(
        self, setup: Setup, devices: DeviceClient, cash: CashClient, programme: int
    ) -> None:
        a = setup.a
        ref = recycling_ref("dup")
        devices.payout(a.operator, programme, a.bob.address, 1_00, ref)
        assert_reverts(
            lambda: devices.payout(a.operator, programme, a.alice.address, 1_00, ref),
            "DevicePayoutDuplicate",
            programme,
            ref,
        )
        assert_reverts(
            lambda: devices.payout(a.operator, programme, a.gym.address, 1_00, recycling_ref("m")),
            "DeviceInvalidPerson",
            a.gym.address,
        )
        pid, _ = devices.create_programme(a.operator, a.carol.address, a.gym.address, 5_00)
        assert_reverts(
            lambda: devices.payout(a.operator, pid, a.bob.address, 1_00, recycling_ref("e")),
            "DeviceBudgetExceeded",
            pid,
            0,
            1_00,
        )

    def test_closing_returns_the_budget_to_the_sponsor(
        self, setup: Setup, devices: DeviceClient, cash: CashClient, programme: int
    ) -> None:
        a = setup.a
        devices.payout(a.operator, programme, a.bob.address, 4_00, recycling_ref("c"))
        devices.close_programme(a.operator, programme)
        assert cash.balance_of(a.carol.address) == 96_00
        assert_reverts(
            lambda: devices.payout(a.operator, programme, a.bob.address, 1, recycling_ref("after")),
            "DeviceProgrammeClosed",
            programme,
        )
        assert_reverts(lambda: devices.fund(a.carol, programme, 1), "DeviceProgrammeClosed", programme)
        assert_conserved(devices, cash)

    def test_only_the_sponsor_funds_and_programmes_are_checked(
        self, setup: Setup, devices: DeviceClient, programme: int
    ) -> None:
        a = setup.a
        assert_reverts(
            lambda: devices.fund(a.bob, programme, 1), "DeviceNotSponsor", programme, a.bob.address
        )
        assert_reverts(
            lambda: devices.create_programme(a.operator, a.carol.address, a.bob.address, 1),
            "DeviceInvalidProgramme",
            a.carol.address,
            a.bob.address,
            1,
        )
        assert_reverts(lambda: devices.fund(a.bob, 42, 1), "DeviceUnknownProgramme", 42)


class TestRecoveredHolder:
    """The holder's wallet is recovered while two holds are open (red team F3): neither stays
    locked here; the retired holder's share goes to its registered successor."""

    def test_open_holds_complete_or_release_to_the_successor(
        self, w3: Web3, setup: Setup, devices: DeviceClient, cash: CashClient
    ) -> None:
        a, alice = setup.a, setup.a.alice.address
        new = Web3.to_checksum_address("0x" + "5e" * 20)
        first, second = preauth(setup, devices, 8_00), preauth(setup, devices, 6_00)
        result = cash.tx.transact(
            a.operator, cash.propose_recovery_call(alice, new, Web3.keccak(text="branch check"))
        )
        rid = int(result.named("RecoveryProposed")[0]["id"])
        cash.tx.transact(a.regulator, cash.approve_recovery_call(rid))
        assert cash.successor_of(alice) == new
        held = cash.balance_of(new)
        # the machine delivered: completion stands, paid on the successor's behalf, the rest to it
        event = devices.complete(a.operator, first, 5_00).named("PreAuthCompleted")[0]
        assert (event["amount"], event["returned"]) == (5_00, 3_00)
        assert cash.balance_of(a.gym.address) == 5_00
        assert cash.balance_of(new) == held + 3_00
        # after the deadline anyone releases the other hold: to the successor
        expires = devices.preauth(second).expires_at
        devtools.increase_time(w3, expires - now(w3) + 1)
        event = devices.release(a.outsider, second).named("PreAuthReleased")[0]
        assert (event["holder"], event["amount"], event["expired"]) == (new, 6_00, True)
        assert cash.balance_of(new) == held + 3_00 + 6_00
        assert cash.balance_of(alice) == 0
        assert devices.totals()["open"] == 0
        assert_conserved(devices, cash)
