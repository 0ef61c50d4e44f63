"""Typed client for prepaid-fund supervision (contracts/prepaid/PrepaidEscrow.sol)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from chain.clients.base import DOMAIN_FIELDS, ContractClient
from chain.sender import TxResult


class PackageStatus(IntEnum):
    NONE = 0
    OPEN = 1
    CONSUMED = 2
    CANCELLED = 3
    REFUNDED = 4


@dataclass(frozen=True)
class Package:
    id: int
    consumer: str
    merchant: str
    status: PackageStatus
    expires_at: int
    sessions: int
    used: int
    nonce: int
    unit_price: int
    cancellation_fee: int
    deposited: int
    released: int
    refunded: int
    held: int


@dataclass(frozen=True)
class MerchantEnrolment:
    enrolled: bool
    closed: bool
    supervised_bps: int
    ceiling: int


class PrepaidClient(ContractClient):
    """The PrepaidEscrow contract: ``*_call`` methods build a write as a ``ContractFunction`` for
    whichever pipeline sends it (the services' Operations, or :meth:`Transactor.transact` in the
    methods below, used by tests, deploy and scripts); reads return typed values."""

    CONTRACT = "PrepaidEscrow"

    @property
    def escrow(self) -> Contract:
        """The PrepaidEscrow contract (``contract``), by the name callers knew it."""
        return self.contract

    # -- calls (one per write; nothing is sent here) ----------------------------------------

    def enrol_call(self, merchant: str, supervised_bps: int, ceiling: int = 0) -> ContractFunction:
        return self.contract.functions.enrolMerchant(merchant, supervised_bps, ceiling)

    def close_merchant_call(self, merchant: str) -> ContractFunction:
        return self.contract.functions.closeMerchant(merchant)

    def prepay_call(
        self, merchant: str, sessions: int, unit_price: int, expires_at: int, cancellation_fee: int = 0
    ) -> ContractFunction:
        """The consumer's prepayment; the escrow pulls ``sessions * unit_price`` (allowance first)."""
        return self.contract.functions.prepay(merchant, sessions, unit_price, expires_at, cancellation_fee)

    def consume_call(self, package_id: int, sessions: int) -> ContractFunction:
        return self.contract.functions.consume(package_id, sessions)

    def cancel_call(self, package_id: int) -> ContractFunction:
        return self.contract.functions.cancel(package_id)

    def claim_call(self, package_id: int, sessions: int, deadline: int, signature: bytes) -> ContractFunction:
        return self.contract.functions.claim(package_id, sessions, deadline, signature)

    def refund_call(self, package_id: int) -> ContractFunction:
        return self.contract.functions.refund(package_id)

    def refund_batch_call(self, package_ids: list[int]) -> ContractFunction:
        return self.contract.functions.refundBatch(package_ids)

    def recover_package_call(self, package_id: int, lost: str, successor: str) -> ContractFunction:
        """Anyone: open package ``package_id`` of the retired ``lost`` wallet becomes its registered
        successor's (``RecoveryWrongSuccessor`` for any other address, ``RecoveryNothingHeld`` twice)."""
        return self.contract.functions.recoverPackage(package_id, lost, successor)

    # -- regulator -------------------------------------------------------------------------

    def enrol(
        self, regulator: LocalAccount, merchant: str, supervised_bps: int, ceiling: int = 0
    ) -> TxResult:
        return self.tx.transact(regulator, self.enrol_call(merchant, supervised_bps, ceiling))

    def close_merchant(self, regulator: LocalAccount, merchant: str) -> TxResult:
        return self.tx.transact(regulator, self.close_merchant_call(merchant))

    # -- consumer --------------------------------------------------------------------------

    def approve(self, consumer: LocalAccount, amount: int) -> TxResult:
        return self.tx.transact(consumer, self.cash.functions.approve(self.contract.address, amount))

    def prepay(
        self,
        consumer: LocalAccount,
        merchant: str,
        sessions: int,
        unit_price: int,
        expires_at: int,
        cancellation_fee: int = 0,
        *,
        approve: bool = True,
    ) -> tuple[int, TxResult]:
        """Approve the total (unless ``approve=False``) and prepay; returns (package id, result)."""
        if approve:
            self.approve(consumer, sessions * unit_price)
        fn = self.prepay_call(merchant, sessions, unit_price, expires_at, cancellation_fee)
        result = self.tx.transact(consumer, fn)
        return int(result.named("PackagePrepaid")[0]["id"]), result

    def consume(self, consumer: LocalAccount, package_id: int, sessions: int) -> TxResult:
        return self.tx.transact(consumer, self.consume_call(package_id, sessions))

    def cancel(self, consumer: LocalAccount, package_id: int) -> TxResult:
        return self.tx.transact(consumer, self.cancel_call(package_id))

    # -- merchant --------------------------------------------------------------------------

    def claim(
        self, merchant: LocalAccount, package_id: int, sessions: int, deadline: int, signature: bytes
    ) -> TxResult:
        return self.tx.transact(merchant, self.claim_call(package_id, sessions, deadline, signature))

    def sign_consumption(
        self,
        consumer_key: LocalAccount | bytes,
        package_id: int,
        sessions: int,
        nonce: int,
        deadline: int,
        *,
        chain_id: int | None = None,
        verifying_contract: str | None = None,
    ) -> bytes:
        """The consumer's EIP-712 ``Consume`` signature (phone or card at the counter)."""
        typed = {
            "types": {
                "EIP712Domain": DOMAIN_FIELDS,
                "Consume": [
                    {"name": "packageId", "type": "uint256"},
                    {"name": "sessions", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ],
            },
            "primaryType": "Consume",
            "domain": {
                "name": "XcpayPrepaidEscrow",
                "version": "1",
                "chainId": chain_id if chain_id is not None else self.tx.chain_id,
                "verifyingContract": verifying_contract or self.contract.address,
            },
            "message": {"packageId": package_id, "sessions": sessions, "nonce": nonce, "deadline": deadline},
        }
        key = consumer_key.key if isinstance(consumer_key, LocalAccount) else consumer_key
        return bytes(Account.sign_message(encode_typed_data(full_message=typed), key).signature)

    # -- anyone ----------------------------------------------------------------------------

    def refund(self, keeper: LocalAccount, package_id: int) -> TxResult:
        return self.tx.transact(keeper, self.refund_call(package_id))

    def refund_batch(self, keeper: LocalAccount, package_ids: list[int]) -> TxResult:
        return self.tx.transact(keeper, self.refund_batch_call(package_ids))

    # -- views -----------------------------------------------------------------------------

    def package(self, package_id: int) -> Package:
        raw = self.tx.call(self.contract.functions.packageOf(package_id))
        return Package(package_id, raw[0], raw[1], PackageStatus(raw[2]), *(int(v) for v in raw[3:]))

    def merchant(self, merchant: str) -> MerchantEnrolment:
        e, c, bps, ceiling = self.tx.call(self.contract.functions.merchantOf(merchant))
        return MerchantEnrolment(bool(e), bool(c), int(bps), int(ceiling))

    def packages_of(self, merchant: str, offset: int = 0, limit: int = 100) -> list[int]:
        return [int(i) for i in self.tx.call(self.contract.functions.packagesOf(merchant, offset, limit))]

    def package_count_of(self, merchant: str) -> int:
        return int(self.tx.call(self.contract.functions.packageCountOf(merchant)))

    def totals(self) -> dict[str, int]:
        f = self.contract.functions
        return {
            "deposited": int(self.tx.call(f.totalDeposited())),
            "released": int(self.tx.call(f.totalReleased())),
            "refunded": int(self.tx.call(f.totalRefunded())),
            "held": int(self.tx.call(f.totalHeld())),
        }
