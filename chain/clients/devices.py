"""Typed client for unattended devices (contracts/devices/DevicePayments.sol): vending machines'
pre-authorisations (a card signs a maximum, the machine completes with the real amount or releases
it) and recycling bins' payouts from a programme's budget.

The EIP-712 ``PreAuth`` a card signs is defined here, once: its type string, its domain (name
``XcpayDevices``, version, chain id, the DevicePayments contract) and its digest; the contract
checks the same digest (``DevicePayments.preAuthDigest``). :meth:`wallets.hardwallet.HardWallet.
sign_preauth` signs it inside the card with the card's next counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_utils import to_checksum_address
from web3.contract.contract import ContractFunction

from chain.clients.base import ContractClient, Eip712Domain
from chain.sender import TxResult

DOMAIN_NAME = "XcpayDevices"
DOMAIN_VERSION = "1"
PREAUTH_TYPE = "PreAuth(address card,address merchant,uint256 maxAmount,uint64 counter,uint64 time)"
PREAUTH_TYPEHASH = keccak(PREAUTH_TYPE.encode())


class PreAuthStatus(IntEnum):
    """Mirrors ``DevicePayments.PreAuthStatus``."""

    NONE = 0
    OPEN = 1
    COMPLETED = 2
    RELEASED = 3


@dataclass(frozen=True)
class DeviceDomain(Eip712Domain):
    """The EIP-712 domain of pre-authorisations: one chain, one DevicePayments contract."""

    NAME = DOMAIN_NAME
    VERSION = DOMAIN_VERSION


@dataclass(frozen=True)
class PreAuthMessage:
    """What a card signs at a vending machine: the card, the machine's merchant, the maximum (fen),
    the card's counter and the machine's clock."""

    card: str
    merchant: str
    max_amount: int
    counter: int
    time: int

    def digest(self, domain: DeviceDomain) -> bytes:
        struct = keccak(
            encode(
                ["bytes32", "address", "address", "uint256", "uint64", "uint64"],
                [PREAUTH_TYPEHASH, self.card, self.merchant, self.max_amount, self.counter, self.time],
            )
        )
        return keccak(b"\x19\x01" + domain.separator() + struct)


@dataclass(frozen=True)
class SignedPreAuth:
    message: PreAuthMessage
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        m = self.message
        return {
            "card": m.card,
            "merchant": m.merchant,
            "max_amount_fen": m.max_amount,
            "counter": m.counter,
            "time": m.time,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignedPreAuth:
        message = PreAuthMessage(
            to_checksum_address(data["card"]),
            to_checksum_address(data["merchant"]),
            int(data["max_amount_fen"]),
            int(data["counter"]),
            int(data["time"]),
        )
        return cls(message, bytes.fromhex(str(data["signature"]).removeprefix("0x")))


def sign_preauth(private_key: bytes, message: PreAuthMessage, domain: DeviceDomain) -> SignedPreAuth:
    """Sign ``message`` with a raw secp256k1 key (inside the card simulator; tests play forgers)."""
    signed = Account.unsafe_sign_hash(message.digest(domain), private_key)
    return SignedPreAuth(message, bytes(signed.signature))


def recycling_ref(reference: str) -> bytes:
    """A bin's reference (its own drop number) as the bytes32 a payout carries."""
    return keccak(f"xcpay:recycling:{reference}".encode())


@dataclass(frozen=True)
class PreAuth:
    id: int
    card: str
    counter: int
    expires_at: int
    status: PreAuthStatus
    holder: str
    merchant: str
    authorized: int
    captured: int


@dataclass(frozen=True)
class Programme:
    id: int
    sponsor: str
    closed: bool
    merchant: str
    daily_cap: int
    budget: int
    funded: int
    paid: int


