"""Typed client of ``MerchantRefunds``: the operator records a payment, its merchant refunds all or
part of it (never more in total than was paid: ``RefundExceedsPayment`` on chain)."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from web3.contract.contract import ContractFunction

from chain.clients.base import ContractClient
from chain.sender import TxResult

ZERO = "0x0000000000000000000000000000000000000000"


def payment_id(kind: str, chain_id: int, ref: str) -> bytes:
    """The on-chain id of a payment: ``kind`` (``code``, ``card``) and the operator's own reference
    (a code payment's id and transaction), bound to the chain."""
    return keccak(f"xcpay:payment:{kind}:{chain_id}:{ref}".encode())


def refund_ref(chain_id: int, refund_id: int) -> bytes:
    """The on-chain reference of a refund (used once, ever)."""
    return keccak(f"xcpay:refund:{chain_id}:{refund_id}".encode())


@dataclass(frozen=True)
class RecordedPayment:
    merchant: str
    payer: str
    voucher_payee: str
    paid: int
    voucher_part: int
    refunded: int
    voucher_refunded: int


class RefundsClient(ContractClient):
    """Payments recorded for refunds, and the merchants' refunds (``MerchantRefunds``)."""

    CONTRACT = "MerchantRefunds"

    # -- calls (unsent: the services send them through Operations, tests through ``tx``) ----

    def record_call(
        self,
        pid: bytes,
        merchant: str,
        payer: str,
        paid: int,
        voucher_part: int = 0,
        voucher_payee: str = ZERO,
    ) -> ContractFunction:
        """The recorder (operator) records what the chain says a payment moved."""
        return self.contract.functions.record(pid, merchant, payer, paid, voucher_part, voucher_payee)

    def refund_call(self, pid: bytes, amount: int, ref: bytes) -> ContractFunction:
        """The signer (the payment's merchant) refunds ``amount``; needs its allowance to the contract."""
        return self.contract.functions.refund(pid, amount, ref)

    def approve_call(self, amount: int) -> ContractFunction:
        return self.cash.functions.approve(self.contract.address, amount)

    # -- sent here (tests, scripts) ---------------------------------------------------------

    def record(
        self,
        recorder: LocalAccount,
        pid: bytes,
        merchant: str,
        payer: str,
        paid: int,
        voucher_part: int = 0,
        voucher_payee: str = ZERO,
    ) -> TxResult:
        return self.tx.transact(
            recorder, self.record_call(pid, merchant, payer, paid, voucher_part, voucher_payee)
        )

    def approve(self, merchant: LocalAccount, amount: int) -> TxResult:
        return self.tx.transact(merchant, self.approve_call(amount))

    def refund(self, merchant: LocalAccount, pid: bytes, amount: int, ref: bytes) -> TxResult:
        return self.tx.transact(merchant, self.refund_call(pid, amount, ref))

    # -- views -----------------------------------------------------------------------------

    def payment(self, pid: bytes) -> RecordedPayment:
        raw = self.tx.call(self.contract.functions.paymentOf(pid))
        return RecordedPayment(raw[0], raw[1], raw[2], *(int(v) for v in raw[3:]))

    def is_recorded(self, pid: bytes) -> bool:
        return bool(self.tx.call(self.contract.functions.isRecorded(pid)))

    def total_refunded(self) -> int:
        return int(self.tx.call(self.contract.functions.totalRefunded()))
