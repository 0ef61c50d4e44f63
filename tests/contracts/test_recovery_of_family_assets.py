"""Recovery of family-held assets: what a family holds for a wallet whose key was lost (vouchers,
prepaid packages, quick-pay mandates, cards, disbursement exceptions and unclaimed Merkle leaves)
moves, after the registry approved the recovery, to the wallet's registered successor and nowhere
else, once, by anyone's call; each move is an event, no cash moves and no family total changes.

The shared refusals (`contracts/token/IWalletRegistry.sol`): `RecoveryNotRetired(wallet)` for a
wallet not retired, `RecoveryWrongSuccessor(wallet, successor, given)` for any other destination,
`RecoveryNothingHeld(wallet)` when the wallet holds nothing there (a second move)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain.accounts import dev_account
from chain.clients.disburse import DisbursementClient, Officer, Row, batch_id, merkle_tree, purpose_tag
from chain.clients.hardwallet import (
    CardForm,
    HardWalletClient,
    Outcome,
    QuickPayClient,
    RejectReason,
    order_ref,
)
from chain.clients.prepaid import PackageStatus, PrepaidClient
from chain.clients.token import CashClient, Kind
from chain.clients.vouchers import MCC_GROCERY, Grant, Mode, Terms, VoucherClient, programme_name
from tests.conftest import Actors, identity
from tests.helpers import assert_reverts
from wallets.hardwallet import HardWallet
from wallets.terminal import Terminal

DAY = 86_400
EVIDENCE = Web3.keccak(text="in-branch identity check, file 78")


def now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


@dataclass(frozen=True)
class Lost:
    """alice (tier 3, 5,000 yuan) holds something in every family; `new` will replace her."""

    a: Actors
    new: LocalAccount
    office: LocalAccount  # an institution: voucher issuer and payroll payer


@pytest.fixture
def lost(registered: Actors, cash: CashClient) -> Lost:
    a = registered
    office = dev_account(8)
    cash.register(a.operator, office.address, Kind.INSTITUTION, 1, 0, identity("office"))
    cash.mint(a.operator, office.address, 100_000_00)
    cash.mint(a.operator, a.alice.address, 5_000_00)
    grocer = Account.create().address
    cash.register(a.operator, grocer, Kind.MERCHANT, 2, MCC_GROCERY, identity("grocer"))
    return Lost(a, dev_account(10), office)  # a funded key: the successor signs in one test


def retire(cash: CashClient, lost: Lost) -> None:
    """The operator proposes alice's recovery to `new`, the regulator approves it."""
    a = lost.a
    result = cash.tx.transact(
        a.operator, cash.propose_recovery_call(a.alice.address, lost.new.address, EVIDENCE)
    )
    rid = int(result.named("RecoveryProposed")[0]["id"])
    cash.tx.transact(a.regulator, cash.approve_recovery_call(rid))


def refusals(call, lost: Lost, cash: CashClient) -> None:  # type: ignore[no-untyped-def]
    """`call(lost_wallet, successor)` is refused before the recovery, to a wrong address after it."""
    a, alice, new = lost.a, lost.a.alice.address, lost.new.address
    assert_reverts(lambda: cash.tx.transact(a.outsider, call(alice, new)), "RecoveryNotRetired", alice)
    retire(cash, lost)
    for wrong in (a.bob.address, a.outsider.address, alice):
        assert_reverts(
            lambda w=wrong: cash.tx.transact(a.outsider, call(alice, w)),  # type: ignore[misc]
            "RecoveryWrongSuccessor",
            alice,
            new,
            wrong,
        )


