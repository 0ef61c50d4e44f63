"""VoucherProgrammes: consumption vouchers and union welfare, one contract, two configurations.

Creation and funding, grants (batches, Merkle claims, open enrolment), the spend rule (minimum
bill, fixed discount, plain voucher), every refusal with its exact error, holder-signed spends,
expiry races, clawback (and a refused second clawback) and the report by merchant category.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain import devtools
from chain.accounts import dev_account
from chain.clients.token import CashClient, Kind, bytes32_text
from chain.clients.vouchers import (
    MAX_BATCH,
    MAX_CATEGORIES,
    MCC_DEPARTMENT_STORE,
    MCC_GROCERY,
    MCC_HEALTH,
    MCC_RESTAURANT,
    UNION_WELFARE_CATEGORIES,
    Grant,
    GrantSource,
    Mode,
    Terms,
    VoucherClient,
    merkle_tree,
    programme_name,
)
from tests.conftest import Actors, identity
from tests.helpers import assert_reverts

DAY = 86_400
YUAN = 100
MCC_GYM = 7997  # the `registered` fixture's gym: a category no programme here allows
CONSUMPTION = [MCC_GROCERY, MCC_RESTAURANT, MCC_DEPARTMENT_STORE]


def pending_ts(w3: Web3) -> int:
    """The block.timestamp the next transaction will see."""
    return int(w3.provider.ethereum_tester.get_block_by_number("pending")["timestamp"])


def next_tx_at(w3: Web3, timestamp: int) -> None:
    """Make the next transaction run at exactly ``timestamp`` (in-process chain)."""
    w3.provider.ethereum_tester.time_travel(timestamp)


@dataclass(frozen=True)
class Town:
    """A district office and a trade union (institutions, 1,000,000 yuan each), three residents
    (alice tier 3, bob tier 4, carol tier 2, 1,000 yuan each, who approved the programmes for their
    own share of bills), a supermarket (5411, holds gas: it submits signed spends), a canteen
    (5812), a clinic (8099) and the gym (7997)."""

    office: LocalAccount
    union: LocalAccount
    alice: LocalAccount
    bob: LocalAccount
    carol: LocalAccount
    supermarket: LocalAccount
    canteen: str
    clinic: str
    gym: str
    keeper: LocalAccount
    regulator: LocalAccount
    operator: LocalAccount


@pytest.fixture(scope="module")
def _town_chain(
    w3: Web3, actors: Actors, cash: CashClient, vouchers: VoucherClient
) -> Iterator[tuple[Town, Any]]:
    """Builds the town once for the module (about 20 transactions) and snapshots it."""
    base = devtools.snapshot(w3)
    a, op = actors, actors.operator
    cash.register(op, a.alice.address, Kind.PERSONAL, 3, 0, identity("alice"))
    cash.register(op, a.bob.address, Kind.PERSONAL, 4, 0, identity("bob"))
    cash.register(op, a.carol.address, Kind.PERSONAL, 2, 0, identity("carol"))
    cash.register(op, a.gym.address, Kind.MERCHANT, 2, MCC_GYM, identity("gym"))
    office, union = dev_account(8), dev_account(9)
    for name, inst in (("office", office), ("union", union)):
        cash.register(op, inst.address, Kind.INSTITUTION, 1, 0, identity(name))
        cash.mint(op, inst.address, 1_000_000 * YUAN)
    canteen, clinic = Account.create().address, Account.create().address
    cash.register(op, a.outsider.address, Kind.MERCHANT, 2, MCC_GROCERY, identity("supermarket"))
    cash.register(op, canteen, Kind.MERCHANT, 2, MCC_RESTAURANT, identity("canteen"))
    cash.register(op, clinic, Kind.MERCHANT, 2, MCC_HEALTH, identity("clinic"))
    for person in (a.alice, a.bob, a.carol):
        cash.mint(op, person.address, 1_000 * YUAN)
        vouchers.approve_cash(person, 2**255)
    town = Town(
        office,
        union,
        a.alice,
        a.bob,
        a.carol,
        a.outsider,
        canteen,
        clinic,
        a.gym.address,
        a.admin,
        a.regulator,
        op,
    )
    yield town, devtools.snapshot(w3)
    devtools.revert(w3, base)
    cash.tx.nonces.reset()


@pytest.fixture
def town(w3: Web3, cash: CashClient, _town_chain: tuple[Town, Any]) -> Iterator[Town]:
    """The town as built; every test starts from it and is reverted afterwards."""
    built, snap = _town_chain
    yield built
    devtools.revert(w3, snap)  # eth-tester snapshots are block hashes: reusable
    cash.tx.nonces.reset()


def consumption_terms(w3: Web3, **overrides: int) -> Terms:
    """Consumption red packets: 20 off a bill of at least 100 yuan, 200 yuan per person, 30 days."""
    t = pending_ts(w3)
    values = {
        "starts_at": t,
        "expires_at": t + 30 * DAY,
        "budget": 10_000 * YUAN,
        "per_person_cap": 200 * YUAN,
        "min_bill": 100 * YUAN,
        "discount_per_spend": 20 * YUAN,
        "mode": Mode.GRANT_LIST,
    }
    values.update(overrides)
    return Terms(name=programme_name("2025 spring consumption"), **values)  # type: ignore[arg-type]


def welfare_terms(w3: Web3, **overrides: int) -> Terms:
    """Union welfare: a plain voucher of up to 500 yuan per member, spent in full or in part."""
    t = pending_ts(w3)
    values = {
        "starts_at": t,
        "expires_at": t + 90 * DAY,
        "budget": 5_000 * YUAN,
        "per_person_cap": 500 * YUAN,
        "mode": Mode.GRANT_LIST,
    }
    values.update(overrides)
    return Terms(name=programme_name("union mid-autumn welfare"), **values)  # type: ignore[arg-type]


def consumption(w3: Web3, vouchers: VoucherClient, town: Town, **overrides: int) -> int:
    pid, _ = vouchers.create(town.office, consumption_terms(w3, **overrides), CONSUMPTION)
    return pid


def welfare(w3: Web3, vouchers: VoucherClient, town: Town) -> int:
    pid, _ = vouchers.create(town.union, welfare_terms(w3), UNION_WELFARE_CATEGORIES)
    return pid


def assert_conserved(vouchers: VoucherClient, cash: CashClient, *pids: int) -> None:
    """budget == spent + returned + outstanding + ungranted per programme; the contract holds the rest."""
    held = 0
    for pid in pids:
        t = vouchers.totals(pid)
        assert t.budget == t.spent + t.returned + t.outstanding + t.ungranted, t
        assert t.spent == sum(t.by_category.values()), t
        held += t.outstanding + t.ungranted
    assert cash.balance_of(vouchers.address) == vouchers.total_held() == held


class TestCreate:
    def test_issuer_creates_and_funds_a_programme(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        terms = consumption_terms(w3)
        before = cash.balance_of(town.office.address)
        pid, result = vouchers.create(town.office, terms, CONSUMPTION)
        event = result.named("ProgrammeCreated")[0]
        assert (
            event["issuer"],
            tuple(event["terms"].values()),
            list(event["categories"]),
            event["merchantList"],
        ) == (
            town.office.address,
            terms.abi(),
            CONSUMPTION,
            False,
        )
        p = vouchers.programme(pid)
        assert (p.issuer, p.mode, p.budget, p.per_person_cap, p.min_bill, p.discount_per_spend) == (
            town.office.address,
            Mode.GRANT_LIST,
            10_000 * YUAN,
            200 * YUAN,
            100 * YUAN,
            20 * YUAN,
        )
        assert cash.balance_of(town.office.address) == before - terms.budget
        assert vouchers.categories(pid) == CONSUMPTION
        t = vouchers.totals(pid)
        assert (t.budget, t.granted, t.spent, t.returned, t.outstanding, t.ungranted) == (
            terms.budget,
            0,
            0,
            0,
            0,
            terms.budget,
        )
        assert_conserved(vouchers, cash, pid)

    def test_union_welfare_is_a_second_configuration_of_the_same_contract(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        consumption_id = consumption(w3, vouchers, town)
        welfare_id = welfare(w3, vouchers, town)
        assert vouchers.programme(welfare_id).issuer == town.union.address
        assert vouchers.categories(welfare_id) == [5812, 5411, 8099]
        vouchers.grant(town.union, welfare_id, [Grant(town.alice.address, 500 * YUAN)])
        vouchers.spend(town.alice, welfare_id, town.canteen, 30 * YUAN)  # canteen lunch
        vouchers.spend(town.alice, welfare_id, town.clinic, 120 * YUAN)  # health check
        vouchers.spend(town.alice, welfare_id, town.supermarket.address, 50 * YUAN)
        assert_reverts(
            lambda: vouchers.spend(town.alice, welfare_id, town.gym, 10 * YUAN),
            "VoucherCategoryNotAllowed",
            welfare_id,
            town.gym,
            MCC_GYM,
        )
        assert vouchers.balance(welfare_id, town.alice.address) == 300 * YUAN
        assert vouchers.totals(welfare_id).by_category == {5812: 30 * YUAN, 5411: 50 * YUAN, 8099: 120 * YUAN}
        assert_conserved(vouchers, cash, consumption_id, welfare_id)

    def test_reverts_when_issuer_is_not_an_institution(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        assert_reverts(
            lambda: vouchers.create(town.alice, consumption_terms(w3, budget=100), CONSUMPTION),
            "VoucherInvalidIssuer",
            town.alice.address,
        )

    def test_reverts_on_invalid_terms(self, w3: Web3, town: Town, vouchers: VoucherClient) -> None:
        t = pending_ts(w3)

        def create(**overrides: int):
            terms = consumption_terms(w3, **overrides)
            return lambda: vouchers.create(town.office, terms, CONSUMPTION, approve=False)  # refused first

        assert_reverts(create(mode=Mode.NONE), "VoucherInvalidMode")
        assert_reverts(create(budget=0, per_person_cap=0), "VoucherZeroBudget")
        assert_reverts(create(per_person_cap=0), "VoucherInvalidPersonCap", 0, 10_000 * YUAN)
        assert_reverts(create(budget=100, per_person_cap=101), "VoucherInvalidPersonCap", 101, 100)
        assert_reverts(create(starts_at=t, expires_at=t), "VoucherInvalidPeriod", t, t, t)
        assert_reverts(create(starts_at=0, expires_at=t - 1), "VoucherInvalidPeriod", 0, t - 1, t)
        assert_reverts(
            create(min_bill=10 * YUAN, discount_per_spend=11 * YUAN), "VoucherInvalidRule", 1000, 1100
        )

    def test_reverts_on_bad_category_lists(self, w3: Web3, town: Town, vouchers: VoucherClient) -> None:
        terms = consumption_terms(w3)
        for categories, error, args in (
            ([], "VoucherCategoryCount", (0, MAX_CATEGORIES)),
            (
                list(range(1, MAX_CATEGORIES + 2)),
                "VoucherCategoryCount",
                (MAX_CATEGORIES + 1, MAX_CATEGORIES),
            ),
            ([MCC_GROCERY, 0], "VoucherInvalidCategory", (0,)),
            ([MCC_GROCERY, MCC_HEALTH, MCC_GROCERY], "VoucherInvalidCategory", (MCC_GROCERY,)),
        ):
            assert_reverts(lambda c=categories: vouchers.create(town.office, terms, c), error, *args)

    def test_reverts_when_a_listed_merchant_is_not_a_merchant(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        assert_reverts(
            lambda: vouchers.create(
                town.office,
                consumption_terms(w3),
                CONSUMPTION,
                [town.supermarket.address, town.alice.address],
            ),
            "VoucherNotMerchant",
            town.alice.address,
        )

    def test_reverts_when_the_budget_is_not_approved(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        terms = consumption_terms(w3)
        assert_reverts(
            lambda: vouchers.create(town.office, terms, CONSUMPTION, approve=False),
            "ERC20InsufficientAllowance",
            vouchers.address,
            0,
            terms.budget,
        )


class TestGrant:
    def test_issuer_grants_a_batch_of_voucher_balances(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town)
        result = vouchers.grant(
            town.office, pid, [Grant(town.alice.address, 200 * YUAN), Grant(town.bob.address, 50 * YUAN)]
        )
        granted = [(e["holder"], e["amount"], e["source"]) for e in result.named("Granted")]
        assert granted == [
            (town.alice.address, 200 * YUAN, GrantSource.BATCH),
            (town.bob.address, 50 * YUAN, GrantSource.BATCH),
        ]
        assert vouchers.balance(pid, town.alice.address) == 200 * YUAN
        p = vouchers.programme(pid)
        assert (p.granted, p.holders, p.ungranted) == (250 * YUAN, 2, 9_750 * YUAN)
        assert cash.balance_of(town.alice.address) == 1_000 * YUAN  # voucher balance is not cash
        assert_conserved(vouchers, cash, pid)

    def test_reverts_when_caller_is_not_the_issuer(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town)
        assert_reverts(
            lambda: vouchers.grant(town.union, pid, [Grant(town.alice.address, 1)]),
            "VoucherNotIssuer",
            pid,
            town.union.address,
        )

    def test_reverts_on_an_empty_or_oversized_batch(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town)
        assert_reverts(lambda: vouchers.grant(town.office, pid, []), "VoucherBatchSize", 0, MAX_BATCH)
        rows = [Grant(town.alice.address, 1)] * (MAX_BATCH + 1)
        assert_reverts(
            lambda: vouchers.grant(town.office, pid, rows), "VoucherBatchSize", MAX_BATCH + 1, MAX_BATCH
        )

    def test_reverts_when_a_holder_is_not_a_registered_person(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town)
        stranger = Account.create().address
        for holder in (town.gym, stranger, town.union.address):
            assert_reverts(
                lambda h=holder: vouchers.grant(
                    town.office, pid, [Grant(town.alice.address, 1), Grant(h, 1)]
                ),
                "VoucherNotPersonal",
                holder,
            )
        assert vouchers.programme(pid).granted == 0

    def test_reverts_on_a_zero_amount(self, w3: Web3, town: Town, vouchers: VoucherClient) -> None:
        pid = consumption(w3, vouchers, town)
        assert_reverts(
            lambda: vouchers.grant(
                town.office, pid, [Grant(town.alice.address, 1), Grant(town.bob.address, 0)]
            ),
            "VoucherZeroGrant",
            1,
        )

    def test_grants_beyond_the_budget_revert_as_a_whole(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town, budget=300 * YUAN)
        vouchers.grant(town.office, pid, [Grant(town.alice.address, 200 * YUAN)])
        rows = [Grant(town.bob.address, 60 * YUAN), Grant(town.carol.address, 41 * YUAN)]
        assert_reverts(
            lambda: vouchers.grant(town.office, pid, rows), "VoucherOverBudget", pid, 40 * YUAN, 41 * YUAN
        )
        assert vouchers.balance(pid, town.bob.address) == 0  # the batch's first row was undone too
        vouchers.grant(
            town.office, pid, [Grant(town.bob.address, 60 * YUAN), Grant(town.carol.address, 40 * YUAN)]
        )
        assert vouchers.programme(pid).ungranted == 0
        assert_conserved(vouchers, cash, pid)

    def test_grants_beyond_the_per_person_cap_revert(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town)
        vouchers.grant(town.office, pid, [Grant(town.alice.address, 150 * YUAN)])
        assert_reverts(
            lambda: vouchers.grant(town.office, pid, [Grant(town.alice.address, 50 * YUAN + 1)]),
            "VoucherOverPersonCap",
            pid,
            town.alice.address,
            200 * YUAN,
            200 * YUAN + 1,
        )
        same_batch = [Grant(town.bob.address, 150 * YUAN), Grant(town.bob.address, 51 * YUAN)]
        assert_reverts(
            lambda: vouchers.grant(town.office, pid, same_batch),
            "VoucherOverPersonCap",
            pid,
            town.bob.address,
            200 * YUAN,
            201 * YUAN,
        )
        vouchers.grant(town.office, pid, [Grant(town.alice.address, 50 * YUAN)])  # exactly at the cap
        assert vouchers.balance(pid, town.alice.address) == 200 * YUAN

    def test_reverts_on_an_open_enrolment_programme(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town, mode=Mode.OPEN_ENROLMENT)
        assert_reverts(
            lambda: vouchers.grant(town.office, pid, [Grant(town.alice.address, 1)]),
            "VoucherWrongMode",
            pid,
            Mode.GRANT_LIST,
        )

    def test_reverts_for_an_unknown_programme(self, town: Town, vouchers: VoucherClient) -> None:
        assert_reverts(
            lambda: vouchers.grant(town.office, 99, [Grant(town.alice.address, 1)]),
            "VoucherUnknownProgramme",
            99,
        )
        assert_reverts(lambda: vouchers.programme(99), "VoucherUnknownProgramme", 99)


class TestMerkleGrants:
    def _campaign(self, w3: Web3, town: Town, vouchers: VoucherClient, **overrides: int):
        pid = consumption(w3, vouchers, town, **overrides)
        grants = [
            Grant(town.alice.address, 200 * YUAN),
            Grant(town.bob.address, 100 * YUAN),
            Grant(town.carol.address, 150 * YUAN),
        ]
        tree = merkle_tree(pid, grants)
        vouchers.set_grant_root(town.office, pid, tree.root, len(grants))
        return pid, grants, tree

    def test_a_lottery_winner_claims_a_leaf(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid, grants, tree = self._campaign(w3, town, vouchers)
        result = vouchers.claim(town.keeper, pid, 1, grants[1], tree.proof(1))  # pushed for bob
        assert result.named("Granted")[0]["source"] == GrantSource.CLAIM
        assert vouchers.balance(pid, town.bob.address) == 100 * YUAN
        assert vouchers.is_claimed(pid, 1) and not vouchers.is_claimed(pid, 0)
        assert_conserved(vouchers, cash, pid)

    def test_a_second_claim_of_the_same_leaf_reverts(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        pid, grants, tree = self._campaign(w3, town, vouchers)
        vouchers.claim(town.alice, pid, 0, grants[0], tree.proof(0))
        assert_reverts(
            lambda: vouchers.claim(town.alice, pid, 0, grants[0], tree.proof(0)),
            "VoucherAlreadyClaimed",
            pid,
            0,
        )

    def test_forged_unknown_and_foreign_leaves_revert(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        pid, grants, tree = self._campaign(w3, town, vouchers)
        forged = Grant(town.bob.address, 100 * YUAN + 1)
        assert_reverts(
            lambda: vouchers.claim(town.bob, pid, 1, forged, tree.proof(1)), "VoucherInvalidProof", pid, 1
        )
        assert_reverts(
            lambda: vouchers.claim(town.bob, pid, 3, grants[1], tree.proof(1)), "VoucherUnknownLeaf", pid, 3
        )
        other = consumption(w3, vouchers, town)  # the programme id is inside every leaf
        vouchers.set_grant_root(town.office, other, merkle_tree(other, grants[:1]).root, 3)
        assert_reverts(
            lambda: vouchers.claim(town.bob, other, 1, grants[1], tree.proof(1)),
            "VoucherInvalidProof",
            other,
            1,
        )

    def test_the_root_is_set_once_and_only_by_the_issuer(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        pid, _, tree = self._campaign(w3, town, vouchers)
        assert_reverts(
            lambda: vouchers.set_grant_root(town.office, pid, tree.root, 3), "VoucherRootAlreadySet", pid
        )
        other = consumption(w3, vouchers, town)
        assert_reverts(
            lambda: vouchers.set_grant_root(town.office, other, b"\0" * 32, 3), "VoucherInvalidRoot"
        )
        assert_reverts(
            lambda: vouchers.set_grant_root(town.office, other, tree.root, 0), "VoucherInvalidRoot"
        )
        assert_reverts(
            lambda: vouchers.set_grant_root(town.alice, other, tree.root, 3),
            "VoucherNotIssuer",
            other,
            town.alice.address,
        )

    def test_claims_beyond_the_budget_revert(self, w3: Web3, town: Town, vouchers: VoucherClient) -> None:
        pid, grants, tree = self._campaign(w3, town, vouchers, budget=320 * YUAN)  # the tree is worth 450
        vouchers.claim(town.alice, pid, 0, grants[0], tree.proof(0))
        vouchers.claim(town.bob, pid, 1, grants[1], tree.proof(1))
        assert_reverts(
            lambda: vouchers.claim(town.carol, pid, 2, grants[2], tree.proof(2)),
            "VoucherOverBudget",
            pid,
            20 * YUAN,
            150 * YUAN,
        )
        assert not vouchers.is_claimed(pid, 2)


class TestEnrol:
    def test_a_resident_enrols_and_receives_the_per_person_amount(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town, mode=Mode.OPEN_ENROLMENT)
        result = vouchers.enrol(town.alice, pid)
        assert result.named("Granted")[0]["source"] == GrantSource.ENROLMENT
        assert vouchers.balance(pid, town.alice.address) == 200 * YUAN
        assert_reverts(
            lambda: vouchers.enrol(town.alice, pid), "VoucherAlreadyEnrolled", pid, town.alice.address
        )
        assert_conserved(vouchers, cash, pid)

    def test_enrolment_closes_when_the_budget_cannot_cover_a_full_share(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town, mode=Mode.OPEN_ENROLMENT, budget=500 * YUAN)
        vouchers.enrol(town.alice, pid)
        vouchers.enrol(town.bob, pid)
        assert_reverts(
            lambda: vouchers.enrol(town.carol, pid), "VoucherOverBudget", pid, 100 * YUAN, 200 * YUAN
        )

    def test_only_unfrozen_people_enrol(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town, mode=Mode.OPEN_ENROLMENT)
        assert_reverts(
            lambda: vouchers.enrol(town.supermarket, pid), "VoucherNotPersonal", town.supermarket.address
        )
        cash.freeze(town.regulator, town.carol.address)
        assert_reverts(lambda: vouchers.enrol(town.carol, pid), "VoucherHolderFrozen", town.carol.address)

    def test_reverts_on_a_grant_list_programme(self, w3: Web3, town: Town, vouchers: VoucherClient) -> None:
        pid = consumption(w3, vouchers, town)
        assert_reverts(lambda: vouchers.enrol(town.alice, pid), "VoucherWrongMode", pid, Mode.OPEN_ENROLMENT)


@pytest.fixture
def granted(w3: Web3, town: Town, vouchers: VoucherClient) -> int:
    """The consumption programme with 200 yuan granted to alice and 200 yuan to bob."""
    pid = consumption(w3, vouchers, town)
    vouchers.grant(
        town.office, pid, [Grant(town.alice.address, 200 * YUAN), Grant(town.bob.address, 200 * YUAN)]
    )
    return pid


class TestSpend:
    def test_a_bill_exactly_at_the_threshold_gets_the_discount(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        shop, alice = town.supermarket.address, town.alice
        before = cash.balance_of(alice.address), cash.balance_of(shop)
        assert vouchers.quote(granted, alice.address, 100 * YUAN) == (20 * YUAN, 80 * YUAN)
        event = vouchers.spend(alice, granted, shop, 100 * YUAN).named("Spent")[0]
        assert (event["category"], event["bill"], event["voucher"], event["cash"], event["bySignature"]) == (
            MCC_GROCERY,
            100 * YUAN,
            20 * YUAN,
            80 * YUAN,
            False,
        )
        assert cash.balance_of(alice.address) == before[0] - 80 * YUAN
        assert cash.balance_of(shop) == before[1] + 100 * YUAN  # the merchant gets the whole bill
        assert vouchers.holding(granted, alice.address).spent == 20 * YUAN
        assert_conserved(vouchers, cash, granted)

    def test_a_bill_one_fen_below_the_threshold_is_refused(
        self, town: Town, vouchers: VoucherClient, granted: int
    ) -> None:
        assert_reverts(
            lambda: vouchers.spend(town.alice, granted, town.supermarket.address, 100 * YUAN - 1),
            "VoucherBelowMinimum",
            granted,
            100 * YUAN,
            100 * YUAN - 1,
        )

    def test_a_large_bill_still_gets_only_the_fixed_discount(
        self, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        event = vouchers.spend(town.alice, granted, town.canteen, 350 * YUAN).named("Spent")[0]
        assert (event["voucher"], event["cash"]) == (20 * YUAN, 330 * YUAN)

    def test_the_last_discount_is_limited_to_the_remaining_balance(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town)
        vouchers.grant(town.office, pid, [Grant(town.alice.address, 30 * YUAN)])
        vouchers.spend(town.alice, pid, town.canteen, 100 * YUAN)
        event = vouchers.spend(town.alice, pid, town.canteen, 100 * YUAN).named("Spent")[0]
        assert (event["voucher"], event["cash"]) == (10 * YUAN, 90 * YUAN)
        assert_reverts(
            lambda: vouchers.spend(town.alice, pid, town.canteen, 100 * YUAN),
            "VoucherNoBalance",
            pid,
            town.alice.address,
        )
        assert_conserved(vouchers, cash, pid)

    def test_a_plain_voucher_pays_up_to_its_balance(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid = welfare(w3, vouchers, town)
        vouchers.grant(town.union, pid, [Grant(town.carol.address, 500 * YUAN)])
        before = cash.balance_of(town.carol.address)
        first = vouchers.spend(town.carol, pid, town.canteen, 300 * YUAN).named("Spent")[0]
        second = vouchers.spend(town.carol, pid, town.clinic, 300 * YUAN).named("Spent")[0]
        assert [(e["voucher"], e["cash"]) for e in (first, second)] == [
            (300 * YUAN, 0),
            (200 * YUAN, 100 * YUAN),
        ]
        assert cash.balance_of(town.carol.address) == before - 100 * YUAN
        assert_conserved(vouchers, cash, pid)

    def test_reverts_for_a_disallowed_category(
        self, town: Town, vouchers: VoucherClient, granted: int
    ) -> None:
        assert_reverts(
            lambda: vouchers.spend(town.alice, granted, town.gym, 100 * YUAN),
            "VoucherCategoryNotAllowed",
            granted,
            town.gym,
            MCC_GYM,
        )

    def test_reverts_when_the_payee_is_not_a_merchant(
        self, town: Town, vouchers: VoucherClient, granted: int
    ) -> None:
        for payee in (town.bob.address, Account.create().address):
            assert_reverts(
                lambda p=payee: vouchers.spend(town.alice, granted, p, 100 * YUAN),
                "VoucherNotMerchant",
                payee,
            )

    def test_with_a_merchant_list_only_listed_merchants_are_paid(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        pid, _ = vouchers.create(town.office, consumption_terms(w3), CONSUMPTION, [town.supermarket.address])
        vouchers.grant(town.office, pid, [Grant(town.alice.address, 200 * YUAN)])
        vouchers.spend(town.alice, pid, town.supermarket.address, 100 * YUAN)
        assert_reverts(
            lambda: vouchers.spend(town.alice, pid, town.canteen, 100 * YUAN),
            "VoucherMerchantNotListed",
            pid,
            town.canteen,
        )
        vouchers.list_merchants(town.office, pid, [town.canteen])
        vouchers.spend(town.alice, pid, town.canteen, 100 * YUAN)
        vouchers.list_merchants(town.office, pid, [town.supermarket.address], allowed=False)
        assert not vouchers.is_listed(pid, town.supermarket.address)
        assert_reverts(
            lambda: vouchers.spend(town.alice, pid, town.supermarket.address, 100 * YUAN),
            "VoucherMerchantNotListed",
            pid,
            town.supermarket.address,
        )

    def test_a_listed_merchant_still_needs_an_allowed_category(
        self, w3: Web3, town: Town, vouchers: VoucherClient, granted: int
    ) -> None:
        pid, _ = vouchers.create(town.office, consumption_terms(w3), CONSUMPTION, [town.gym])
        vouchers.grant(town.office, pid, [Grant(town.alice.address, 200 * YUAN)])
        assert_reverts(
            lambda: vouchers.spend(town.alice, pid, town.gym, 100 * YUAN),
            "VoucherCategoryNotAllowed",
            pid,
            town.gym,
            MCC_GYM,
        )
        assert_reverts(
            lambda: vouchers.list_merchants(town.office, granted, [town.gym]),
            "VoucherNoMerchantList",
            granted,
        )

    def test_reverts_before_the_start(self, w3: Web3, town: Town, vouchers: VoucherClient) -> None:
        starts = pending_ts(w3) + DAY
        pid = consumption(w3, vouchers, town, starts_at=starts, expires_at=starts + DAY)
        vouchers.grant(town.office, pid, [Grant(town.alice.address, 200 * YUAN)])  # granting early is fine
        assert_reverts(
            lambda: vouchers.spend(town.alice, pid, town.canteen, 100 * YUAN),
            "VoucherNotStarted",
            pid,
            starts,
        )
        next_tx_at(w3, starts)
        vouchers.spend(town.alice, pid, town.canteen, 100 * YUAN)

    def test_a_spend_racing_expiry_is_accepted_at_the_expiry_second_and_refused_after(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        expires = vouchers.programme(granted).expires_at
        next_tx_at(w3, expires)
        vouchers.spend(town.alice, granted, town.canteen, 100 * YUAN)
        assert_reverts(
            lambda: vouchers.spend(town.bob, granted, town.canteen, 100 * YUAN),
            "VoucherExpired",
            granted,
            expires,
        )
        assert vouchers.balance(granted, town.bob.address) == 200 * YUAN
        assert_conserved(vouchers, cash, granted)

    def test_reverts_when_the_holder_or_the_merchant_is_frozen(
        self, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        cash.freeze(town.regulator, town.alice.address)
        assert_reverts(
            lambda: vouchers.spend(town.alice, granted, town.canteen, 100 * YUAN),
            "VoucherHolderFrozen",
            town.alice.address,
        )
        cash.freeze(town.regulator, town.canteen)
        assert_reverts(
            lambda: vouchers.spend(town.bob, granted, town.canteen, 100 * YUAN),
            "VoucherMerchantFrozen",
            town.canteen,
        )
        cash.unfreeze(town.regulator, town.alice.address)
        vouchers.spend(town.alice, granted, town.supermarket.address, 100 * YUAN)

    def test_reverts_without_a_balance_or_with_a_zero_bill(
        self, town: Town, vouchers: VoucherClient, granted: int
    ) -> None:
        assert_reverts(
            lambda: vouchers.spend(town.carol, granted, town.canteen, 100 * YUAN),
            "VoucherNoBalance",
            granted,
            town.carol.address,
        )
        assert_reverts(lambda: vouchers.spend(town.alice, granted, town.canteen, 0), "VoucherZeroBill")

    def test_the_holders_own_share_is_an_ordinary_payment_under_tier_caps(
        self, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        # bob is tier 4: at most 2,000 yuan per payment; his share of a 2,100 yuan bill is 2,080.
        cash.mint(town.operator, town.bob.address, 5_000 * YUAN)
        assert_reverts(
            lambda: vouchers.spend(town.bob, granted, town.canteen, 2_100 * YUAN),
            "TierPaymentCapExceeded",
            town.bob.address,
            2_000 * YUAN,
            2_080 * YUAN,
        )
        assert vouchers.balance(granted, town.bob.address) == 200 * YUAN  # nothing recorded

    def test_reverts_when_the_holder_did_not_approve_its_share(
        self, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        vouchers.approve_cash(town.alice, 0)
        assert_reverts(
            lambda: vouchers.spend(town.alice, granted, town.canteen, 100 * YUAN),
            "ERC20InsufficientAllowance",
            vouchers.address,
            0,
            80 * YUAN,
        )

    def test_a_programme_never_pays_from_another_programmes_budget(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        other = welfare(w3, vouchers, town)
        vouchers.grant(town.union, other, [Grant(town.alice.address, 500 * YUAN)])
        before = vouchers.totals(other)
        for _ in range(10):
            vouchers.spend(town.alice, granted, town.canteen, 100 * YUAN)
        assert_reverts(
            lambda: vouchers.spend(town.alice, granted, town.canteen, 100 * YUAN),
            "VoucherNoBalance",
            granted,
            town.alice.address,
        )
        assert vouchers.totals(other) == before
        assert vouchers.totals(granted).spent == 200 * YUAN
        assert_conserved(vouchers, cash, granted, other)


class TestSignedSpend:
    def test_a_merchant_submits_a_holder_signed_spend(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        shop, deadline = town.supermarket, pending_ts(w3) + 600
        signature = vouchers.sign_spend(town.alice, granted, shop.address, 120 * YUAN, deadline)
        before = cash.balance_of(shop.address)
        result = vouchers.spend_with_signature(
            shop, granted, town.alice.address, shop.address, 120 * YUAN, deadline, signature
        )
        event = result.named("Spent")[0]
        assert (event["holder"], event["voucher"], event["cash"], event["bySignature"]) == (
            town.alice.address,
            20 * YUAN,
            100 * YUAN,
            True,
        )
        assert cash.balance_of(shop.address) == before + 120 * YUAN
        assert vouchers.nonce(town.alice.address) == 1
        assert_conserved(vouchers, cash, granted)

    def test_a_replayed_signature_is_refused(
        self, w3: Web3, town: Town, vouchers: VoucherClient, granted: int
    ) -> None:
        shop, deadline = town.supermarket, pending_ts(w3) + 600
        signature = vouchers.sign_spend(town.alice, granted, shop.address, 100 * YUAN, deadline)
        args = (shop, granted, town.alice.address, shop.address, 100 * YUAN, deadline, signature)
        vouchers.spend_with_signature(*args)
        assert_reverts(
            lambda: vouchers.spend_with_signature(*args), "VoucherInvalidSignature", town.alice.address
        )

    def test_a_signature_for_other_terms_chain_or_contract_is_refused(
        self, w3: Web3, town: Town, vouchers: VoucherClient, granted: int
    ) -> None:
        shop, deadline, alice = town.supermarket, pending_ts(w3) + 600, town.alice
        good = dict(programme_id=granted, merchant=shop.address, bill=100 * YUAN, deadline=deadline)
        for bad in (
            vouchers.sign_spend(alice, granted, shop.address, 100 * YUAN - 1, deadline),  # other bill
            vouchers.sign_spend(alice, granted, town.canteen, 100 * YUAN, deadline),  # other merchant
            vouchers.sign_spend(alice, granted, shop.address, 100 * YUAN, deadline, chain_id=1),
            vouchers.sign_spend(
                alice, granted, shop.address, 100 * YUAN, deadline, verifying_contract=shop.address
            ),
            vouchers.sign_spend(alice, granted, shop.address, 100 * YUAN, deadline, nonce=1),
            vouchers.sign_spend(town.bob, granted, shop.address, 100 * YUAN, deadline),  # someone else
        ):
            assert_reverts(
                lambda s=bad: vouchers.spend_with_signature(
                    shop, good["programme_id"], alice.address, good["merchant"], good["bill"], deadline, s
                ),
                "VoucherInvalidSignature",
                alice.address,
            )
        assert vouchers.nonce(alice.address) == 0

    def test_an_expired_signature_is_refused(
        self, w3: Web3, town: Town, vouchers: VoucherClient, granted: int
    ) -> None:
        shop, deadline = town.supermarket, pending_ts(w3) + 60
        signature = vouchers.sign_spend(town.alice, granted, shop.address, 100 * YUAN, deadline)
        devtools.increase_time(w3, 120)
        assert_reverts(
            lambda: vouchers.spend_with_signature(
                shop, granted, town.alice.address, shop.address, 100 * YUAN, deadline, signature
            ),
            "VoucherSignatureExpired",
            deadline,
        )

    def test_a_signed_spend_meets_the_same_refusals(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        deadline = pending_ts(w3) + 600
        signature = vouchers.sign_spend(town.alice, granted, town.gym, 100 * YUAN, deadline)
        assert_reverts(
            lambda: vouchers.spend_with_signature(
                town.keeper, granted, town.alice.address, town.gym, 100 * YUAN, deadline, signature
            ),
            "VoucherCategoryNotAllowed",
            granted,
            town.gym,
            MCC_GYM,
        )
        assert vouchers.nonce(town.alice.address) == 0  # a refused spend consumes no nonce


class TestClose:
    def _spent_some(self, town: Town, vouchers: VoucherClient, pid: int) -> None:
        vouchers.spend(town.alice, pid, town.supermarket.address, 100 * YUAN)
        vouchers.spend(town.alice, pid, town.canteen, 150 * YUAN)
        vouchers.spend(town.bob, pid, town.canteen, 100 * YUAN)

    def test_close_before_or_at_expiry_reverts(
        self, w3: Web3, town: Town, vouchers: VoucherClient, granted: int
    ) -> None:
        expires = vouchers.programme(granted).expires_at
        assert_reverts(
            lambda: vouchers.close(town.keeper, granted, []), "VoucherNotExpired", granted, expires
        )
        next_tx_at(w3, expires)
        assert_reverts(
            lambda: vouchers.close(town.keeper, granted, []), "VoucherNotExpired", granted, expires
        )

    def test_after_expiry_unspent_and_ungranted_money_returns_and_totals_report_by_category(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        self._spent_some(town, vouchers, granted)
        devtools.increase_time(w3, 31 * DAY)
        before = cash.balance_of(town.office.address)
        result = vouchers.close(
            town.keeper, granted, [town.alice.address, town.bob.address, town.carol.address]
        )
        assert result.named("BudgetReturned")[0]["amount"] == 9_600 * YUAN
        assert [(e["holder"], e["amount"]) for e in result.named("GrantReturned")] == [
            (town.alice.address, 160 * YUAN),
            (town.bob.address, 180 * YUAN),
        ]
        assert cash.balance_of(town.office.address) == before + 9_940 * YUAN
        t = vouchers.totals(granted)
        assert (t.budget, t.granted, t.spent, t.returned, t.outstanding, t.ungranted) == (
            10_000 * YUAN,
            400 * YUAN,
            60 * YUAN,
            9_940 * YUAN,
            0,
            0,
        )
        assert t.by_category == {MCC_GROCERY: 20 * YUAN, MCC_RESTAURANT: 40 * YUAN, MCC_DEPARTMENT_STORE: 0}
        assert_conserved(vouchers, cash, granted)

    def test_a_double_clawback_is_refused_and_pays_nothing(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        devtools.increase_time(w3, 31 * DAY)
        holders = [town.alice.address, town.bob.address]
        vouchers.close(town.keeper, granted, holders)
        before = cash.balance_of(town.office.address)
        assert_reverts(
            lambda: vouchers.close(town.keeper, granted, holders), "VoucherNothingToReturn", granted
        )
        assert_reverts(lambda: vouchers.close(town.keeper, granted, []), "VoucherNothingToReturn", granted)
        assert cash.balance_of(town.office.address) == before
        assert_conserved(vouchers, cash, granted)

    def test_clawback_runs_in_bounded_batches_that_may_overlap(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        devtools.increase_time(w3, 31 * DAY)
        first = vouchers.close(town.keeper, granted, [town.alice.address])
        assert first.named("BudgetReturned") and len(first.named("GrantReturned")) == 1
        second = vouchers.close(town.keeper, granted, [town.alice.address, town.bob.address])
        assert not second.named("BudgetReturned")
        assert [e["holder"] for e in second.named("GrantReturned")] == [town.bob.address]
        too_many = [town.alice.address] * (MAX_BATCH + 1)
        assert_reverts(
            lambda: vouchers.close(town.keeper, granted, too_many),
            "VoucherBatchSize",
            MAX_BATCH + 1,
            MAX_BATCH,
        )
        assert vouchers.programme(granted).outstanding == 0
        assert_conserved(vouchers, cash, granted)

    def test_the_first_close_settles_the_budget_even_when_all_of_it_was_granted(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid, _ = vouchers.create(town.union, welfare_terms(w3, budget=1_500 * YUAN), UNION_WELFARE_CATEGORIES)
        grants = [Grant(p.address, 500 * YUAN) for p in (town.alice, town.bob, town.carol)]
        vouchers.grant(town.union, pid, grants)
        vouchers.spend(town.bob, pid, town.clinic, 500 * YUAN)
        devtools.increase_time(w3, 91 * DAY)
        result = vouchers.close(town.keeper, pid, [])
        assert result.named("BudgetReturned")[0]["amount"] == 0 and vouchers.programme(pid).budget_returned
        assert_reverts(lambda: vouchers.close(town.keeper, pid, []), "VoucherNothingToReturn", pid)
        result = vouchers.close(town.keeper, pid, [g.holder for g in grants])
        assert [e["holder"] for e in result.named("GrantReturned")] == [
            town.alice.address,
            town.carol.address,
        ]
        t = vouchers.totals(pid)
        assert (t.spent, t.returned, t.outstanding, t.ungranted) == (500 * YUAN, 1_000 * YUAN, 0, 0)
        assert t.by_category[MCC_HEALTH] == 500 * YUAN
        assert_conserved(vouchers, cash, pid)

    def test_after_expiry_nothing_is_granted_claimed_enrolled_or_spent(
        self, w3: Web3, town: Town, vouchers: VoucherClient, granted: int
    ) -> None:
        open_id = consumption(w3, vouchers, town, mode=Mode.OPEN_ENROLMENT)
        expires = vouchers.programme(granted).expires_at
        tree = merkle_tree(granted, [Grant(town.carol.address, 1)])
        vouchers.set_grant_root(town.office, granted, tree.root, 1)
        devtools.increase_time(w3, 31 * DAY)
        open_expires = vouchers.programme(open_id).expires_at
        for call, pid, at in (
            (lambda: vouchers.grant(town.office, granted, [Grant(town.carol.address, 1)]), granted, expires),
            (
                lambda: vouchers.claim(town.carol, granted, 0, Grant(town.carol.address, 1), tree.proof(0)),
                granted,
                expires,
            ),
            (lambda: vouchers.enrol(town.carol, open_id), open_id, open_expires),
            (lambda: vouchers.spend(town.alice, granted, town.canteen, 100 * YUAN), granted, expires),
            (lambda: vouchers.set_grant_root(town.office, open_id, tree.root, 1), open_id, None),
        ):
            if at is None:
                assert_reverts(call, "VoucherWrongMode", pid, Mode.GRANT_LIST)
            else:
                assert_reverts(call, "VoucherExpired", pid, at)


class TestFreeze:
    """What a frozen holder, merchant or issuer can no longer do, what waits, what still arrives."""

    def test_a_frozen_holder_is_granted_and_claims_but_spends_only_once_unfrozen(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town)
        tree = merkle_tree(pid, [Grant(town.bob.address, 100 * YUAN)])
        vouchers.set_grant_root(town.office, pid, tree.root, 1)
        cash.freeze(town.regulator, town.bob.address)
        vouchers.grant(town.office, pid, [Grant(town.bob.address, 50 * YUAN)])  # still arrives
        vouchers.claim(town.keeper, pid, 0, Grant(town.bob.address, 100 * YUAN), tree.proof(0))
        assert vouchers.balance(pid, town.bob.address) == 150 * YUAN
        assert_reverts(
            lambda: vouchers.spend(town.bob, pid, town.canteen, 100 * YUAN),
            "VoucherHolderFrozen",
            town.bob.address,
        )
        cash.unfreeze(town.regulator, town.bob.address)
        assert vouchers.spend(town.bob, pid, town.canteen, 100 * YUAN).named("Spent")
        assert_conserved(vouchers, cash, pid)

    def test_no_new_grants_come_out_of_a_frozen_issuers_budget(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        """Before: a frozen issuer kept granting its budget away (batch, root, claims, enrolment)."""
        office = town.office.address
        open_id = consumption(w3, vouchers, town, mode=Mode.OPEN_ENROLMENT)
        tree = merkle_tree(granted, [Grant(town.carol.address, 100 * YUAN)])
        vouchers.set_grant_root(town.office, granted, tree.root, 1)
        other = consumption(w3, vouchers, town)
        cash.freeze(town.regulator, office)
        grant = [Grant(town.carol.address, 100 * YUAN)]
        assert_reverts(
            lambda: vouchers.grant(town.office, granted, grant), "VoucherIssuerFrozen", granted, office
        )
        assert_reverts(
            lambda: vouchers.claim(town.keeper, granted, 0, grant[0], tree.proof(0)),
            "VoucherIssuerFrozen",
            granted,
            office,
        )
        assert_reverts(lambda: vouchers.enrol(town.carol, open_id), "VoucherIssuerFrozen", open_id, office)
        assert_reverts(
            lambda: vouchers.set_grant_root(town.office, other, tree.root, 1),
            "VoucherIssuerFrozen",
            other,
            office,
        )
        # What it granted before is the holders': spent as usual.
        assert vouchers.spend(town.alice, granted, town.canteen, 100 * YUAN).named("Spent")
        cash.unfreeze(town.regulator, office)
        vouchers.claim(town.keeper, granted, 0, grant[0], tree.proof(0))  # the claim waited
        assert vouchers.balance(granted, town.carol.address) == 100 * YUAN
        assert_conserved(vouchers, cash, granted, open_id, other)

    def test_a_frozen_issuers_clawback_waits_and_a_pause_stops_it_whole(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        devtools.increase_time(w3, 31 * DAY)
        holders = [town.alice.address, town.bob.address]
        cash.freeze(town.regulator, town.office.address)
        assert_reverts(
            lambda: vouchers.close(town.keeper, granted, holders), "WalletFrozen", town.office.address
        )
        cash.unfreeze(town.regulator, town.office.address)
        cash.pause(town.regulator)
        assert_reverts(lambda: vouchers.close(town.keeper, granted, holders), "EnforcedPause")
        cash.unpause(town.regulator)
        before = cash.balance_of(town.office.address)
        vouchers.close(town.keeper, granted, holders)
        assert cash.balance_of(town.office.address) == before + 10_000 * YUAN
        assert_conserved(vouchers, cash, granted)

    def test_a_frozen_holder_named_in_a_clawback_does_not_block_it(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient, granted: int
    ) -> None:
        devtools.increase_time(w3, 31 * DAY)
        cash.freeze(town.regulator, town.bob.address)
        result = vouchers.close(town.keeper, granted, [town.alice.address, town.bob.address])
        assert [e["holder"] for e in result.named("GrantReturned")] == [town.alice.address, town.bob.address]
        assert_conserved(vouchers, cash, granted)


class TestHolds:
    """A hold (judicial freeze of an amount) reaches the holder's cash share of a spend, not the
    voucher share: that is the issuer's money until spent (`PAY_GRANT`), which no court order takes."""

    def test_a_held_holder_spends_the_voucher_share_but_not_held_cash(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid = welfare(w3, vouchers, town)
        vouchers.grant(town.union, pid, [Grant(town.alice.address, 500 * YUAN)])
        # 1,500 yuan held, 1,000 in the wallet: the hold is not covered (families would refuse
        # AmountFrozenInFamily for the holder's own money they hold).
        case = bytes32_text("(2026)苏0507执9号")
        cash.tx.transact(
            town.regulator, cash.place_hold_call(town.alice.address, 1_500 * YUAN, bytes32_text("AML"), case)
        )
        before = cash.balance_of(town.alice.address), cash.balance_of(town.canteen)
        spent = vouchers.spend(town.alice, pid, town.canteen, 300 * YUAN).named("Spent")[0]
        assert (spent["voucher"], spent["cash"]) == (300 * YUAN, 0)
        assert cash.balance_of(town.canteen) == before[1] + 300 * YUAN
        # 200 yuan of voucher left: a 300 yuan bill needs 100 yuan of the holder's held cash.
        assert_reverts(
            lambda: vouchers.spend(town.alice, pid, town.clinic, 300 * YUAN),
            "AmountFrozen",
            town.alice.address,
            1_500 * YUAN,
            0,
            100 * YUAN,
        )
        assert cash.balance_of(town.alice.address) == before[0]
        assert vouchers.balance(pid, town.alice.address) == 200 * YUAN
        assert_conserved(vouchers, cash, pid)


class TestIdentityCap:
    """A programme capped per identity counts the per-person cap over all the wallets of one
    identity hash: a second wallet of the same person (another tier) gains nothing."""

    @staticmethod
    def second_wallet(cash: CashClient, town: Town, name: str, tier: int) -> LocalAccount:
        """A second personal wallet of ``name``'s identity in ``tier`` (one per tier is allowed)."""
        extra = Account.create()
        cash.register(town.operator, extra.address, Kind.PERSONAL, tier, 0, identity(name))
        return extra

    def test_grants_to_two_wallets_of_one_person_count_against_one_cap(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town)
        event = vouchers.tx.transact(town.office, vouchers.cap_per_identity_call(pid)).named(
            "IdentityCapSet"
        )[0]
        assert event.args == {"id": pid, "issuer": town.office.address}
        assert vouchers.caps_per_identity(pid)
        alice2 = self.second_wallet(cash, town, "alice", 2)  # alice is tier 3
        vouchers.grant(town.office, pid, [Grant(town.alice.address, 150 * YUAN)])
        assert_reverts(
            lambda: vouchers.grant(town.office, pid, [Grant(alice2.address, 50 * YUAN + 1)]),
            "VoucherOverIdentityCap",
            pid,
            identity("alice"),
            200 * YUAN,
            200 * YUAN + 1,
        )
        vouchers.grant(town.office, pid, [Grant(alice2.address, 50 * YUAN)])  # exactly at the cap
        assert vouchers.granted_to_identity(pid, identity("alice")) == 200 * YUAN
        assert vouchers.balance(pid, alice2.address) == 50 * YUAN
        assert_conserved(vouchers, cash, pid)

    def test_without_the_identity_cap_each_wallet_has_its_own(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town)
        alice2 = self.second_wallet(cash, town, "alice", 2)
        vouchers.grant(
            town.office, pid, [Grant(town.alice.address, 200 * YUAN), Grant(alice2.address, 200 * YUAN)]
        )
        assert vouchers.granted_to_identity(pid, identity("alice")) == 0  # not kept: not capped per identity

    def test_a_second_wallet_cannot_enrol_for_a_second_share(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town, mode=Mode.OPEN_ENROLMENT)
        vouchers.tx.transact(town.office, vouchers.cap_per_identity_call(pid))
        bob2 = dev_account(10)  # a funded account (it pays gas), not a wallet in this town
        cash.register(town.operator, bob2.address, Kind.PERSONAL, 3, 0, identity("bob"))  # bob is tier 4
        vouchers.enrol(town.bob, pid)
        assert_reverts(
            lambda: vouchers.enrol(bob2, pid),
            "VoucherOverIdentityCap",
            pid,
            identity("bob"),
            200 * YUAN,
            400 * YUAN,
        )

    def test_a_merkle_claim_to_a_second_wallet_is_refused(
        self, w3: Web3, town: Town, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town)
        vouchers.tx.transact(town.office, vouchers.cap_per_identity_call(pid))
        carol2 = self.second_wallet(cash, town, "carol", 3)
        grants = [Grant(town.carol.address, 120 * YUAN), Grant(carol2.address, 120 * YUAN)]
        tree = merkle_tree(pid, grants)
        vouchers.set_grant_root(town.office, pid, tree.root, len(grants))
        vouchers.claim(town.keeper, pid, 0, grants[0], tree.proof(0))
        assert_reverts(
            lambda: vouchers.claim(town.keeper, pid, 1, grants[1], tree.proof(1)),
            "VoucherOverIdentityCap",
            pid,
            identity("carol"),
            200 * YUAN,
            240 * YUAN,
        )

    def test_only_the_issuer_only_before_the_first_grant_and_only_once(
        self, w3: Web3, town: Town, vouchers: VoucherClient
    ) -> None:
        pid = consumption(w3, vouchers, town)
        assert_reverts(
            lambda: vouchers.tx.transact(town.union, vouchers.cap_per_identity_call(pid)),
            "VoucherNotIssuer",
            pid,
            town.union.address,
        )
        vouchers.tx.transact(town.office, vouchers.cap_per_identity_call(pid))
        assert_reverts(
            lambda: vouchers.tx.transact(town.office, vouchers.cap_per_identity_call(pid)),
            "VoucherIdentityCapAlreadySet",
            pid,
        )
        other = consumption(w3, vouchers, town)
        vouchers.grant(town.office, other, [Grant(town.alice.address, 10 * YUAN)])
        assert_reverts(
            lambda: vouchers.tx.transact(town.office, vouchers.cap_per_identity_call(other)),
            "VoucherGrantsStarted",
            other,
            10 * YUAN,
        )
