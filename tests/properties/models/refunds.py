"""The merchants' refunds' model (``MerchantRefunds``): a confirmed payment (a bill), recorded once
for refunds, and each refund's exact split between the payer and the voucher part's payee.

A bill is what the services record (``services.common.refunds.Paid``, with a card payment's purse
part made the voucher part by ``with_purses``); the refund's voucher share is counted on the
running total, as the contract does, so a full refund returns exactly the voucher part.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.properties.models.common import Outcome

ZERO = "0x0000000000000000000000000000000000000000"


@dataclass
class Bill:
    kind: str  # "code" (a payment code's payment: a transfer or a voucher spend) or "card"
    ref: str
    pid: bytes  # its id on chain (chain.clients.refunds.payment_id)
    merchant: str
    payer: str
    paid: int
    voucher: int = 0
    voucher_payee: str = ZERO
    recorded: bool = False
    refunded: int = 0
    voucher_refunded: int = 0

    @property
    def left(self) -> int:
        return self.paid - self.refunded

    def split(self, amount: int) -> tuple[int, int]:
        """(cash to the payer, voucher part to its payee) of a refund of ``amount`` now."""
        voucher = (self.refunded + amount) * self.voucher // self.paid - self.voucher_refunded
        return amount - voucher, voucher

    def record_refusal(self, is_merchant: bool) -> Outcome:
        """``record``'s refusals, in its order (the recorder's role aside)."""
        if self.recorded:
            return ("RefundPaymentAlreadyRecorded", (self.pid,))
        if self.paid == 0 or self.voucher > self.paid or (self.voucher > 0 and self.voucher_payee == ZERO):
            return ("RefundInvalidPayment", (self.pid, self.paid, self.voucher))
        if not is_merchant:
            return ("RefundNotMerchantWallet", (self.merchant,))
        return None

    def refund_refusal(self, caller: str, amount: int, ref: bytes, used: bool) -> Outcome:
        """``refund``'s own refusals, in its order (``used``: reference ``ref`` was used already)."""
        if not self.recorded:
            return ("RefundUnknownPayment", (self.pid,))
        if caller != self.merchant:
            return ("RefundNotMerchant", (self.pid, caller))
        if amount == 0:
            return ("RefundZeroAmount", ())
        if used:
            return ("RefundDuplicateReference", (ref,))
        if self.refunded + amount > self.paid:
            return ("RefundExceedsPayment", (self.pid, self.paid, self.refunded, amount))
        return None

    def refund(self, amount: int) -> tuple[int, int]:
        cash, voucher = self.split(amount)
        self.refunded += amount
        self.voucher_refunded += voucher
        return cash, voucher