class TestVouchers:
    def test_the_holding_moves_once_to_the_successor_and_nothing_else_changes(
        self, w3: Web3, lost: Lost, cash: CashClient, vouchers: VoucherClient
    ) -> None:
        a, alice, new = lost.a, lost.a.alice.address, lost.new.address
        t = now(w3)
        terms = Terms(programme_name("spring"), Mode.GRANT_LIST, t, t + 30 * DAY, 1_000_00, 200_00)
        pid, _ = vouchers.create(lost.office, terms, [MCC_GROCERY])
        vouchers.grant(lost.office, pid, [Grant(alice, 200_00), Grant(a.bob.address, 50_00)])
        before, held = vouchers.totals(pid), vouchers.total_held()
        refusals(lambda lw, s: vouchers.recover_grants_call(pid, lw, s), lost, cash)
        result = cash.tx.transact(a.outsider, vouchers.recover_grants_call(pid, alice, new))
        assert result.named("GrantsRecovered")[0].args == {
            "id": pid,
            "lost": alice,
            "successor": new,
            "balance": 200_00,
            "granted": 200_00,
        }
        assert vouchers.balance(pid, alice) == 0 and vouchers.balance(pid, new) == 200_00
        assert vouchers.holding(pid, new).granted == 200_00
        after = vouchers.totals(pid)
        assert (after.budget, after.granted, after.outstanding) == (
            before.budget,
            before.granted,
            before.outstanding,
        )
        assert vouchers.total_held() == held == cash.balance_of(vouchers.address)
        assert vouchers.programme(pid).holders == 2
        assert_reverts(
            lambda: cash.tx.transact(a.outsider, vouchers.recover_grants_call(pid, alice, new)),
            "RecoveryNothingHeld",
            alice,
        )
        # The moved grant counts against the successor's per-person cap.
        assert_reverts(
            lambda: vouchers.grant(lost.office, pid, [Grant(new, 1)]),
            "VoucherOverPersonCap",
            pid,
            new,
            200_00,
            200_01,
        )

    def test_unknown_programme(self, lost: Lost, cash: CashClient, vouchers: VoucherClient) -> None:
        a = lost.a
        assert_reverts(
            lambda: cash.tx.transact(
                a.outsider, vouchers.recover_grants_call(99, a.alice.address, lost.new.address)
            ),
            "VoucherUnknownProgramme",
            99,
        )


class TestPrepaid:
    def test_an_open_package_moves_once_and_refunds_to_the_successor(
        self, w3: Web3, lost: Lost, cash: CashClient, prepaid: PrepaidClient
    ) -> None:
        a, alice, new = lost.a, lost.a.alice.address, lost.new.address
        prepaid.enrol(a.regulator, a.gym.address, 10_000)
        pid, _ = prepaid.prepay(a.alice, a.gym.address, 10, 100_00, now(w3) + 30 * DAY)
        held = prepaid.totals()
        refusals(lambda lw, s: prepaid.recover_package_call(pid, lw, s), lost, cash)
        assert_reverts(lambda: prepaid.consume(a.alice, pid, 1), "PrepaidConsumerFrozen", pid, alice)
        result = cash.tx.transact(a.outsider, prepaid.recover_package_call(pid, alice, new))
        assert result.named("PackageRecovered")[0].args == {
            "id": pid,
            "lost": alice,
            "successor": new,
            "held": 1_000_00,
        }
        assert prepaid.package(pid).consumer == new and prepaid.totals() == held
        assert_reverts(
            lambda: cash.tx.transact(a.outsider, prepaid.recover_package_call(pid, alice, new)),
            "RecoveryNothingHeld",
            alice,
        )
        prepaid.close_merchant(a.regulator, a.gym.address)
        prepaid.refund(a.outsider, pid)
        assert cash.balance_of(new) == 4_000_00 + 1_000_00 and cash.balance_of(alice) == 0

    def test_a_closed_package_is_not_moved(
        self, w3: Web3, lost: Lost, cash: CashClient, prepaid: PrepaidClient
    ) -> None:
        a = lost.a
        prepaid.enrol(a.regulator, a.gym.address, 10_000)
        pid, _ = prepaid.prepay(a.alice, a.gym.address, 1, 100_00, now(w3) + 30 * DAY)
        prepaid.consume(a.alice, pid, 1)
        assert prepaid.package(pid).status is PackageStatus.CONSUMED
        retire(cash, lost)
        assert_reverts(
            lambda: cash.tx.transact(
                a.outsider, prepaid.recover_package_call(pid, a.alice.address, lost.new.address)
            ),
            "PrepaidPackageClosed",
            pid,
        )


