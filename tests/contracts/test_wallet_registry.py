"""WalletRegistry: registration, tiers, freezing, tier limits, roles."""

from __future__ import annotations

from web3 import Web3

from chain.clients.token import UNLIMITED, CashClient, Kind, TierLimits
from tests.conftest import Actors, identity
from tests.helpers import assert_reverts

ZERO = "0x0000000000000000000000000000000000000000"


def role(cash: CashClient, name: str) -> bytes:
    return getattr(cash.registry.functions, name)().call()


class TestDefaults:
    def test_tiers_carry_the_public_ecny_wallet_class_limits(self, fresh: None, cash: CashClient) -> None:
        assert cash.tier_limits(1) == TierLimits(UNLIMITED, UNLIMITED, UNLIMITED)
        assert cash.tier_limits(2) == TierLimits(500_000_00, 50_000_00, 100_000_00)
        assert cash.tier_limits(3) == TierLimits(20_000_00, 5_000_00, 10_000_00)
        assert cash.tier_limits(4) == TierLimits(10_000_00, 2_000_00, 5_000_00)

    def test_reverts_when_tier_outside_one_to_four(self, fresh: None, cash: CashClient) -> None:
        assert_reverts(lambda: cash.tier_limits(0), "InvalidTier", 0)
        assert_reverts(lambda: cash.tier_limits(5), "InvalidTier", 5)


