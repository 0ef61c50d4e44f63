"""OperatorInstitutions: the two tiers. The central bank allocates and withdraws reserves; each
institution issues within its reserve to the wallets it serves and redeems from them; the token's
supply is the sum of the institutions' outstanding issuance."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain.accounts import INSTITUTION_DEV_ACCOUNTS, dev_account
from chain.clients.tiers import InstitutionsClient
from chain.clients.token import CashClient, Kind
from chain.manifest import Manifest
from tests.conftest import Actors, identity
from tests.helpers import assert_reverts

FIRST_RESERVE = 2**128 - 1
BANK_B = dev_account(INSTITUTION_DEV_ACCOUNTS[0])


@pytest.fixture(scope="session")
def book(w3: Web3, manifest: Manifest, cash: CashClient) -> InstitutionsClient:
    return InstitutionsClient(w3, manifest, cash.tx)


@pytest.fixture
def two(registered: Actors, book: InstitutionsClient, cash: CashClient) -> Actors:
    """Institution #2 (BANK_B) with 1,000.00 yuan of reserve, serving dave (tier 3) and the
    merchant shop; alice, bob, carol and gym are institution #1's (the operator's)."""
    book.add_institution(registered.regulator, BANK_B.address, b"abc-suzhou".ljust(32, b"\0"))
    book.allocate(registered.regulator, 2, 1_000_00)
    cash.tx.transact(
        registered.admin, cash.cash.functions.grantRole(_role(cash, "ISSUER_ROLE"), BANK_B.address)
    )
    book.register(BANK_B, DAVE.address, Kind.PERSONAL, 3, 0, identity("dave"))
    book.register(BANK_B, SHOP.address, Kind.MERCHANT, 2, 5411, identity("shop"))
    return registered


DAVE = dev_account(8)
SHOP = dev_account(9)


def _role(cash: CashClient, name: str) -> bytes:
    return getattr(cash.cash.functions, name)().call()


def _approve(cash: CashClient, holder: LocalAccount, spender: str, amount: int) -> None:
    cash.tx.transact(holder, cash.cash.functions.approve(spender, amount))


class TestDeployment:
    def test_the_operator_is_institution_one_with_the_first_reserve(
        self, fresh: None, book: InstitutionsClient, actors: Actors, cash: CashClient
    ) -> None:
        first = book.institution(1)
        assert (first.signer, first.reserve, first.outstanding) == (actors.operator.address, FIRST_RESERVE, 0)
        assert book.count() == 1
        assert cash.cash.functions.issuanceBook().call() == book.address

    def test_a_wallet_registered_in_the_registry_directly_is_served_by_institution_one(
        self, registered: Actors, book: InstitutionsClient
    ) -> None:
        assert book.served_by(registered.alice.address) == 1

    def test_the_token_links_its_book_once(self, fresh: None, cash: CashClient, actors: Actors) -> None:
        assert_reverts(
            lambda: cash.tx.transact(
                actors.admin, cash.cash.functions.linkIssuanceBook(actors.outsider.address)
            ),
            "IssuanceBookLink",
            cash.cash.functions.issuanceBook().call(),
        )


class TestCentralBank:
    def test_allocates_and_withdraws_with_events(self, two: Actors, book: InstitutionsClient) -> None:
        r = book.allocate(two.regulator, 2, 500_00)
        assert r.named("ReserveAllocated")[0].args == {
            "institution": 2,
            "amount": 500_00,
            "reserve": 1_500_00,
            "by": two.regulator.address,
        }
        r = book.withdraw(two.regulator, 2, 1_200_00)
        assert r.named("ReserveWithdrawn")[0].args["reserve"] == 300_00
        assert book.institution(2).reserve == 300_00

    def test_only_the_central_bank_allocates_withdraws_and_adds(
        self, two: Actors, book: InstitutionsClient
    ) -> None:
        role = book.book.functions.CENTRAL_BANK_ROLE().call()
        for caller in (two.operator, two.admin, BANK_B):
            assert_reverts(
                lambda c=caller: book.allocate(c, 2, 1),
                "AccessControlUnauthorizedAccount",
                caller.address,
                role,
            )
            assert_reverts(
                lambda c=caller: book.withdraw(c, 2, 1),
                "AccessControlUnauthorizedAccount",
                caller.address,
                role,
            )
            assert_reverts(
                lambda c=caller: book.add_institution(c, two.outsider.address, b"\0" * 32),
                "AccessControlUnauthorizedAccount",
                caller.address,
                role,
            )

    def test_withdrawal_never_goes_below_outstanding(
        self, two: Actors, book: InstitutionsClient, cash: CashClient
    ) -> None:
        cash.mint(BANK_B, DAVE.address, 700_00)
        assert_reverts(
            lambda: book.withdraw(two.regulator, 2, 300_01),
            "ReserveBelowOutstanding",
            2,
            1_000_00,
            700_00,
            300_01,
        )
        book.withdraw(two.regulator, 2, 300_00)
        assert book.institution(2).headroom == 0

    def test_withdrawal_of_more_than_the_reserve_is_refused(
        self, two: Actors, book: InstitutionsClient
    ) -> None:
        assert_reverts(
            lambda: book.withdraw(two.regulator, 2, 1_000_01),
            "ReserveBelowOutstanding",
            2,
            1_000_00,
            0,
            1_000_01,
        )

    def test_unknown_institution_and_bad_amounts(self, two: Actors, book: InstitutionsClient) -> None:
        assert_reverts(lambda: book.allocate(two.regulator, 3, 1), "UnknownInstitution", 3)
        assert_reverts(lambda: book.allocate(two.regulator, 0, 1), "UnknownInstitution", 0)
        assert_reverts(lambda: book.allocate(two.regulator, 2, 0), "InvalidReserveAmount", 0)
        assert_reverts(lambda: book.withdraw(two.regulator, 2, 2**128), "InvalidReserveAmount", 2**128)

    def test_a_key_signs_for_one_institution(self, two: Actors, book: InstitutionsClient) -> None:
        assert_reverts(
            lambda: book.add_institution(two.regulator, BANK_B.address, b"\0" * 32),
            "SignerTaken",
            BANK_B.address,
            2,
        )
        assert_reverts(
            lambda: book.add_institution(two.regulator, two.operator.address, b"\0" * 32),
            "SignerTaken",
            two.operator.address,
            1,
        )
        zero = "0x" + "00" * 20
        assert_reverts(lambda: book.add_institution(two.regulator, zero, b"\0" * 32), "ZeroSigner")