class TestQuickPay:
    def test_a_mandate_moves_once_and_pulls_from_the_successor(
        self, w3: Web3, lost: Lost, cash: CashClient, quickpay: QuickPayClient
    ) -> None:
        a, alice, new = lost.a, lost.a.alice.address, lost.new.address
        mid, _ = quickpay.grant(a.alice, a.gym.address, 50_00, 100_00, now(w3) + 30 * DAY)
        refusals(lambda lw, s: quickpay.recover_mandate_call(mid, lw, s), lost, cash)
        result = cash.tx.transact(a.outsider, quickpay.recover_mandate_call(mid, alice, new))
        assert result.named("MandateRecovered")[0].args == {"id": mid, "lost": alice, "successor": new}
        m = quickpay.mandate(mid)
        assert (m.holder, m.merchant, m.per_payment_cap, m.daily_cap) == (new, a.gym.address, 50_00, 100_00)
        assert_reverts(
            lambda: cash.tx.transact(a.outsider, quickpay.recover_mandate_call(mid, alice, new)),
            "RecoveryNothingHeld",
            alice,
        )
        quickpay.approve(lost.new, 100_00)  # the successor's own allowance, with its own key
        quickpay.pull(a.gym, mid, 30_00, order_ref("o-1"))
        assert cash.balance_of(new) == 5_000_00 - 30_00

    def test_a_revoked_mandate_is_not_moved(
        self, w3: Web3, lost: Lost, cash: CashClient, quickpay: QuickPayClient
    ) -> None:
        a = lost.a
        mid, _ = quickpay.grant(a.alice, a.gym.address, 50_00, 100_00, now(w3) + 30 * DAY)
        quickpay.revoke(a.alice, mid)
        retire(cash, lost)
        assert_reverts(
            lambda: cash.tx.transact(
                a.outsider, quickpay.recover_mandate_call(mid, a.alice.address, lost.new.address)
            ),
            "QuickPayRevoked",
            mid,
        )


class TestCards:
    def test_a_card_moves_once_and_its_waiting_payments_settle_from_the_successor(
        self, w3: Web3, lost: Lost, cash: CashClient, hardwallet: HardWalletClient
    ) -> None:
        a, alice, new = lost.a, lost.a.alice.address, lost.new.address
        card = HardWallet(bytes.fromhex("a3" * 32), hardwallet.domain, form=CardForm.CARD)
        hardwallet.register_card(a.operator, card.address, alice, CardForm.CARD)
        hardwallet.load(a.alice, card.address, 500_00)
        card.credit(500_00)
        total = hardwallet.contract.functions.totalReserve().call()
        refusals(lambda lw, s: hardwallet.recover_card_call(card.address, lw, s), lost, cash)
        terminal = Terminal(a.gym.address, hardwallet.domain, clock=lambda: now(w3))
        terminal.charge(card, 20_00)
        refused = terminal.upload_to_chain(hardwallet, a.operator)[0]
        assert (refused.outcome, refused.reason) == (Outcome.REJECTED, RejectReason.HOLDER_REFUSED)
        result = cash.tx.transact(a.outsider, hardwallet.recover_card_call(card.address, alice, new))
        assert result.named("CardRecovered")[0].args == {
            "card": card.address,
            "lost": alice,
            "successor": new,
            "reserve": 500_00,
        }
        assert hardwallet.card(card.address).holder == new
        assert hardwallet.contract.functions.totalReserve().call() == total
        assert_reverts(
            lambda: cash.tx.transact(a.outsider, hardwallet.recover_card_call(card.address, alice, new)),
            "RecoveryNothingHeld",
            alice,
        )
        assert terminal.upload_to_chain(hardwallet, a.operator)[0].outcome is Outcome.SETTLED
        assert cash.balance_of(a.gym.address) == 20_00


@dataclass(frozen=True)
class Batches:
    bid: bytes
    merkle: bytes
    proof: list[bytes]