class TestRegister:
    def test_records_kind_tier_category_and_identity_hash(
        self, fresh: None, cash: CashClient, actors: Actors
    ) -> None:
        result = cash.register(actors.operator, actors.gym.address, Kind.MERCHANT, 2, 7997, identity("gym"))
        (event,) = result.named("WalletRegistered")
        assert event.args == {
            "wallet": actors.gym.address,
            "kind": int(Kind.MERCHANT),
            "tier": 2,
            "category": 7997,
            "identityHash": identity("gym"),
        }
        info = cash.wallet(actors.gym.address)
        assert (info.kind, info.tier, info.category, info.frozen) == (Kind.MERCHANT, 2, 7997, False)
        assert info.identity_hash == identity("gym")

    def test_reverts_when_already_registered(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        assert_reverts(
            lambda: cash.register(a.operator, a.alice.address, Kind.PERSONAL, 3, 0, identity("x")),
            "WalletAlreadyRegistered",
            a.alice.address,
        )

    def test_reverts_when_tier_invalid(self, fresh: None, cash: CashClient, actors: Actors) -> None:
        for tier in (0, 5):
            assert_reverts(
                lambda t=tier: cash.register(
                    actors.operator, actors.alice.address, Kind.PERSONAL, t, 0, identity("a")
                ),
                "InvalidTier",
                tier,
            )

    def test_reverts_when_kind_none(self, fresh: None, cash: CashClient, actors: Actors) -> None:
        assert_reverts(
            lambda: cash.register(actors.operator, actors.alice.address, Kind.NONE, 3, 0, identity("a")),
            "InvalidKind",
            0,
        )

    def test_reverts_when_merchant_has_no_category(
        self, fresh: None, cash: CashClient, actors: Actors
    ) -> None:
        assert_reverts(
            lambda: cash.register(actors.operator, actors.gym.address, Kind.MERCHANT, 2, 0, identity("g")),
            "InvalidCategory",
            int(Kind.MERCHANT),
            0,
        )

    def test_reverts_when_person_has_a_category(self, fresh: None, cash: CashClient, actors: Actors) -> None:
        assert_reverts(
            lambda: cash.register(
                actors.operator, actors.alice.address, Kind.PERSONAL, 3, 5812, identity("a")
            ),
            "InvalidCategory",
            int(Kind.PERSONAL),
            5812,
        )

    def test_reverts_when_identity_hash_zero(self, fresh: None, cash: CashClient, actors: Actors) -> None:
        assert_reverts(
            lambda: cash.register(actors.operator, actors.alice.address, Kind.PERSONAL, 3, 0, b"\0" * 32),
            "ZeroIdentityHash",
        )

    def test_reverts_when_wallet_is_zero_address(self, fresh: None, cash: CashClient, actors: Actors) -> None:
        assert_reverts(
            lambda: cash.register(actors.operator, ZERO, Kind.PERSONAL, 3, 0, identity("a")),
            "WalletZeroAddress",
        )

    def test_reverts_when_caller_is_not_registrar(
        self, fresh: None, cash: CashClient, actors: Actors
    ) -> None:
        for caller in (actors.regulator, actors.alice, actors.admin):
            assert_reverts(
                lambda c=caller: cash.register(c, actors.bob.address, Kind.PERSONAL, 3, 0, identity("b")),
                "AccessControlUnauthorizedAccount",
                caller.address,
                role(cash, "REGISTRAR_ROLE"),
            )


class TestSetTier:
    def test_moves_wallet_and_emits(self, registered: Actors, cash: CashClient) -> None:
        result = cash.set_tier(registered.operator, registered.bob.address, 2)
        assert result.named("WalletTierChanged")[0].args == {
            "wallet": registered.bob.address,
            "previousTier": 4,
            "newTier": 2,
        }
        assert cash.wallet(registered.bob.address).limits == cash.tier_limits(2)

    def test_reverts_when_wallet_not_registered(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        assert_reverts(
            lambda: cash.set_tier(a.operator, a.outsider.address, 2),
            "WalletNotRegistered",
            a.outsider.address,
        )

    def test_reverts_when_caller_is_not_registrar(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        assert_reverts(
            lambda: cash.set_tier(a.alice, a.alice.address, 1),
            "AccessControlUnauthorizedAccount",
            a.alice.address,
            role(cash, "REGISTRAR_ROLE"),
        )


class TestFreeze:
    def test_regulator_freezes_and_unfreezes_with_events(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        frozen = cash.freeze(a.regulator, a.alice.address).named("Frozen")[0]
        assert frozen.args == {"wallet": a.alice.address, "regulator": a.regulator.address}
        assert cash.wallet(a.alice.address).frozen
        unfrozen = cash.unfreeze(a.regulator, a.alice.address).named("Unfrozen")[0]
        assert unfrozen.args == {"wallet": a.alice.address, "regulator": a.regulator.address}
        assert not cash.wallet(a.alice.address).frozen

    def test_reverts_when_already_frozen(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        cash.freeze(a.regulator, a.alice.address)
        assert_reverts(lambda: cash.freeze(a.regulator, a.alice.address), "WalletFrozen", a.alice.address)

    def test_reverts_when_unfreezing_a_wallet_not_frozen(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        assert_reverts(
            lambda: cash.unfreeze(a.regulator, a.alice.address), "WalletNotFrozen", a.alice.address
        )

    def test_reverts_when_wallet_not_registered(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        assert_reverts(
            lambda: cash.freeze(a.regulator, a.outsider.address), "WalletNotRegistered", a.outsider.address
        )

    def test_reverts_when_caller_is_not_regulator(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        for caller in (a.operator, a.admin, a.alice):
            assert_reverts(
                lambda c=caller: cash.freeze(c, a.bob.address),
                "AccessControlUnauthorizedAccount",
                caller.address,
                role(cash, "REGULATOR_ROLE"),
            )
        cash.freeze(a.regulator, a.bob.address)
        assert_reverts(
            lambda: cash.unfreeze(a.operator, a.bob.address),
            "AccessControlUnauthorizedAccount",
            a.operator.address,
            role(cash, "REGULATOR_ROLE"),
        )


class TestSetTierLimits:
    def test_admin_changes_limits_with_event(self, fresh: None, cash: CashClient, actors: Actors) -> None:
        new = TierLimits(30_000_00, 6_000_00, 12_000_00)
        event = cash.set_tier_limits(actors.admin, 3, new).named("TierLimitsChanged")[0]
        assert event.args == {
            "tier": 3,
            "balanceCap": 30_000_00,
            "paymentCap": 6_000_00,
            "dailyCap": 12_000_00,
        }
        assert cash.tier_limits(3) == new

    def test_reverts_when_payment_cap_above_daily_cap(
        self, fresh: None, cash: CashClient, actors: Actors
    ) -> None:
        assert_reverts(
            lambda: cash.set_tier_limits(actors.admin, 3, TierLimits(100, 50, 10)),
            "InvalidTierLimits",
            3,
            50,
            10,
        )

    def test_limits_fill_the_packed_range_and_no_further(
        self, fresh: None, cash: CashClient, actors: Actors
    ) -> None:
        # The three limits of a tier share one slot (80 bits each; all ones = no limit).
        top = 2**80 - 2
        cash.set_tier_limits(actors.admin, 3, TierLimits(top, top - 1, top))
        assert cash.tier_limits(3) == TierLimits(top, top - 1, top)
        cash.set_tier_limits(actors.admin, 3, TierLimits(UNLIMITED, 7, UNLIMITED))
        assert cash.tier_limits(3) == TierLimits(UNLIMITED, 7, UNLIMITED)
        for limits, bad in (
            (TierLimits(2**80 - 1, 1, 1), 2**80 - 1),
            (TierLimits(1, 1, 2**200), 2**200),
            (TierLimits(1, UNLIMITED - 1, UNLIMITED), UNLIMITED - 1),
        ):
            assert_reverts(
                lambda lim=limits: cash.set_tier_limits(actors.admin, 3, lim), "TierLimitOutOfRange", 3, bad
            )
        assert cash.tier_limits(3) == TierLimits(UNLIMITED, 7, UNLIMITED)

    def test_reverts_when_caller_is_not_admin(self, fresh: None, cash: CashClient, actors: Actors) -> None:
        for caller in (actors.operator, actors.regulator):
            assert_reverts(
                lambda c=caller: cash.set_tier_limits(c, 3, TierLimits(1, 1, 1)),
                "AccessControlUnauthorizedAccount",
                caller.address,
                b"\0" * 32,
            )


def test_cap_exemption_is_an_explicit_role_with_an_event(
    registered: Actors, cash: CashClient, w3: Web3
) -> None:
    a = registered
    assert not cash.wallet(a.carol.address).cap_exempt
    granted = cash.grant_cap_exemption(a.admin, a.carol.address).named("RoleGranted")[0]
    assert granted.args["account"] == a.carol.address
    assert granted.args["role"] == role(cash, "CAP_EXEMPT_ROLE")
    assert cash.wallet(a.carol.address).cap_exempt


def test_cap_exemption_follows_the_role_both_ways_and_survives_registration(
    fresh: None, cash: CashClient, actors: Actors
) -> None:
    """The wallet record's copy of CAP_EXEMPT_ROLE (read by every movement) never drifts from it."""
    exempt = role(cash, "CAP_EXEMPT_ROLE")
    cash.grant_cap_exemption(actors.admin, actors.carol.address)  # before carol is registered
    cash.register(actors.operator, actors.carol.address, Kind.PERSONAL, 2, 0, identity("carol"))
    assert cash.wallet(actors.carol.address).cap_exempt
    cash.tx.transact(actors.admin, cash.registry.functions.revokeRole(exempt, actors.carol.address))
    assert not cash.wallet(actors.carol.address).cap_exempt
    cash.grant_cap_exemption(actors.admin, actors.carol.address)
    assert cash.wallet(actors.carol.address).cap_exempt
    cash.tx.transact(actors.carol, cash.registry.functions.renounceRole(exempt, actors.carol.address))
    assert not cash.wallet(actors.carol.address).cap_exempt


def test_movement_policies_pack_what_policy_of_says(registered: Actors, cash: CashClient) -> None:
    """The token's packed read agrees with the readable one, end by end, zero address included."""
    a = registered
    cash.freeze(a.regulator, a.bob.address)
    cash.grant_cap_exemption(a.admin, a.gym.address)
    mask = 2**80 - 1

    def unpack(word: int) -> tuple[bool, bool, bool, tuple[int, int, int]]:
        limits = tuple(UNLIMITED if (v := (word >> s) & mask) == mask else v for s in (0, 80, 160))
        return bool(word >> 240 & 1), bool(word >> 241 & 1), bool(word >> 242 & 1), limits  # type: ignore[return-value]

    for wallet in (a.alice, a.bob, a.carol, a.gym, a.outsider):
        sender, receiver = cash.registry.functions.movementPolicies(wallet.address, ZERO).call()
        assert receiver == 0
        registered_, frozen, exempt, limits = cash.registry.functions.policyOf(wallet.address).call()
        expected = (registered_, frozen, exempt, tuple(limits) if registered_ else (0, 0, 0))
        assert unpack(sender) == expected, wallet.address
        assert cash.registry.functions.movementPolicies(ZERO, wallet.address).call() == [0, sender]