class TestIssuance:
    def test_issues_within_the_reserve_and_books_it(
        self, two: Actors, book: InstitutionsClient, cash: CashClient
    ) -> None:
        r = cash.mint(BANK_B, DAVE.address, 1_000_00)
        assert r.named("InstitutionIssued")[0].args == {
            "institution": 2,
            "to": DAVE.address,
            "amount": 1_000_00,
            "outstanding": 1_000_00,
        }
        b = book.institution(2)
        assert (b.outstanding, b.issued, b.headroom) == (1_000_00, 1_000_00, 0)

    def test_reverts_beyond_the_reserve_with_the_figures(
        self, two: Actors, book: InstitutionsClient, cash: CashClient
    ) -> None:
        cash.mint(BANK_B, DAVE.address, 600_00)
        assert_reverts(
            lambda: cash.mint(BANK_B, SHOP.address, 400_01), "ReserveExceeded", 2, 1_000_00, 600_00, 400_01
        )
        assert cash.balance_of(SHOP.address) == 0

    def test_a_new_allocation_lets_it_issue_more(
        self, two: Actors, book: InstitutionsClient, cash: CashClient
    ) -> None:
        cash.mint(BANK_B, DAVE.address, 1_000_00)
        assert_reverts(
            lambda: cash.mint(BANK_B, DAVE.address, 1), "ReserveExceeded", 2, 1_000_00, 1_000_00, 1
        )
        book.allocate(two.regulator, 2, 1)
        cash.mint(BANK_B, DAVE.address, 1)

    def test_reverts_for_a_wallet_another_institution_serves(self, two: Actors, cash: CashClient) -> None:
        assert_reverts(
            lambda: cash.mint(BANK_B, two.alice.address, 1), "WalletServedElsewhere", two.alice.address, 1, 2
        )
        assert_reverts(
            lambda: cash.mint(two.operator, DAVE.address, 1), "WalletServedElsewhere", DAVE.address, 2, 1
        )

    def test_an_issuer_without_an_institution_is_refused(self, two: Actors, cash: CashClient) -> None:
        cash.tx.transact(
            two.admin, cash.cash.functions.grantRole(_role(cash, "ISSUER_ROLE"), two.outsider.address)
        )
        assert_reverts(
            lambda: cash.mint(two.outsider, two.alice.address, 1), "NotInstitution", two.outsider.address
        )

    def test_only_the_token_reports(self, two: Actors, book: InstitutionsClient) -> None:
        assert_reverts(
            lambda: book.tx.transact(
                two.operator, book.book.functions.recordIssue(two.operator.address, two.alice.address, 1)
            ),
            "CashOnly",
            two.operator.address,
        )
        assert_reverts(
            lambda: book.tx.transact(
                BANK_B, book.book.functions.recordRedeem(BANK_B.address, DAVE.address, 1)
            ),
            "CashOnly",
            BANK_B.address,
        )

    def test_only_an_institution_registers_through_the_book(
        self, two: Actors, book: InstitutionsClient
    ) -> None:
        assert_reverts(
            lambda: book.register(two.outsider, two.outsider.address, Kind.PERSONAL, 3, 0, identity("x")),
            "NotInstitution",
            two.outsider.address,
        )
        # the registry's own rules still apply
        assert_reverts(
            lambda: book.register(BANK_B, DAVE.address, Kind.PERSONAL, 3, 0, identity("dave2")),
            "WalletAlreadyRegistered",
            DAVE.address,
        )


