"""WalletRegistry.registerBatch: many wallets in one transaction, each as ``register`` would, all
or nothing with the refused row's index."""

from __future__ import annotations

from eth_account import Account
from eth_utils import function_signature_to_4byte_selector
from web3 import Web3

from chain.clients.token import MAX_REGISTRATIONS, CashClient, Kind, Registration
from tests.conftest import Actors, identity
from tests.helpers import assert_reverts

ZERO = "0x0000000000000000000000000000000000000000"


def selector(signature: str) -> bytes:
    return function_signature_to_4byte_selector(signature)


def people(n: int) -> list[Registration]:
    return [
        Registration(Account.create().address, Kind.PERSONAL, 2 + i % 3, 0, identity(f"p{i}"))
        for i in range(n)
    ]


class TestRegisterBatch:
    def test_registers_every_row_with_one_event_each_as_register_does(
        self, fresh: None, cash: CashClient, actors: Actors
    ) -> None:
        rows = [*people(3), Registration(actors.gym.address, Kind.MERCHANT, 2, 7997, identity("gym"))]
        result = cash.register_batch(actors.operator, rows)
        events = result.named("WalletRegistered")
        assert [e.args for e in events] == [
            {
                "wallet": r.wallet,
                "kind": int(r.kind),
                "tier": r.tier,
                "category": r.category,
                "identityHash": r.identity_hash,
            }
            for r in rows
        ]
        for r in rows:
            info = cash.wallet(r.wallet)
            assert (info.kind, info.tier, info.category, info.frozen) == (r.kind, r.tier, r.category, False)
            assert info.identity_hash == r.identity_hash

    def test_a_full_batch_registers_and_costs_less_than_single_registrations(
        self, fresh: None, cash: CashClient, actors: Actors
    ) -> None:
        rows = people(MAX_REGISTRATIONS)
        batch = cash.register_batch(actors.operator, rows)
        assert len(batch.named("WalletRegistered")) == MAX_REGISTRATIONS
        single = cash.register(actors.operator, Account.create().address, Kind.PERSONAL, 2, 0, identity("s"))
        assert batch.gas_used / MAX_REGISTRATIONS < single.gas_used

    def test_reverts_whole_with_the_index_of_an_already_registered_wallet(
        self, registered: Actors, cash: CashClient
    ) -> None:
        rows = people(2)
        rows.insert(1, Registration(registered.alice.address, Kind.PERSONAL, 3, 0, identity("x")))
        assert_reverts(
            lambda: cash.register_batch(registered.operator, rows),
            "WalletBatchRowRefused",
            1,
            registered.alice.address,
            selector("WalletAlreadyRegistered(address)"),
        )
        assert not cash.wallet(rows[0].wallet).registered  # all or nothing

    def test_reverts_when_a_wallet_is_repeated_within_the_batch(
        self, fresh: None, cash: CashClient, actors: Actors
    ) -> None:
        rows = people(2)
        rows.append(Registration(rows[0].wallet, Kind.PERSONAL, 3, 0, identity("again")))
        assert_reverts(
            lambda: cash.register_batch(actors.operator, rows),
            "WalletBatchRowRefused",
            2,
            rows[0].wallet,
            selector("WalletAlreadyRegistered(address)"),
        )

    def test_reverts_with_the_error_register_raises_for_each_kind_of_bad_row(
        self, fresh: None, cash: CashClient, actors: Actors
    ) -> None:
        a = Account.create().address
        cases = [
            (Registration(ZERO, Kind.PERSONAL, 2, 0, identity("z")), "WalletZeroAddress()"),
            (Registration(a, Kind.NONE, 2, 0, identity("k")), "InvalidKind(uint8)"),
            (Registration(a, Kind.PERSONAL, 0, 0, identity("t")), "InvalidTier(uint8)"),
            (Registration(a, Kind.PERSONAL, 5, 0, identity("t")), "InvalidTier(uint8)"),
            (Registration(a, Kind.MERCHANT, 2, 0, identity("c")), "InvalidCategory(uint8,uint16)"),
            (Registration(a, Kind.PERSONAL, 2, 7997, identity("c")), "InvalidCategory(uint8,uint16)"),
            (Registration(a, Kind.PERSONAL, 2, 0, b"\0" * 32), "ZeroIdentityHash()"),
        ]
        for row, error in cases:
            assert_reverts(
                lambda r=row: cash.register_batch(actors.operator, [*people(1), r]),
                "WalletBatchRowRefused",
                1,
                row.wallet,
                selector(error),
            )

    def test_reverts_when_empty_or_too_large(self, fresh: None, cash: CashClient, actors: Actors) -> None:
        assert_reverts(
            lambda: cash.register_batch(actors.operator, []), "WalletBatchSize", 0, MAX_REGISTRATIONS
        )
        too_many = people(MAX_REGISTRATIONS + 1)
        assert_reverts(
            lambda: cash.register_batch(actors.operator, too_many),
            "WalletBatchSize",
            MAX_REGISTRATIONS + 1,
            MAX_REGISTRATIONS,
        )

    def test_reverts_for_a_caller_without_the_registrar_role(
        self, fresh: None, cash: CashClient, actors: Actors
    ) -> None:
        role = cash.registry.functions.REGISTRAR_ROLE().call()
        assert_reverts(
            lambda: cash.register_batch(actors.alice, people(1)),
            "AccessControlUnauthorizedAccount",
            actors.alice.address,
            role,
        )

    def test_the_registry_reports_its_batch_limit(self, fresh: None, cash: CashClient) -> None:
        assert cash.registry.functions.MAX_REGISTRATIONS().call() == MAX_REGISTRATIONS
        assert Web3.is_checksum_address(people(1)[0].wallet)
