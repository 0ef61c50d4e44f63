"""MerchantRefunds: a merchant refunds all or part of a recorded payment, never more in total than
was paid; the voucher share goes back to the programme's issuer, the rest to the payer."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from web3 import Web3

from chain.clients.refunds import RefundsClient, payment_id, refund_ref
from chain.clients.token import CashClient
from chain.manifest import Manifest
from tests.conftest import Actors
from tests.helpers import assert_reverts

BILL = 100_00


@pytest.fixture(scope="session")
def refunds(w3: Web3, manifest: Manifest, cash: CashClient) -> RefundsClient:
    return RefundsClient(w3, manifest, cash.tx)


@dataclass
class Paid:
    a: Actors
    pid: bytes


_refs = iter(range(1, 10**6))


def ref() -> bytes:
    return refund_ref(1, next(_refs))


@pytest.fixture
def paid(registered: Actors, cash: CashClient, refunds: RefundsClient) -> Paid:
    """alice paid the gym a 100-yuan bill (recorded); the gym approved the contract for refunds."""
    a = registered
    cash.mint(a.operator, a.alice.address, 500_00)
    cash.transfer(a.alice, a.gym.address, BILL)
    pid = payment_id("code", 1, "bill-1")
    refunds.record(a.operator, pid, a.gym.address, a.alice.address, BILL)
    refunds.approve(a.gym, 10**9)
    return Paid(a, pid)


class TestRecord:
    def test_the_recorder_records_a_payment_once(self, paid: Paid, refunds: RefundsClient) -> None:
        a = paid.a
        p = refunds.payment(paid.pid)
        assert (p.merchant, p.payer, p.paid, p.voucher_part, p.refunded) == (
            a.gym.address,
            a.alice.address,
            BILL,
            0,
            0,
        )
        assert_reverts(
            lambda: refunds.record(a.operator, paid.pid, a.gym.address, a.alice.address, BILL),
            "RefundPaymentAlreadyRecorded",
            paid.pid,
        )

    def test_reverts_for_a_caller_without_the_recorder_role(
        self, registered: Actors, refunds: RefundsClient
    ) -> None:
        a = registered
        pid = payment_id("code", 1, "x")
        assert_reverts(
            lambda: refunds.record(a.gym, pid, a.gym.address, a.alice.address, 1),
            "AccessControlUnauthorizedAccount",
        )

    def test_reverts_for_a_voucher_part_above_the_bill_or_a_non_merchant(
        self, registered: Actors, refunds: RefundsClient
    ) -> None:
        a = registered
        pid = payment_id("code", 1, "y")
        assert_reverts(
            lambda: refunds.record(a.operator, pid, a.gym.address, a.alice.address, 10, 11, a.bob.address),
            "RefundInvalidPayment",
            pid,
            10,
            11,
        )
        assert_reverts(
            lambda: refunds.record(a.operator, pid, a.bob.address, a.alice.address, 10),
            "RefundNotMerchantWallet",
            a.bob.address,
        )


class TestRefund:
    def test_partial_refunds_add_up_to_the_bill_and_no_further(
        self, paid: Paid, cash: CashClient, refunds: RefundsClient
    ) -> None:
        a = paid.a
        before = cash.balance_of(a.alice.address)
        r = refunds.refund(a.gym, paid.pid, 30_00, ref())
        (e,) = r.named("Refunded")
        assert (e["amount"], e["cash"], e["voucher"], e["refundedTotal"], e["payer"]) == (
            30_00,
            30_00,
            0,
            30_00,
            a.alice.address,
        )
        refunds.refund(a.gym, paid.pid, 70_00, ref())
        assert cash.balance_of(a.alice.address) == before + BILL
        assert refunds.payment(paid.pid).refunded == BILL
        assert_reverts(
            lambda: refunds.refund(a.gym, paid.pid, 1, ref()),
            "RefundExceedsPayment",
            paid.pid,
            BILL,
            BILL,
            1,
        )

    def test_reverts_when_one_refund_asks_more_than_the_rest(
        self, paid: Paid, refunds: RefundsClient
    ) -> None:
        a = paid.a
        refunds.refund(a.gym, paid.pid, 60_00, ref())
        assert_reverts(
            lambda: refunds.refund(a.gym, paid.pid, 40_01, ref()),
            "RefundExceedsPayment",
            paid.pid,
            BILL,
            60_00,
            40_01,
        )

    def test_reverts_for_another_caller_than_the_merchant(self, paid: Paid, refunds: RefundsClient) -> None:
        a = paid.a
        assert_reverts(
            lambda: refunds.refund(a.alice, paid.pid, 1, ref()),
            "RefundNotMerchant",
            paid.pid,
            a.alice.address,
        )

    def test_reverts_for_an_unknown_payment_a_zero_amount_and_a_used_reference(
        self, paid: Paid, refunds: RefundsClient
    ) -> None:
        a = paid.a
        unknown = payment_id("code", 1, "nope")
        assert_reverts(lambda: refunds.refund(a.gym, unknown, 1, ref()), "RefundUnknownPayment", unknown)
        assert_reverts(lambda: refunds.refund(a.gym, paid.pid, 0, ref()), "RefundZeroAmount")
        used = ref()
        refunds.refund(a.gym, paid.pid, 1, used)
        assert_reverts(lambda: refunds.refund(a.gym, paid.pid, 1, used), "RefundDuplicateReference", used)

    def test_a_frozen_payer_is_refused_by_the_token_and_nothing_is_counted(
        self, paid: Paid, cash: CashClient, refunds: RefundsClient
    ) -> None:
        a = paid.a
        cash.freeze(a.regulator, a.alice.address)
        assert_reverts(lambda: refunds.refund(a.gym, paid.pid, 10_00, ref()), "WalletFrozen", a.alice.address)
        assert refunds.payment(paid.pid).refunded == 0
        cash.unfreeze(a.regulator, a.alice.address)
        refunds.refund(a.gym, paid.pid, 10_00, ref())
        assert refunds.payment(paid.pid).refunded == 10_00

    def test_without_the_merchants_allowance_nothing_moves(self, paid: Paid, refunds: RefundsClient) -> None:
        a = paid.a
        refunds.approve(a.gym, 0)
        assert_reverts(
            lambda: refunds.refund(a.gym, paid.pid, 5, ref()),
            "ERC20InsufficientAllowance",
            refunds.address,
            0,
            5,
        )


class TestVoucherShare:
    def test_the_voucher_share_returns_to_the_programme_in_proportion_without_drift(
        self, registered: Actors, cash: CashClient, refunds: RefundsClient
    ) -> None:
        """A 100.00 bill, 33.33 of it from a voucher: three refunds of 33.33, 33.33, 33.34 give the
        programme back exactly 33.33 and the payer exactly 66.67."""
        a = registered
        cash.mint(a.operator, a.gym.address, 500_00)
        pid = payment_id("code", 1, "voucher-bill")
        refunds.record(a.operator, pid, a.gym.address, a.alice.address, BILL, 33_33, a.bob.address)
        refunds.approve(a.gym, 10**9)
        alice, bob = cash.balance_of(a.alice.address), cash.balance_of(a.bob.address)
        parts = [
            refunds.refund(a.gym, pid, amount, ref()).named("Refunded")[0] for amount in (33_33, 33_33, 33_34)
        ]
        assert [(e["cash"], e["voucher"]) for e in parts] == [(22_23, 11_10), (22_22, 11_11), (22_22, 11_12)]
        assert cash.balance_of(a.bob.address) - bob == 33_33
        assert cash.balance_of(a.alice.address) - alice == 66_67
        p = refunds.payment(pid)
        assert (p.refunded, p.voucher_refunded) == (BILL, 33_33)
        assert refunds.total_refunded() >= BILL
