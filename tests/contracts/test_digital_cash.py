"""DigitalCash: permissioned movements, tier caps on every movement, issuer and regulator roles."""

from __future__ import annotations

from web3 import Web3

from chain import devtools
from chain.clients.token import PAY_CHARGES_OWNER, PAY_TO_MERCHANT, CashClient, Kind
from chain.manifest import Manifest
from tests.conftest import Actors, identity
from tests.helpers import assert_reverts

DAY = 86_400
TIER3 = {"balance": 20_000_00, "payment": 5_000_00, "daily": 10_000_00}


def cash_role(cash: CashClient, name: str) -> bytes:
    return getattr(cash.cash.functions, name)().call()


def test_has_two_decimals_fen(fresh: None, cash: CashClient) -> None:
    assert cash.cash.functions.decimals().call() == 2


class TestMint:
    def test_issuer_mints_with_issued_event(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        result = cash.mint(a.operator, a.alice.address, 12_345)
        assert result.named("Issued")[0].args == {
            "to": a.alice.address,
            "amount": 12_345,
            "issuer": a.operator.address,
        }
        assert cash.balance_of(a.alice.address) == 12_345
        assert cash.total_supply() == 12_345

    def test_reverts_when_receiver_not_registered(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        assert_reverts(
            lambda: cash.mint(a.operator, a.outsider.address, 1), "WalletNotRegistered", a.outsider.address
        )

    def test_supply_stops_below_two_to_the_128(self, registered: Actors, cash: CashClient) -> None:
        # A balance shares its slot with the day's spending: 128 bits, so the supply stays below.
        a = registered
        cash.register(a.operator, a.outsider.address, Kind.INSTITUTION, 1, 0, identity("bank"))
        cash.mint(a.operator, a.outsider.address, 2**128 - 2)
        assert_reverts(lambda: cash.mint(a.operator, a.outsider.address, 2), "SupplyOverflow", 2**128)
        cash.mint(a.operator, a.outsider.address, 1)
        assert cash.balance_of(a.outsider.address) == cash.total_supply() == 2**128 - 1

    def test_reverts_when_receiver_frozen(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.freeze(a.regulator, a.alice.address)
        assert_reverts(lambda: cash.mint(a.operator, a.alice.address, 1), "WalletFrozen", a.alice.address)

    def test_reverts_when_balance_cap_exceeded(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, TIER3["balance"])
        assert_reverts(
            lambda: cash.mint(a.operator, a.alice.address, 1),
            "TierBalanceCapExceeded",
            a.alice.address,
            TIER3["balance"],
            TIER3["balance"] + 1,
        )

    def test_reverts_when_amount_zero(self, registered: Actors, cash: CashClient) -> None:
        assert_reverts(lambda: cash.mint(registered.operator, registered.alice.address, 0), "ZeroAmount")

    def test_reverts_when_caller_is_not_issuer(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        for caller in (a.admin, a.regulator, a.alice):
            assert_reverts(
                lambda c=caller: cash.mint(c, a.alice.address, 1),
                "AccessControlUnauthorizedAccount",
                caller.address,
                cash_role(cash, "ISSUER_ROLE"),
            )


class TestTransfer:
    def test_moves_cash_between_registered_wallets(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 1_000_00)
        result = cash.transfer(a.alice, a.gym.address, 300_00)
        assert result.named("Transfer")[0].args == {
            "from": a.alice.address,
            "to": a.gym.address,
            "value": 300_00,
        }
        assert cash.balance_of(a.alice.address) == 700_00
        assert cash.balance_of(a.gym.address) == 300_00
        assert cash.spent_today(a.alice.address) == 300_00

    def test_reverts_when_sender_not_registered(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        assert_reverts(
            lambda: cash.transfer(a.outsider, a.alice.address, 1), "WalletNotRegistered", a.outsider.address
        )

    def test_reverts_when_recipient_not_registered(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 100)
        assert_reverts(
            lambda: cash.transfer(a.alice, a.outsider.address, 1), "WalletNotRegistered", a.outsider.address
        )

    def test_reverts_when_sender_frozen(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 100)
        cash.freeze(a.regulator, a.alice.address)
        assert_reverts(lambda: cash.transfer(a.alice, a.bob.address, 1), "WalletFrozen", a.alice.address)

    def test_reverts_when_recipient_frozen(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 100)
        cash.freeze(a.regulator, a.bob.address)
        assert_reverts(lambda: cash.transfer(a.alice, a.bob.address, 1), "WalletFrozen", a.bob.address)

    def test_succeeds_again_after_unfreeze(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 100)
        cash.freeze(a.regulator, a.alice.address)
        cash.unfreeze(a.regulator, a.alice.address)
        cash.transfer(a.alice, a.bob.address, 40)
        assert cash.balance_of(a.bob.address) == 40

    def test_reverts_when_balance_insufficient(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 100)
        assert_reverts(
            lambda: cash.transfer(a.alice, a.bob.address, 101),
            "ERC20InsufficientBalance",
            a.alice.address,
            100,
            101,
        )

    def test_reverts_when_payment_cap_exceeded(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, TIER3["balance"])
        amount = TIER3["payment"] + 1
        assert_reverts(
            lambda: cash.transfer(a.alice, a.carol.address, amount),
            "TierPaymentCapExceeded",
            a.alice.address,
            TIER3["payment"],
            amount,
        )

    def test_reverts_when_recipient_balance_cap_exceeded(self, registered: Actors, cash: CashClient) -> None:
        a = registered  # bob is tier 4: balance cap 10,000 yuan
        cash.mint(a.operator, a.bob.address, 9_900_00)
        cash.mint(a.operator, a.carol.address, 1_000_00)
        assert_reverts(
            lambda: cash.transfer(a.carol, a.bob.address, 100_01),
            "TierBalanceCapExceeded",
            a.bob.address,
            10_000_00,
            10_000_01,
        )

    def test_reverts_when_daily_cap_exceeded(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, TIER3["balance"])
        cash.transfer(a.alice, a.carol.address, TIER3["payment"])
        cash.transfer(a.alice, a.carol.address, TIER3["payment"])
        assert_reverts(
            lambda: cash.transfer(a.alice, a.carol.address, 1),
            "TierDailyCapExceeded",
            a.alice.address,
            TIER3["daily"],
            TIER3["daily"] + 1,
        )

    def test_daily_cap_resets_the_next_day(self, registered: Actors, cash: CashClient, w3: Web3) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, TIER3["balance"])
        cash.transfer(a.alice, a.carol.address, TIER3["payment"])
        cash.transfer(a.alice, a.carol.address, TIER3["payment"])
        devtools.increase_time(w3, DAY)
        assert cash.spent_today(a.alice.address) == 0
        cash.transfer(a.alice, a.carol.address, 1)
        assert cash.spent_today(a.alice.address) == 1

    def test_caps_follow_a_tier_change(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, TIER3["balance"])
        cash.set_tier(a.operator, a.alice.address, 1)  # class 1: no limits
        cash.mint(a.operator, a.alice.address, 100_000_000_00)
        cash.transfer(a.alice, a.carol.address, TIER3["payment"] * 3)
        assert cash.balance_of(a.carol.address) == TIER3["payment"] * 3


class TestCapExemptInstitution:
    """A cap-exempt wallet stands for a family contract: it moves money only with ``payFor``."""

    def test_exempt_wallet_skips_tier_caps(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.register(a.operator, a.outsider.address, Kind.INSTITUTION, 4, 0, identity("escrow"))
        cash.grant_cap_exemption(a.admin, a.outsider.address)
        cash.mint(a.operator, a.outsider.address, 50_000_00)  # tier 4 balance cap is 10,000 yuan
        # above tier 4 payment and daily caps; the owner (carol) pays herself, nothing is charged
        cash.pay_for(a.outsider, a.carol.address, a.carol.address, 30_000_00)
        assert cash.balance_of(a.outsider.address) == 20_000_00

    def test_reverts_when_a_family_sends_with_a_plain_transfer(
        self, registered: Actors, cash: CashClient
    ) -> None:
        a = registered
        cash.register(a.operator, a.outsider.address, Kind.INSTITUTION, 4, 0, identity("escrow"))
        cash.grant_cap_exemption(a.admin, a.outsider.address)
        cash.mint(a.operator, a.outsider.address, 100)
        assert_reverts(
            lambda: cash.transfer(a.outsider, a.carol.address, 1), "FamilyMustPayFor", a.outsider.address
        )

    def test_exempt_wallet_still_cannot_pay_an_unregistered_wallet(
        self, registered: Actors, cash: CashClient
    ) -> None:
        a = registered
        cash.register(a.operator, a.outsider.address, Kind.INSTITUTION, 4, 0, identity("escrow"))
        cash.grant_cap_exemption(a.admin, a.outsider.address)
        cash.mint(a.operator, a.outsider.address, 100)
        assert_reverts(
            lambda: cash.pay_for(a.outsider, a.carol.address, a.admin.address, 1),
            "WalletNotRegistered",
            a.admin.address,
        )

    def test_exemption_does_not_lift_the_recipient_cap(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.register(a.operator, a.outsider.address, Kind.INSTITUTION, 1, 0, identity("escrow"))
        cash.grant_cap_exemption(a.admin, a.outsider.address)
        cash.mint(a.operator, a.outsider.address, 20_000_00)
        assert_reverts(
            lambda: cash.pay_for(a.outsider, a.bob.address, a.bob.address, 10_000_01),
            "TierBalanceCapExceeded",
            a.bob.address,
            10_000_00,
            10_000_01,
        )


class TestTransferFrom:
    """A spender acts on someone else's money: it must be admitted itself (the red team's finding:
    a frozen or never-registered spender still spent an approval given before)."""

    def test_a_registered_spender_moves_the_approved_amount(
        self, registered: Actors, cash: CashClient
    ) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 1_000_00)
        cash.approve(a.alice, a.carol.address, 1_000_00)
        cash.transfer_from(a.carol, a.alice.address, a.gym.address, 150)
        assert cash.balance_of(a.gym.address) == 150
        assert cash.spent_today(a.alice.address) == 150  # the holder's caps, not the spender's
        assert cash.spent_today(a.carol.address) == 0

    def test_reverts_when_the_spender_is_frozen(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 1_000_00)
        cash.approve(a.alice, a.carol.address, 1_000_00)
        cash.freeze(a.regulator, a.carol.address)
        assert_reverts(
            lambda: cash.transfer_from(a.carol, a.alice.address, a.gym.address, 150),
            "WalletFrozen",
            a.carol.address,
        )
        assert cash.balance_of(a.alice.address) == 1_000_00
        cash.unfreeze(a.regulator, a.carol.address)
        cash.transfer_from(a.carol, a.alice.address, a.gym.address, 150)
        assert cash.balance_of(a.gym.address) == 150

    def test_reverts_when_the_spender_is_not_registered(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 1_000_00)
        cash.approve(a.alice, a.outsider.address, 1_000_00)
        assert_reverts(
            lambda: cash.transfer_from(a.outsider, a.alice.address, a.gym.address, 150),
            "WalletNotRegistered",
            a.outsider.address,
        )
        assert cash.balance_of(a.alice.address) == 1_000_00

    def test_a_holder_spending_its_own_allowance_is_judged_as_the_sender(
        self, registered: Actors, cash: CashClient
    ) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 1_000_00)
        cash.approve(a.alice, a.alice.address, 1_000)
        cash.transfer_from(a.alice, a.alice.address, a.gym.address, 500)
        assert cash.balance_of(a.gym.address) == 500
        cash.freeze(a.regulator, a.alice.address)
        assert_reverts(
            lambda: cash.transfer_from(a.alice, a.alice.address, a.gym.address, 1),
            "WalletFrozen",
            a.alice.address,
        )

    def test_a_cap_exempt_family_pulls_until_it_is_frozen(self, registered: Actors, cash: CashClient) -> None:
        """Families pull with ``transferFrom`` and are registered wallets, so they pass; the
        regulator's freeze of a family stops its pulls."""
        a = registered
        cash.register(a.operator, a.outsider.address, Kind.INSTITUTION, 4, 0, identity("pulling family"))
        cash.grant_cap_exemption(a.admin, a.outsider.address)
        cash.mint(a.operator, a.alice.address, 1_000_00)
        cash.approve(a.alice, a.outsider.address, 1_000_00)
        cash.transfer_from(a.outsider, a.alice.address, a.outsider.address, 300)
        assert cash.balance_of(a.outsider.address) == 300
        cash.freeze(a.regulator, a.outsider.address)
        assert_reverts(
            lambda: cash.transfer_from(a.outsider, a.alice.address, a.gym.address, 1),
            "WalletFrozen",
            a.outsider.address,
        )

    def test_every_deployed_contract_that_pulls_is_a_registered_wallet(
        self, fresh: None, cash: CashClient, manifest: Manifest
    ) -> None:
        pullers = ("PrepaidEscrow", "Disbursement", "CollectiveFund", "VoucherProgrammes")
        pullers += ("HardWalletSettlement", "QuickPay", "DevicePayments")
        for name in pullers:
            address = manifest.address(name)
            assert cash.registry.functions.isRegistered(address).call(), name
            assert not cash.registry.functions.isFrozen(address).call(), name


class TestPayFor:
    """``payFor``: the one policy for money a family contract moves on a holder's behalf."""

    @staticmethod
    def _family(a: Actors, cash: CashClient, amount: int = 10_000_00) -> None:
        cash.register(a.operator, a.outsider.address, Kind.INSTITUTION, 1, 0, identity("family"))
        cash.grant_cap_exemption(a.admin, a.outsider.address)
        cash.mint(a.operator, a.outsider.address, amount)

    def test_emits_paid_for_naming_the_owner(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        self._family(a, cash)
        result = cash.pay_for(a.outsider, a.alice.address, a.bob.address, 300)
        assert result.named("PaidFor")[0].args == {
            "family": a.outsider.address,
            "owner": a.alice.address,
            "to": a.bob.address,
            "amount": 300,
        }
        assert cash.balance_of(a.bob.address) == 300

    def test_reverts_when_the_caller_is_not_a_family(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 500)
        assert_reverts(
            lambda: cash.pay_for(a.alice, a.alice.address, a.bob.address, 100), "FamilyOnly", a.alice.address
        )

    def test_reverts_when_the_owner_is_frozen(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        self._family(a, cash)
        cash.freeze(a.regulator, a.alice.address)
        assert_reverts(
            lambda: cash.pay_for(a.outsider, a.alice.address, a.bob.address, 100),
            "WalletFrozen",
            a.alice.address,
        )

    def test_reverts_when_the_payee_is_frozen(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        self._family(a, cash)
        cash.freeze(a.regulator, a.bob.address)
        assert_reverts(
            lambda: cash.pay_for(a.outsider, a.alice.address, a.bob.address, 100),
            "WalletFrozen",
            a.bob.address,
        )

    def test_reverts_when_the_owner_is_not_registered(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        self._family(a, cash)
        assert_reverts(
            lambda: cash.pay_for(a.outsider, a.admin.address, a.bob.address, 100),
            "WalletNotRegistered",
            a.admin.address,
        )

    def test_reverts_when_a_merchant_is_required_and_the_payee_is_a_person(
        self, registered: Actors, cash: CashClient
    ) -> None:
        a = registered
        self._family(a, cash)
        assert_reverts(
            lambda: cash.pay_for(a.outsider, a.alice.address, a.bob.address, 100, PAY_TO_MERCHANT),
            "PayeeNotMerchant",
            a.bob.address,
        )

    def test_charges_the_owners_payment_cap_when_asked(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        self._family(a, cash)
        tier = cash.wallet(a.alice.address).tier
        cap = cash.tier_limits(tier).payment_cap
        assert_reverts(
            lambda: cash.pay_for(a.outsider, a.alice.address, a.bob.address, cap + 1, PAY_CHARGES_OWNER),
            "TierPaymentCapExceeded",
            a.alice.address,
            cap,
            cap + 1,
        )

    def test_reverts_while_paused(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        self._family(a, cash)
        cash.pause(a.regulator)
        assert_reverts(lambda: cash.pay_for(a.outsider, a.alice.address, a.bob.address, 100), "EnforcedPause")


class TestRedeem:
    def test_issuer_redeems_what_the_holder_approved(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 500)
        cash.approve(a.alice, a.operator.address, 200)
        result = cash.redeem(a.operator, a.alice.address, 200)
        assert result.named("Redeemed")[0].args == {
            "from": a.alice.address,
            "amount": 200,
            "issuer": a.operator.address,
        }
        assert cash.balance_of(a.alice.address) == 300
        assert cash.total_supply() == 300
        assert cash.spent_today(a.alice.address) == 0  # a redemption is not a payment

    def test_reverts_without_the_holders_approval(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 500)
        assert_reverts(
            lambda: cash.redeem(a.operator, a.alice.address, 1),
            "ERC20InsufficientAllowance",
            a.operator.address,
            0,
            1,
        )

    def test_reverts_when_holder_frozen(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 500)
        cash.approve(a.alice, a.operator.address, 500)
        cash.freeze(a.regulator, a.alice.address)
        assert_reverts(lambda: cash.redeem(a.operator, a.alice.address, 1), "WalletFrozen", a.alice.address)

    def test_reverts_when_caller_is_not_issuer(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 500)
        cash.approve(a.alice, a.bob.address, 500)
        assert_reverts(
            lambda: cash.redeem(a.bob, a.alice.address, 1),
            "AccessControlUnauthorizedAccount",
            a.bob.address,
            cash_role(cash, "ISSUER_ROLE"),
        )


class TestPause:
    def test_pause_stops_every_movement_until_unpaused(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.mint(a.operator, a.alice.address, 500)
        assert cash.pause(a.regulator).named("Paused")
        assert_reverts(lambda: cash.transfer(a.alice, a.bob.address, 1), "EnforcedPause")
        assert_reverts(lambda: cash.mint(a.operator, a.alice.address, 1), "EnforcedPause")
        assert cash.unpause(a.regulator).named("Unpaused")
        cash.transfer(a.alice, a.bob.address, 1)
        assert cash.balance_of(a.bob.address) == 1

    def test_reverts_when_caller_is_not_regulator(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        for caller in (a.operator, a.admin):
            assert_reverts(
                lambda c=caller: cash.pause(c),
                "AccessControlUnauthorizedAccount",
                caller.address,
                cash_role(cash, "REGULATOR_ROLE"),
            )