class DeviceClient(ContractClient):
    """Pre-authorisations and recycling payouts (``DevicePayments``); ``address`` is the spender a
    pre-authorisation's or a funding's allowance names."""

    CONTRACT = "DevicePayments"

    @property
    def domain(self) -> DeviceDomain:
        return DeviceDomain(self.tx.chain_id, self.contract.address)

    # -- calls (unsent: the services send them through Operations, tests through ``tx``) ----

    def set_limits_call(self, ttl: int, cap: int) -> ContractFunction:
        return self.contract.functions.setLimits(ttl, cap)

    def create_programme_call(self, sponsor: str, merchant: str, daily_cap: int) -> ContractFunction:
        return self.contract.functions.createProgramme(sponsor, merchant, daily_cap)

    def close_programme_call(self, programme: int) -> ContractFunction:
        return self.contract.functions.closeProgramme(programme)

    def fund_call(self, programme: int, amount: int) -> ContractFunction:
        """The sponsor (signer) funds; needs its allowance to this contract."""
        return self.contract.functions.fund(programme, amount)

    def preauthorize_call(self, signed: SignedPreAuth) -> ContractFunction:
        m = signed.message
        return self.contract.functions.preAuthorize(
            (m.card, m.merchant, m.max_amount, m.counter, m.time, signed.signature)
        )

    def complete_call(self, preauth: int, amount: int) -> ContractFunction:
        return self.contract.functions.complete(preauth, amount)

    def release_call(self, preauth: int) -> ContractFunction:
        return self.contract.functions.release(preauth)

    def payout_call(self, programme: int, to: str, amount: int, ref: bytes) -> ContractFunction:
        return self.contract.functions.payout(programme, to, amount, ref)

    # -- sent here (tests, scripts) ---------------------------------------------------------

    def approve(self, owner: LocalAccount, amount: int) -> TxResult:
        return self.tx.transact(owner, self.cash.functions.approve(self.contract.address, amount))

    def create_programme(
        self, operator: LocalAccount, sponsor: str, merchant: str, daily_cap: int
    ) -> tuple[int, TxResult]:
        result = self.tx.transact(operator, self.create_programme_call(sponsor, merchant, daily_cap))
        return int(result.named("RecyclingProgrammeCreated")[0]["id"]), result

    def fund(self, sponsor: LocalAccount, programme: int, amount: int) -> TxResult:
        return self.tx.transact(sponsor, self.fund_call(programme, amount))

    def close_programme(self, operator: LocalAccount, programme: int) -> TxResult:
        return self.tx.transact(operator, self.close_programme_call(programme))

    def preauthorize(self, device: LocalAccount, signed: SignedPreAuth) -> tuple[int, TxResult]:
        result = self.tx.transact(device, self.preauthorize_call(signed))
        return int(result.named("PreAuthorized")[0]["id"]), result

    def complete(self, device: LocalAccount, preauth: int, amount: int) -> TxResult:
        return self.tx.transact(device, self.complete_call(preauth, amount))

    def release(self, account: LocalAccount, preauth: int) -> TxResult:
        return self.tx.transact(account, self.release_call(preauth))

    def payout(self, device: LocalAccount, programme: int, to: str, amount: int, ref: bytes) -> TxResult:
        return self.tx.transact(device, self.payout_call(programme, to, amount, ref))

    def set_limits(self, operator: LocalAccount, ttl: int, cap: int) -> TxResult:
        return self.tx.transact(operator, self.set_limits_call(ttl, cap))

    # -- views -----------------------------------------------------------------------------

    def preauth(self, preauth: int) -> PreAuth:
        raw = self.tx.call(self.contract.functions.preAuthOf(preauth))
        return PreAuth(
            preauth,
            raw[0],
            int(raw[1]),
            int(raw[2]),
            PreAuthStatus(raw[3]),
            raw[4],
            raw[5],
            int(raw[6]),
            int(raw[7]),
        )

    def preauth_id_of(self, card: str, counter: int) -> int:
        return int(self.tx.call(self.contract.functions.preAuthIdOf(card, counter)))

    def programme(self, programme: int) -> Programme:
        raw = self.tx.call(self.contract.functions.programmeOf(programme))
        return Programme(programme, raw[0], bool(raw[1]), raw[2], *(int(v) for v in raw[3:]))

    def paid_today(self, programme: int, person: str) -> int:
        return int(self.tx.call(self.contract.functions.paidToday(programme, person)))

    def limits(self) -> tuple[int, int]:
        f = self.contract.functions
        return int(self.tx.call(f.preAuthTtl())), int(self.tx.call(f.preAuthCap()))

    def totals(self) -> dict[str, int]:
        f = self.contract.functions
        names = ("Authorized", "Captured", "Released", "Open", "Funded", "PaidOut", "Returned", "Budget")
        return {n.lower(): int(self.tx.call(getattr(f, f"total{n}")())) for n in names}