class TestRedemptionAndInteroperability:
    def test_redemption_lowers_outstanding_and_frees_reserve(
        self, two: Actors, book: InstitutionsClient, cash: CashClient
    ) -> None:
        cash.mint(BANK_B, DAVE.address, 1_000_00)
        _approve(cash, DAVE, BANK_B.address, 400_00)
        r = cash.redeem(BANK_B, DAVE.address, 400_00)
        assert r.named("InstitutionRedeemed")[0].args["outstanding"] == 600_00
        cash.mint(BANK_B, DAVE.address, 400_00)  # the freed reserve issues again

    def test_a_merchant_of_b_paid_by_a_customer_of_a_redeems_at_b(
        self, two: Actors, book: InstitutionsClient, cash: CashClient
    ) -> None:
        cash.mint(two.operator, two.alice.address, 300_00)
        cash.tx.transact(two.alice, cash.cash.functions.transfer(SHOP.address, 300_00))
        _approve(cash, SHOP, BANK_B.address, 300_00)
        _approve(cash, SHOP, two.operator.address, 1)
        assert_reverts(
            lambda: cash.redeem(two.operator, SHOP.address, 1), "WalletServedElsewhere", SHOP.address, 2, 1
        )
        cash.redeem(BANK_B, SHOP.address, 300_00)
        a, b = book.institution(1), book.institution(2)
        assert (a.outstanding, b.outstanding) == (300_00, -300_00)
        # B took over that backing: it may issue its reserve plus what it redeemed of A's
        assert b.headroom == 1_300_00
        assert cash.total_supply() == a.outstanding + b.outstanding == 0

    def test_supply_is_the_sum_of_outstanding(
        self, two: Actors, book: InstitutionsClient, cash: CashClient
    ) -> None:
        cash.mint(two.operator, two.alice.address, 123_45)
        cash.mint(BANK_B, DAVE.address, 678_90)
        totals = book.totals()
        assert cash.total_supply() == totals["issued"] - totals["redeemed"] == 802_35
        assert sum(i.outstanding for i in book.institutions()) == cash.total_supply()
        assert book.book.functions.institutionsOverReserve().call() == 0


class TestRecovery:
    def test_a_recovered_wallet_stays_with_its_institution(
        self, two: Actors, book: InstitutionsClient, cash: CashClient
    ) -> None:
        cash.mint(BANK_B, DAVE.address, 100_00)
        new = Account.create()
        proposed = cash.tx.transact(
            two.operator, cash.propose_recovery_call(DAVE.address, new.address, Web3.keccak(text="file 9"))
        )
        rid = int(proposed.named("RecoveryProposed")[0]["id"])
        approved = cash.tx.transact(two.regulator, cash.approve_recovery_call(rid))
        assert approved.named("WalletServed")[0].args == {"wallet": new.address, "institution": 2}
        assert book.served_by(new.address) == 2
        cash.mint(BANK_B, new.address, 1_00)  # institution #2 serves it, and books it
        assert book.institution(2).outstanding == 101_00
        assert_reverts(
            lambda: cash.mint(two.operator, new.address, 1), "WalletServedElsewhere", new.address, 2, 1
        )

    def test_a_recovered_wallet_of_institution_one_stays_with_it(
        self, two: Actors, book: InstitutionsClient, cash: CashClient
    ) -> None:
        new = Account.create()
        proposed = cash.tx.transact(
            two.operator, cash.propose_recovery_call(two.alice.address, new.address, Web3.keccak(text="f"))
        )
        rid = int(proposed.named("RecoveryProposed")[0]["id"])
        approved = cash.tx.transact(two.regulator, cash.approve_recovery_call(rid))
        assert approved.named("WalletServed") == []
        assert book.served_by(new.address) == 1

    def test_only_the_token_reports_a_recovery(self, two: Actors, book: InstitutionsClient) -> None:
        assert_reverts(
            lambda: book.tx.transact(
                BANK_B, book.book.functions.recordRecovery(DAVE.address, two.outsider.address)
            ),
            "CashOnly",
            BANK_B.address,
        )


def test_a_reserve_stays_below_two_to_the_128(two: Actors, book: InstitutionsClient) -> None:
    # institution #1 holds the largest reserve there is already
    assert_reverts(lambda: book.allocate(two.regulator, 1, 1), "InvalidReserveAmount", 1)
    book.allocate(two.regulator, 2, FIRST_RESERVE - 1_000_00)
    assert book.institution(2).reserve == FIRST_RESERVE
    assert_reverts(lambda: book.allocate(two.regulator, 2, 1), "InvalidReserveAmount", 1)
