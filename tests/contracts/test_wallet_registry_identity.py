"""WalletRegistry, one person one identity: at most ``personalWalletLimit`` personal wallets per
identity and tier (default 1), merchant and institution wallets carry their owner's identity and
never count, ``personalWalletOf`` resolves an identity to exactly one personal wallet or names why
not; ``register`` and every ``registerBatch`` row obey the same rules."""

from __future__ import annotations

from eth_account import Account
from eth_utils import function_signature_to_4byte_selector

from chain.clients.token import CashClient, Kind, Registration
from tests.conftest import Actors, identity
from tests.helpers import assert_reverts


def new() -> str:
    return Account.create().address


class TestOnePersonalWalletPerTier:
    def test_a_second_personal_wallet_of_one_identity_in_one_tier_is_refused(
        self, registered: Actors, cash: CashClient
    ) -> None:
        a = registered
        assert_reverts(
            lambda: cash.register(a.operator, new(), Kind.PERSONAL, 3, 0, identity("alice")),
            "IdentityWalletLimit",
            identity("alice"),
            3,
            1,
        )
        assert cash.personal_wallet_count(identity("alice"), 3) == 1

    def test_another_tier_is_another_wallet_class(self, registered: Actors, cash: CashClient) -> None:
        a, second = registered, new()
        cash.register(a.operator, second, Kind.PERSONAL, 2, 0, identity("alice"))
        assert cash.personal_wallet_of(identity("alice"), 2) == second
        assert cash.personal_wallet_of(identity("alice"), 3) == a.alice.address

    def test_merchant_and_institution_wallets_of_a_person_never_count(
        self, registered: Actors, cash: CashClient
    ) -> None:
        a, shop, company = registered, new(), new()
        cash.register(a.operator, shop, Kind.MERCHANT, 3, 5812, identity("alice"))
        cash.register(a.operator, company, Kind.INSTITUTION, 3, 0, identity("alice"))
        assert cash.identity_of(shop) == cash.identity_of(company) == identity("alice")  # the owner
        assert cash.personal_wallet_count(identity("alice"), 3) == 1
        # the row addressed by identity resolves to the person's wallet, never to the merchant's
        assert cash.personal_wallet_of(identity("alice")) == a.alice.address

    def test_moving_tier_obeys_the_limit_and_frees_the_old_tier(
        self, registered: Actors, cash: CashClient
    ) -> None:
        a, second = registered, new()
        cash.register(a.operator, second, Kind.PERSONAL, 2, 0, identity("alice"))
        assert_reverts(
            lambda: cash.set_tier(a.operator, second, 3), "IdentityWalletLimit", identity("alice"), 3, 1
        )
        cash.set_tier(a.operator, a.alice.address, 1)
        cash.set_tier(a.operator, second, 3)  # tier 3 is free again
        assert cash.personal_wallet_of(identity("alice"), 3) == second
        assert cash.personal_wallet_of(identity("alice"), 1) == a.alice.address
        assert cash.personal_wallet_count(identity("alice"), 2) == 0
        cash.set_tier(a.operator, second, 3)  # the same tier: no change, no refusal

    def test_a_merchant_changes_tier_whatever_its_owner_holds(
        self, registered: Actors, cash: CashClient
    ) -> None:
        a, shop = registered, new()
        cash.register(a.operator, shop, Kind.MERCHANT, 2, 5812, identity("alice"))
        cash.set_tier(a.operator, shop, 3)
        assert cash.wallet(shop).tier == 3


class TestResolve:
    def test_no_personal_wallet_is_named(self, registered: Actors, cash: CashClient) -> None:
        assert_reverts(
            lambda: cash.personal_wallet_of(identity("nobody")), "NoPersonalWallet", identity("nobody"), 0
        )
        assert_reverts(
            lambda: cash.personal_wallet_of(identity("alice"), 2), "NoPersonalWallet", identity("alice"), 2
        )

    def test_a_person_with_wallets_in_two_tiers_is_ambiguous_across_tiers(
        self, registered: Actors, cash: CashClient
    ) -> None:
        a = registered
        cash.register(a.operator, new(), Kind.PERSONAL, 4, 0, identity("alice"))
        assert_reverts(
            lambda: cash.personal_wallet_of(identity("alice")),
            "AmbiguousPersonalWallet",
            identity("alice"),
            0,
            2,
        )
        assert cash.personal_wallet_of(identity("alice"), 3) == a.alice.address

    def test_a_tier_above_four_is_invalid(self, registered: Actors, cash: CashClient) -> None:
        assert_reverts(lambda: cash.personal_wallet_of(identity("alice"), 5), "InvalidTier", 5)