def payroll(w3: Web3, lost: Lost, cash: CashClient, disburse: DisbursementClient) -> Batches:
    """An explicit batch paid while alice is retired (her row an exception) and a Merkle batch
    whose leaf 0 is alice's, unclaimed."""
    a, office, alice = lost.a, lost.office, lost.a.alice.address
    checker = dev_account(9)
    disburse.set_officer(office, checker.address, Officer.CHECKER)
    tag = purpose_tag("salary")
    rows = [Row(alice, 300_00), Row(a.bob.address, 100_00)]
    bid = batch_id(office.address, "july")
    disburse.create_explicit(office, "july", office.address, tag, now(w3) + 30 * DAY, 400_00)
    disburse.add_rows(office, bid, rows)
    cash.approve(office, disburse.contract.address, 400_00)
    disburse.approve(checker, bid)
    leaves = [Row(alice, 70_00), Row(a.bob.address, 30_00)]
    merkle = batch_id(office.address, "subsidy")
    tree = merkle_tree(merkle, leaves)
    disburse.create_merkle(office, "subsidy", office.address, tag, now(w3) + 30 * DAY, 100_00, tree.root, 2)
    cash.approve(office, disburse.contract.address, 100_00)
    disburse.approve(checker, merkle)
    return Batches(bid, merkle, tree.proof(0))


class TestDisbursement:
    def test_an_exception_owed_to_the_lost_wallet_is_owed_to_the_successor_once(
        self, w3: Web3, lost: Lost, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        a, alice, new = lost.a, lost.a.alice.address, lost.new.address
        b = payroll(w3, lost, cash, disburse)
        retire(cash, lost)
        disburse.pay_chunk(a.outsider, b.bid, 0, [Row(alice, 300_00), Row(a.bob.address, 100_00)])
        assert disburse.exception(b.bid, 0) == Row(alice, 300_00)
        outstanding = disburse.batch(b.bid).outstanding
        for wrong in (a.bob.address, alice):
            assert_reverts(
                lambda w=wrong: cash.tx.transact(
                    a.outsider, disburse.recover_exception_call(b.bid, 0, alice, w)
                ),  # type: ignore[misc]
                "RecoveryWrongSuccessor",
                alice,
                new,
                wrong,
            )
        assert_reverts(
            lambda: cash.tx.transact(
                a.outsider, disburse.recover_exception_call(b.bid, 1, a.bob.address, new)
            ),
            "RecoveryNotRetired",
            a.bob.address,
        )
        result = cash.tx.transact(a.outsider, disburse.recover_exception_call(b.bid, 0, alice, new))
        assert result.named("PayoutRecovered")[0].args == {
            "id": b.bid,
            "index": 0,
            "lost": alice,
            "successor": new,
            "amount": 300_00,
            "leaf": False,
        }
        assert disburse.exception(b.bid, 0) == Row(new, 300_00)
        assert disburse.batch(b.bid).outstanding == outstanding
        assert_reverts(
            lambda: cash.tx.transact(a.outsider, disburse.recover_exception_call(b.bid, 0, alice, new)),
            "RecoveryNothingHeld",
            alice,
        )
        disburse.retry_exception(a.outsider, b.bid, 0)
        assert cash.balance_of(new) == 5_000_00 + 300_00

    def test_an_unclaimed_leaf_of_the_lost_wallet_becomes_the_successors_exception_once(
        self, w3: Web3, lost: Lost, cash: CashClient, disburse: DisbursementClient
    ) -> None:
        a, alice, new = lost.a, lost.a.alice.address, lost.new.address
        b = payroll(w3, lost, cash, disburse)
        leaf = Row(alice, 70_00)
        refusals(
            lambda lw, s: disburse.recover_leaf_call(b.merkle, 0, Row(lw, 70_00), b.proof, s), lost, cash
        )
        result = cash.tx.transact(a.outsider, disburse.recover_leaf_call(b.merkle, 0, leaf, b.proof, new))
        assert result.named("PayoutRecovered")[0].args == {
            "id": b.merkle,
            "index": 0,
            "lost": alice,
            "successor": new,
            "amount": 70_00,
            "leaf": True,
        }
        assert disburse.exception(b.merkle, 0) == Row(new, 70_00) and disburse.is_claimed(b.merkle, 0)
        assert_reverts(
            lambda: cash.tx.transact(a.outsider, disburse.recover_leaf_call(b.merkle, 0, leaf, b.proof, new)),
            "DisburseAlreadyClaimed",
            b.merkle,
            0,
        )
        disburse.retry_exception(a.outsider, b.merkle, 0)
        assert cash.balance_of(new) == 5_000_00 + 70_00
        assert disburse.batch(b.merkle).outstanding == 30_00
