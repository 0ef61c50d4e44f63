"""Holds (judicial freeze of an amount, AML hold), court orders and recovery: decided in the
WalletRegistry (maker-checker where two keys are needed), executed by DigitalCash.

A held amount moves by no path (transfer, transferFrom and so every family pull, redemption);
a court order moves exactly its amount, held and frozen money included, keeping the supply; a
recovery moves a lost wallet's whole holding to a new wallet of the same identity and retires it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain.accounts import dev_account
from chain.clients.hardwallet import (
    CardForm,
    HardWalletClient,
    Outcome,
    QuickPayClient,
    RejectReason,
    order_ref,
)
from chain.clients.prepaid import PrepaidClient
from chain.clients.token import CashClient, Kind, ProposalStatus, bytes32_text
from tests.conftest import Actors, identity
from tests.helpers import assert_reverts
from wallets.hardwallet import HardWallet
from wallets.terminal import Terminal

CASE = bytes32_text("(2026)苏0507执123号")
AML = bytes32_text("AML")
JUDICIAL = bytes32_text("judicial freeze")
EVIDENCE = Web3.keccak(text="in-branch identity check, file 77")


@dataclass(frozen=True)
class Court:
    a: Actors
    second: LocalAccount  # a second regulator key (the checker)


@pytest.fixture
def court(registered: Actors, cash: CashClient) -> Court:
    """alice (tier 3) holds 5,000 yuan, carol (tier 2) 10,000; a second regulator key."""
    a = registered
    second = dev_account(9)
    role = cash.registry.functions.REGULATOR_ROLE().call()
    cash.tx.transact(a.admin, cash.registry.functions.grantRole(role, second.address))
    cash.mint(a.operator, a.alice.address, 5_000_00)
    cash.mint(a.operator, a.carol.address, 10_000_00)
    return Court(a, second)


def hold(
    cash: CashClient, regulator: LocalAccount, wallet: str, amount: int, reason: bytes = JUDICIAL
) -> int:
    result = cash.tx.transact(regulator, cash.place_hold_call(wallet, amount, reason, CASE))
    return int(result.named("HoldPlaced")[0]["holdId"])


def role(cash: CashClient, name: str) -> bytes:
    return getattr(cash.registry.functions, name)().call()


class TestHolds:
    def test_placing_a_hold_is_an_event_and_a_listed_read(self, court: Court, cash: CashClient) -> None:
        a = court.a
        result = cash.tx.transact(a.regulator, cash.place_hold_call(a.alice.address, 3_000_00, AML, CASE))
        assert result.named("HoldPlaced")[0].args == {
            "holdId": 1,
            "wallet": a.alice.address,
            "amount": 3_000_00,
            "heldTotal": 3_000_00,
            "reason": AML,
            "caseNumber": CASE,
            "regulator": a.regulator.address,
        }
        assert cash.held_of(a.alice.address) == 3_000_00
        (h,) = cash.holds_of(a.alice.address)
        assert (h.hold_id, h.wallet, h.amount, h.active, h.reason, h.case_number) == (
            1,
            a.alice.address,
            3_000_00,
            True,
            AML,
            CASE,
        )

    def test_the_held_amount_cannot_be_transferred_the_rest_can(self, court: Court, cash: CashClient) -> None:
        a = court.a
        hold(cash, a.regulator, a.alice.address, 3_000_00)
        assert_reverts(
            lambda: cash.transfer(a.alice, a.carol.address, 2_000_01),
            "AmountFrozen",
            a.alice.address,
            3_000_00,
            2_000_00,
            2_000_01,
        )
        cash.transfer(a.alice, a.carol.address, 2_000_00)  # exactly what is free
        assert cash.balance_of(a.alice.address) == 3_000_00
        assert_reverts(
            lambda: cash.transfer(a.alice, a.carol.address, 1),
            "AmountFrozen",
            a.alice.address,
            3_000_00,
            0,
            1,
        )

    def test_a_spender_cannot_pull_the_held_amount(self, court: Court, cash: CashClient) -> None:
        a = court.a
        hold(cash, a.regulator, a.alice.address, 4_000_00)
        cash.approve(a.alice, a.bob.address, 5_000_00)
        assert_reverts(
            lambda: cash.transfer_from(a.bob, a.alice.address, a.gym.address, 1_000_01),
            "AmountFrozen",
            a.alice.address,
            4_000_00,
            1_000_00,
            1_000_01,
        )
        cash.transfer_from(a.bob, a.alice.address, a.gym.address, 1_000_00)

    def test_a_family_pull_cannot_take_the_held_amount(
        self, w3: Web3, court: Court, cash: CashClient, quickpay: QuickPayClient
    ) -> None:
        a = court.a
        quickpay.approve(a.alice, 5_000_00)
        expires = int(w3.eth.get_block("latest")["timestamp"]) + 86_400
        mandate, _ = quickpay.grant(a.alice, a.gym.address, 5_000_00, 5_000_00, expires)
        hold(cash, a.regulator, a.alice.address, 4_900_00)
        assert_reverts(
            lambda: quickpay.pull(a.gym, mandate, 100_01, order_ref("o-1")),
            "AmountFrozen",
            a.alice.address,
            4_900_00,
            100_00,
            100_01,
        )
        quickpay.pull(a.gym, mandate, 100_00, order_ref("o-2"))
        assert cash.balance_of(a.alice.address) == 4_900_00

    def test_the_held_amount_cannot_be_redeemed(self, court: Court, cash: CashClient) -> None:
        a = court.a
        hold(cash, a.regulator, a.alice.address, 5_000_00)
        cash.approve(a.alice, a.operator.address, 5_000_00)
        assert_reverts(
            lambda: cash.redeem(a.operator, a.alice.address, 1),
            "AmountFrozen",
            a.alice.address,
            5_000_00,
            0,
            1,
        )

    def test_a_hold_above_the_balance_catches_money_arriving_later(
        self, court: Court, cash: CashClient
    ) -> None:
        a = court.a
        hold(cash, a.regulator, a.bob.address, 500_00)  # bob has nothing yet
        cash.mint(a.operator, a.bob.address, 800_00)
        assert_reverts(
            lambda: cash.transfer(a.bob, a.gym.address, 300_01),
            "AmountFrozen",
            a.bob.address,
            500_00,
            300_00,
            300_01,
        )
        cash.transfer(a.bob, a.gym.address, 300_00)

    def test_holds_add_up_and_lifting_one_frees_its_amount(self, court: Court, cash: CashClient) -> None:
        a = court.a
        first = hold(cash, a.regulator, a.alice.address, 2_000_00)
        second = hold(cash, court.second, a.alice.address, 1_000_00, AML)
        assert cash.held_of(a.alice.address) == 3_000_00
        event = cash.tx.transact(a.regulator, cash.lift_hold_call(a.alice.address, first)).named(
            "HoldReleased"
        )[0]
        assert event.args == {
            "holdId": first,
            "wallet": a.alice.address,
            "released": 2_000_00,
            "heldTotal": 1_000_00,
            "caseNumber": CASE,
            "by": a.regulator.address,
        }
        assert [h.hold_id for h in cash.holds_of(a.alice.address)] == [second]
        assert not cash.hold(first).active
        cash.transfer(a.alice, a.carol.address, 4_000_00)
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, cash.lift_hold_call(a.alice.address, first)),
            "HoldNotActive",
            first,
            a.alice.address,
        )
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, cash.lift_hold_call(a.carol.address, second)),
            "HoldNotActive",
            second,
            a.carol.address,
        )
        cash.tx.transact(a.regulator, cash.lift_hold_call(a.alice.address, second))
        assert cash.held_of(a.alice.address) == 0 and cash.holds_of(a.alice.address) == []
        cash.transfer(a.alice, a.carol.address, 1_000_00)

    def test_refusals(self, court: Court, cash: CashClient) -> None:
        a = court.a
        place = cash.place_hold_call
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, place(a.alice.address, 0, AML, CASE)), "InvalidAmount", 0
        )
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, place(a.alice.address, 2**128, AML, CASE)),
            "InvalidAmount",
            2**128,
        )
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, place(a.alice.address, 1, AML, b"\0" * 32)),
            "ZeroCaseNumber",
        )
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, place(a.outsider.address, 1, AML, CASE)),
            "WalletNotRegistered",
            a.outsider.address,
        )
        for caller in (a.operator, a.alice, a.admin):
            assert_reverts(
                lambda c=caller: cash.tx.transact(c, place(a.alice.address, 1, AML, CASE)),
                "AccessControlUnauthorizedAccount",
                caller.address,
                role(cash, "REGULATOR_ROLE"),
            )
        held = hold(cash, a.regulator, a.alice.address, 1)
        assert_reverts(
            lambda: cash.tx.transact(a.operator, cash.lift_hold_call(a.alice.address, held)),
            "AccessControlUnauthorizedAccount",
            a.operator.address,
            role(cash, "REGULATOR_ROLE"),
        )


def propose(cash: CashClient, maker: LocalAccount, frm: str, to: str, amount: int, hold_id: int = 0) -> int:
    result = cash.tx.transact(maker, cash.propose_court_order_call(frm, to, amount, CASE, hold_id))
    return int(result.named("CourtOrderProposed")[0]["id"])


def now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


FROZEN_IN_FAMILY = bytes(Web3.keccak(text="AmountFrozenInFamily(address,uint256,uint256,uint256)")[:4])


class TestHoldsReachFamilyMoney:
    """Money a family holds for a person (a card reserve, a prepaid package) is that person's: while
    the own wallet does not cover the holds, no family pays it to anyone but the person
    (`AmountFrozenInFamily`); while it does, the rest moves; paying it back home stays open."""

    @pytest.mark.parametrize("form", [CardForm.CARD, CardForm.WEARABLE])
    def test_a_card_payment_from_a_held_holders_reserve_waits_for_the_hold(
        self, w3: Web3, court: Court, cash: CashClient, hardwallet: HardWalletClient, form: CardForm
    ) -> None:
        a = court.a
        card = HardWallet(bytes.fromhex("a2" * 32), hardwallet.domain, form=form)
        hardwallet.register_card(a.operator, card.address, a.alice.address, form)
        hardwallet.load(a.alice, card.address, 1_000_00)
        card.credit(1_000_00)
        terminal = Terminal(a.gym.address, hardwallet.domain, clock=lambda: now(w3))
        # The whole wallet (4,000 yuan) held: covered, so the reserve is "the rest" and moves.
        hold(cash, a.regulator, a.alice.address, 4_000_00)
        terminal.charge(card, 10_00)
        assert terminal.upload_to_chain(hardwallet, a.operator)[0].outcome is Outcome.SETTLED
        # One fen more than the wallet: the reserve is held too; the payment waits, nothing moves.
        extra = hold(cash, a.regulator, a.alice.address, 1)
        p = terminal.charge(card, 30_00)
        refused = terminal.upload_to_chain(hardwallet, a.operator)[0]
        assert (refused.outcome, refused.reason, refused.detail, refused.final) == (
            Outcome.REJECTED,
            RejectReason.HOLDER_REFUSED,
            FROZEN_IN_FAMILY,
            False,
        )
        assert terminal.pending == [p] and not hardwallet.is_counter_used(card.address, 2)
        assert hardwallet.card(card.address).reserve == 990_00
        assert (cash.balance_of(a.gym.address), cash.balance_of(a.alice.address)) == (10_00, 4_000_00)
        cash.tx.transact(a.regulator, cash.lift_hold_call(a.alice.address, extra))
        assert terminal.upload_to_chain(hardwallet, a.operator)[0].outcome is Outcome.SETTLED
        assert cash.balance_of(a.gym.address) == 40_00

    def test_a_prepaid_package_of_a_held_consumer_pays_no_merchant_but_refunds_home(
        self, w3: Web3, court: Court, cash: CashClient, prepaid: PrepaidClient
    ) -> None:
        a = court.a
        prepaid.enrol(a.regulator, a.gym.address, 10_000)
        pid, _ = prepaid.prepay(a.alice, a.gym.address, 10, 200_00, now(w3) + 30 * 86_400)
        assert cash.balance_of(a.alice.address) == 3_000_00
        hold(cash, a.regulator, a.alice.address, 3_000_01)
        assert_reverts(
            lambda: prepaid.consume(a.alice, pid, 1),
            "AmountFrozenInFamily",
            a.alice.address,
            3_000_01,
            3_000_00,
            200_00,
        )
        assert cash.balance_of(a.gym.address) == 0 and prepaid.package(pid).held == 2_000_00
        # Cancelling pays the package back home (no fee): the wallet then covers the hold, and the
        # exact per-fen rule frees what is above it.
        prepaid.cancel(a.alice, pid)
        assert cash.balance_of(a.alice.address) == 5_000_00
        assert_reverts(
            lambda: cash.transfer(a.alice, a.carol.address, 2_000_00),
            "AmountFrozen",
            a.alice.address,
            3_000_01,
            1_999_99,
            2_000_00,
        )
        cash.transfer(a.alice, a.carol.address, 1_999_99)

    def test_a_covered_hold_leaves_a_prepaid_package_free(
        self, w3: Web3, court: Court, cash: CashClient, prepaid: PrepaidClient
    ) -> None:
        a = court.a
        prepaid.enrol(a.regulator, a.gym.address, 10_000)
        pid, _ = prepaid.prepay(a.alice, a.gym.address, 10, 200_00, now(w3) + 30 * 86_400)
        hold(cash, a.regulator, a.alice.address, 3_000_00)
        prepaid.consume(a.alice, pid, 2)
        assert cash.balance_of(a.gym.address) == 400_00


class TestCourtOrders:
    def test_two_regulators_move_the_ordered_amount_held_and_frozen_money_included(
        self, court: Court, cash: CashClient
    ) -> None:
        a, supply = court.a, cash.total_supply()
        held = hold(cash, a.regulator, a.alice.address, 4_000_00)
        cash.freeze(a.regulator, a.alice.address)
        order = propose(cash, a.regulator, a.alice.address, a.carol.address, 4_500_00, held)
        assert cash.court_order(order).status == ProposalStatus.PENDING
        result = cash.tx.transact(court.second, cash.approve_court_order_call(order))
        assert result.named("CourtOrderExecuted")[0].args == {
            "id": order,
            "from": a.alice.address,
            "to": a.carol.address,
            "amount": 4_500_00,
            "caseNumber": CASE,
            "maker": a.regulator.address,
            "checker": court.second.address,
        }
        assert result.named("CourtTransfer")[0].args == {
            "from": a.alice.address,
            "to": a.carol.address,
            "amount": 4_500_00,
        }
        assert cash.balance_of(a.alice.address) == 500_00
        assert cash.balance_of(a.carol.address) == 14_500_00
        assert cash.total_supply() == supply
        assert cash.held_of(a.alice.address) == 0 and not cash.hold(held).active  # executed against it
        assert cash.spent_today(a.alice.address) == 0  # not a payment of alice's
        assert cash.court_order(order).status == ProposalStatus.EXECUTED
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, cash.approve_court_order_call(order)),
            "ProposalNotPending",
            order,
        )

    def test_an_order_smaller_than_the_hold_leaves_the_rest_held(
        self, court: Court, cash: CashClient
    ) -> None:
        a = court.a
        held = hold(cash, a.regulator, a.alice.address, 4_000_00)
        order = propose(cash, a.regulator, a.alice.address, a.carol.address, 1_000_00, held)
        cash.tx.transact(court.second, cash.approve_court_order_call(order))
        assert cash.hold(held).amount == 3_000_00 and cash.held_of(a.alice.address) == 3_000_00
        assert_reverts(
            lambda: cash.transfer(a.alice, a.carol.address, 1_000_01),
            "AmountFrozen",
            a.alice.address,
            3_000_00,
            1_000_00,
            1_000_01,
        )

    def test_an_order_against_a_wallet_recovered_since_is_refused(
        self, court: Court, cash: CashClient
    ) -> None:
        a, new = court.a, Account.create().address
        order = propose(cash, a.regulator, a.alice.address, a.carol.address, 100)
        rid = recover(cash, court, a.alice.address, new)
        cash.tx.transact(a.regulator, cash.approve_recovery_call(rid))
        assert_reverts(
            lambda: cash.tx.transact(court.second, cash.approve_court_order_call(order)),
            "WalletRetired",
            a.alice.address,
        )
        again = propose(cash, a.regulator, new, a.carol.address, 100)  # against the successor
        cash.tx.transact(court.second, cash.approve_court_order_call(again))
        assert cash.balance_of(new) == 5_000_00 - 100

    def test_the_maker_cannot_approve_its_own_order(self, court: Court, cash: CashClient) -> None:
        a = court.a
        order = propose(cash, a.regulator, a.alice.address, a.carol.address, 100)
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, cash.approve_court_order_call(order)),
            "CheckerIsMaker",
            order,
            a.regulator.address,
        )

    def test_the_order_is_bounded_by_its_amount_and_the_balance(self, court: Court, cash: CashClient) -> None:
        a = court.a
        order = propose(cash, a.regulator, a.alice.address, a.carol.address, 5_000_01)
        assert_reverts(
            lambda: cash.tx.transact(court.second, cash.approve_court_order_call(order)),
            "ERC20InsufficientBalance",
            a.alice.address,
            5_000_00,
            5_000_01,
        )
        assert cash.court_order(order).status == ProposalStatus.PENDING

    def test_the_receiver_is_judged_as_any_receiver(self, court: Court, cash: CashClient) -> None:
        a = court.a
        over = propose(cash, a.regulator, a.carol.address, a.bob.address, 10_000_01 - 1)  # bob: tier 4
        cash.mint(a.operator, a.bob.address, 1)
        assert_reverts(
            lambda: cash.tx.transact(court.second, cash.approve_court_order_call(over)),
            "TierBalanceCapExceeded",
            a.bob.address,
            10_000_00,
            10_000_01,
        )
        cash.freeze(a.regulator, a.gym.address)
        frozen = propose(cash, a.regulator, a.alice.address, a.gym.address, 100)
        assert_reverts(
            lambda: cash.tx.transact(court.second, cash.approve_court_order_call(frozen)),
            "WalletFrozen",
            a.gym.address,
        )
        cash.pause(a.regulator)
        paid = propose(cash, a.regulator, a.alice.address, a.carol.address, 100)
        assert_reverts(
            lambda: cash.tx.transact(court.second, cash.approve_court_order_call(paid)), "EnforcedPause"
        )

    def test_cancelled_orders_are_not_executed(self, court: Court, cash: CashClient) -> None:
        a = court.a
        order = propose(cash, a.regulator, a.alice.address, a.carol.address, 100)
        event = cash.tx.transact(court.second, cash.cancel_court_order_call(order)).named(
            "CourtOrderCancelled"
        )[0]
        assert event.args == {"id": order, "caseNumber": CASE, "regulator": court.second.address}
        assert_reverts(
            lambda: cash.tx.transact(court.second, cash.approve_court_order_call(order)),
            "ProposalNotPending",
            order,
        )

    def test_proposal_refusals(self, court: Court, cash: CashClient) -> None:
        a = court.a
        other = hold(cash, a.regulator, a.carol.address, 1)
        call = cash.propose_court_order_call
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, call(a.alice.address, a.carol.address, 1, CASE, other)),
            "HoldNotActive",
            other,
            a.alice.address,
        )
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, call(a.alice.address, a.carol.address, 0, CASE, 0)),
            "InvalidAmount",
            0,
        )
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, call(a.alice.address, a.carol.address, 1, b"\0" * 32, 0)),
            "ZeroCaseNumber",
        )
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, call(a.alice.address, a.outsider.address, 1, CASE, 0)),
            "WalletNotRegistered",
            a.outsider.address,
        )
        assert_reverts(
            lambda: cash.tx.transact(a.operator, call(a.alice.address, a.carol.address, 1, CASE, 0)),
            "AccessControlUnauthorizedAccount",
            a.operator.address,
            role(cash, "REGULATOR_ROLE"),
        )

    def test_only_the_registry_orders_the_tokens_moves(self, court: Court, cash: CashClient) -> None:
        a = court.a
        for fn in (
            cash.cash.functions.courtTransfer(a.alice.address, a.regulator.address, 1),
            cash.cash.functions.recoverHolding(a.alice.address, a.regulator.address),
        ):
            assert_reverts(lambda f=fn: cash.tx.transact(a.regulator, f), "RegistryOnly", a.regulator.address)

    def test_the_token_is_linked_once(self, court: Court, cash: CashClient) -> None:
        a = court.a
        assert cash.registry.functions.cash().call() == cash.cash.address
        assert_reverts(
            lambda: cash.tx.transact(a.admin, cash.registry.functions.linkCash(a.alice.address)),
            "CashLink",
            cash.cash.address,
        )


def recover(cash: CashClient, court: Court, lost: str, replacement: str) -> int:
    result = cash.tx.transact(court.a.operator, cash.propose_recovery_call(lost, replacement, EVIDENCE))
    return int(result.named("RecoveryProposed")[0]["id"])


class TestRecovery:
    def test_operator_and_regulator_move_a_lost_wallet_to_a_new_one(
        self, court: Court, cash: CashClient
    ) -> None:
        a, new, supply = court.a, Account.create(), cash.total_supply()
        cash.transfer(a.alice, a.gym.address, 1_000_00)  # spent today: carried over
        held = hold(cash, a.regulator, a.alice.address, 2_000_00)
        rid = recover(cash, court, a.alice.address, new.address)
        proposal = cash.recovery(rid)
        assert (proposal.lost, proposal.status, proposal.replacement, proposal.evidence) == (
            a.alice.address,
            ProposalStatus.PENDING,
            new.address,
            bytes(EVIDENCE),
        )
        result = cash.tx.transact(a.regulator, cash.approve_recovery_call(rid))
        assert result.named("WalletRecovered")[0].args == {
            "id": rid,
            "lost": a.alice.address,
            "replacement": new.address,
            "identityHash": identity("alice"),
            "balance": 4_000_00,
            "held": 2_000_00,
            "maker": a.operator.address,
            "checker": a.regulator.address,
        }
        assert result.named("WalletRetiredTo")[0].args == {
            "wallet": a.alice.address,
            "successor": new.address,
        }
        assert result.named("HoldingRecovered")[0].args == {
            "lost": a.alice.address,
            "replacement": new.address,
            "balance": 4_000_00,
        }
        info = cash.wallet(new.address)
        assert (info.kind, info.tier, info.identity_hash) == (Kind.PERSONAL, 3, identity("alice"))
        assert cash.balance_of(new.address) == 4_000_00 and cash.balance_of(a.alice.address) == 0
        assert cash.total_supply() == supply
        assert cash.spent_today(new.address) == 1_000_00
        assert cash.held_of(new.address) == 2_000_00 and cash.hold(held).wallet == new.address
        assert cash.held_of(a.alice.address) == 0
        assert cash.is_retired(a.alice.address) and cash.successor_of(a.alice.address) == new.address
        assert cash.wallet(a.alice.address).frozen  # retired: frozen for every family
        assert cash.personal_wallet_of(identity("alice")) == new.address
        assert cash.personal_wallet_count(identity("alice"), 3) == 1

    def test_a_retired_wallet_never_sends_or_receives_or_changes_again(
        self, court: Court, cash: CashClient
    ) -> None:
        a, new = court.a, Account.create()
        cash.approve(a.alice, a.bob.address, 10**9)
        rid = recover(cash, court, a.alice.address, new.address)
        cash.tx.transact(a.regulator, cash.approve_recovery_call(rid))
        lost = a.alice.address
        assert_reverts(lambda: cash.transfer(a.alice, a.carol.address, 0), "WalletRetired", lost)
        assert_reverts(lambda: cash.transfer(a.carol, lost, 1), "WalletRetired", lost)
        assert_reverts(lambda: cash.mint(a.operator, lost, 1), "WalletRetired", lost)
        assert_reverts(lambda: cash.transfer_from(a.bob, lost, a.carol.address, 0), "WalletRetired", lost)
        assert_reverts(lambda: cash.freeze(a.regulator, lost), "WalletRetired", lost)
        assert_reverts(lambda: cash.set_tier(a.operator, lost, 2), "WalletRetired", lost)
        assert_reverts(
            lambda: cash.register(a.operator, lost, Kind.PERSONAL, 3, 0, identity("alice")),
            "WalletAlreadyRegistered",
            lost,
        )
        assert_reverts(
            lambda: cash.tx.transact(
                a.operator, cash.propose_recovery_call(lost, Account.create().address, EVIDENCE)
            ),
            "WalletRetired",
            lost,
        )
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, cash.place_hold_call(lost, 1, AML, CASE)),
            "WalletRetired",
            lost,
        )

    def test_a_frozen_wallet_is_recovered_frozen(self, court: Court, cash: CashClient) -> None:
        a, new = court.a, Account.create()
        cash.freeze(a.regulator, a.alice.address)
        rid = recover(cash, court, a.alice.address, new.address)
        cash.tx.transact(a.regulator, cash.approve_recovery_call(rid))
        assert cash.wallet(new.address).frozen and cash.balance_of(new.address) == 5_000_00
        assert_reverts(lambda: cash.transfer(a.carol, new.address, 1), "WalletFrozen", new.address)

    def test_the_checker_must_differ_from_the_maker(self, court: Court, cash: CashClient) -> None:
        a = court.a
        registrar = role(cash, "REGISTRAR_ROLE")
        cash.tx.transact(a.admin, cash.registry.functions.grantRole(registrar, court.second.address))
        result = cash.tx.transact(
            court.second, cash.propose_recovery_call(a.alice.address, Account.create().address, EVIDENCE)
        )
        rid = int(result.named("RecoveryProposed")[0]["id"])
        assert_reverts(
            lambda: cash.tx.transact(court.second, cash.approve_recovery_call(rid)),
            "CheckerIsMaker",
            rid,
            court.second.address,
        )

    def test_roles(self, court: Court, cash: CashClient) -> None:
        a, new = court.a, Account.create().address
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, cash.propose_recovery_call(a.alice.address, new, EVIDENCE)),
            "AccessControlUnauthorizedAccount",
            a.regulator.address,
            role(cash, "REGISTRAR_ROLE"),
        )
        rid = recover(cash, court, a.alice.address, new)
        assert_reverts(
            lambda: cash.tx.transact(a.alice, cash.approve_recovery_call(rid)),
            "AccessControlUnauthorizedAccount",
            a.alice.address,
            role(cash, "REGULATOR_ROLE"),
        )
        assert_reverts(
            lambda: cash.tx.transact(a.alice, cash.cancel_recovery_call(rid)),
            "AccessControlUnauthorizedAccount",
            a.alice.address,
            role(cash, "REGULATOR_ROLE"),
        )

    def test_a_cancelled_recovery_is_not_executed(self, court: Court, cash: CashClient) -> None:
        a = court.a
        rid = recover(cash, court, a.alice.address, Account.create().address)
        event = cash.tx.transact(a.regulator, cash.cancel_recovery_call(rid)).named("RecoveryCancelled")[0]
        assert event.args == {"id": rid, "by": a.regulator.address}
        assert cash.recovery(rid).status == ProposalStatus.CANCELLED
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, cash.approve_recovery_call(rid)), "ProposalNotPending", rid
        )

    def test_proposal_refusals(self, court: Court, cash: CashClient) -> None:
        a = court.a
        call = cash.propose_recovery_call
        assert_reverts(
            lambda: cash.tx.transact(a.operator, call(a.alice.address, a.bob.address, EVIDENCE)),
            "WalletAlreadyRegistered",
            a.bob.address,
        )
        assert_reverts(
            lambda: cash.tx.transact(a.operator, call(a.alice.address, "0x" + "00" * 20, EVIDENCE)),
            "WalletZeroAddress",
        )
        assert_reverts(
            lambda: cash.tx.transact(a.operator, call(a.alice.address, Account.create().address, b"\0" * 32)),
            "ZeroEvidence",
        )
        family = cash.manifest.address("VoucherProgrammes")
        assert_reverts(
            lambda: cash.tx.transact(a.operator, call(family, Account.create().address, EVIDENCE)),
            "RecoveryOfFamilyWallet",
            family,
        )

    def test_a_replacement_registered_meanwhile_is_refused_at_approval(
        self, court: Court, cash: CashClient
    ) -> None:
        a, new = court.a, Account.create().address
        rid = recover(cash, court, a.alice.address, new)
        cash.register(a.operator, new, Kind.MERCHANT, 3, 5812, identity("alice"))
        assert_reverts(
            lambda: cash.tx.transact(a.regulator, cash.approve_recovery_call(rid)),
            "WalletAlreadyRegistered",
            new,
        )


def test_the_policy_word_carries_every_flag_and_nothing_else(court: Court, cash: CashClient) -> None:
    """The token's packed read (decoded by hand from the wallet's slot) sets exactly the bits of the
    record: tier limits, registered, frozen, cap-exempt, retired (243), held (244); the category and
    the held amount itself never leak into it."""
    a, zero = court.a, "0x" + "00" * 20
    tier2 = 500_000_00 | 50_000_00 << 80 | 100_000_00 << 160
    tier3 = 20_000_00 | 5_000_00 << 80 | 10_000_00 << 160

    def word(wallet: str) -> int:
        return int(cash.registry.functions.movementPolicies(wallet, zero).call()[0])

    cash.freeze(a.regulator, a.gym.address)  # a merchant, category 7997
    cash.grant_cap_exemption(a.admin, a.gym.address)
    assert word(a.gym.address) == tier2 | 1 << 240 | 1 << 241 | 1 << 242
    assert word(a.alice.address) == tier3 | 1 << 240
    held = hold(cash, a.regulator, a.alice.address, 2**127)
    assert word(a.alice.address) == tier3 | 1 << 240 | 1 << 244
    cash.tx.transact(a.regulator, cash.lift_hold_call(a.alice.address, held))
    assert word(a.alice.address) == tier3 | 1 << 240
    rid = recover(cash, court, a.alice.address, Account.create().address)
    cash.tx.transact(a.regulator, cash.approve_recovery_call(rid))
    assert word(a.alice.address) == tier3 | 1 << 240 | 1 << 243
    assert word(a.outsider.address) == 0