class TestLimit:
    def test_admin_raises_the_limit_with_an_event_and_resolution_becomes_ambiguous(
        self, registered: Actors, cash: CashClient
    ) -> None:
        a, second = registered, new()
        assert cash.personal_wallet_limit() == 1
        event = cash.tx.transact(a.admin, cash.set_personal_wallet_limit_call(2)).named(
            "PersonalWalletLimitChanged"
        )[0]
        assert event.args == {"previousLimit": 1, "newLimit": 2}
        cash.register(a.operator, second, Kind.PERSONAL, 3, 0, identity("alice"))
        assert_reverts(
            lambda: cash.register(a.operator, new(), Kind.PERSONAL, 3, 0, identity("alice")),
            "IdentityWalletLimit",
            identity("alice"),
            3,
            2,
        )
        assert_reverts(
            lambda: cash.personal_wallet_of(identity("alice"), 3),
            "AmbiguousPersonalWallet",
            identity("alice"),
            3,
            2,
        )
        # lowered again: the two stay, a third is refused at the new limit
        cash.tx.transact(a.admin, cash.set_personal_wallet_limit_call(1))
        assert cash.personal_wallet_count(identity("alice"), 3) == 2
        assert_reverts(
            lambda: cash.register(a.operator, new(), Kind.PERSONAL, 3, 0, identity("alice")),
            "IdentityWalletLimit",
            identity("alice"),
            3,
            1,
        )

    def test_a_limit_outside_one_to_255_is_refused(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        for limit in (0, 256):
            assert_reverts(
                lambda n=limit: cash.tx.transact(a.admin, cash.set_personal_wallet_limit_call(n)),
                "InvalidPersonalWalletLimit",
                limit,
            )

    def test_only_the_admin_sets_the_limit(self, registered: Actors, cash: CashClient) -> None:
        a = registered
        for caller in (a.operator, a.regulator):
            assert_reverts(
                lambda c=caller: cash.tx.transact(c, cash.set_personal_wallet_limit_call(3)),
                "AccessControlUnauthorizedAccount",
                caller.address,
                b"\0" * 32,
            )


class TestBatchSharesTheRules:
    def test_two_rows_of_one_identity_in_one_tier_refuse_the_second_row(
        self, fresh: None, cash: CashClient, actors: Actors
    ) -> None:
        first, second = new(), new()
        rows = [
            Registration(first, Kind.PERSONAL, 3, 0, identity("dan")),
            Registration(new(), Kind.MERCHANT, 3, 5812, identity("dan")),  # owned by dan: not counted
            Registration(second, Kind.PERSONAL, 3, 0, identity("dan")),
        ]
        assert_reverts(
            lambda: cash.register_batch(actors.operator, rows),
            "WalletBatchRowRefused",
            2,
            second,
            function_signature_to_4byte_selector("IdentityWalletLimit(bytes32,uint8,uint256)"),
        )
        assert not cash.wallet(first).registered  # all or nothing

    def test_a_row_against_an_existing_wallet_of_the_identity_is_refused(
        self, registered: Actors, cash: CashClient
    ) -> None:
        a, extra = registered, new()
        rows = [
            Registration(new(), Kind.PERSONAL, 2, 0, identity("x")),
            Registration(extra, Kind.PERSONAL, 4, 0, identity("bob")),
        ]
        assert_reverts(
            lambda: cash.register_batch(a.operator, rows),
            "WalletBatchRowRefused",
            1,
            extra,
            function_signature_to_4byte_selector("IdentityWalletLimit(bytes32,uint8,uint256)"),
        )

    def test_batch_rows_count_like_single_registrations(
        self, fresh: None, cash: CashClient, actors: Actors
    ) -> None:
        rows = [Registration(new(), Kind.PERSONAL, t, 0, identity("eve")) for t in (1, 2, 3, 4)]
        cash.register_batch(actors.operator, rows)
        for r in rows:
            assert cash.personal_wallet_of(identity("eve"), r.tier) == r.wallet
