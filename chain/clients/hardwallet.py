"""Typed clients for hard-wallet settlement and quick-pay mandates (contracts/hardwallet/).

The EIP-712 ``Payment`` a hard wallet signs is defined here, once: its type string, its domain
(name, version, chain id, settlement contract) and its digest. :mod:`wallets.hardwallet` signs with
:func:`sign_payment`; the contract checks the same digest (``HardWalletSettlement.paymentDigest``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from eth_abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_keys import keys
from eth_keys.exceptions import BadSignature, ValidationError
from eth_utils import to_checksum_address
from web3.contract.contract import ContractFunction

from chain.clients.base import DOMAIN_FIELDS, ContractClient, Eip712Domain
from chain.events import checksum
from chain.sender import TxResult

# The order of secp256k1's group: a signature's r and s lie below it (and s in its lower half).
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# -- the signed payment (shared with wallets.hardwallet) -----------------------------------------

DOMAIN_NAME = "XcpayHardWallet"
DOMAIN_VERSION = "1"
PAYMENT_TYPE = "Payment(address card,address merchant,uint256 amount,uint64 counter,uint64 time)"
PAYMENT_FIELDS = [
    {"name": "card", "type": "address"},
    {"name": "merchant", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "counter", "type": "uint64"},
    {"name": "time", "type": "uint64"},
]
PAYMENT_TYPEHASH = keccak(PAYMENT_TYPE.encode())

MAX_BATCH = 100  # HardWalletSettlement.MAX_BATCH
MAX_CLOCK_SKEW = 3_600  # HardWalletSettlement.MAX_CLOCK_SKEW: how far ahead of the chain a signed time may be


class CardForm(IntEnum):
    """Mirrors ``HardWalletSettlement.Form``."""

    CARD = 0
    SIM = 1
    WEARABLE = 2


class CardStatus(IntEnum):
    """Mirrors ``HardWalletSettlement.Status``."""

    NONE = 0
    ACTIVE = 1
    BLOCKED = 2
    LOST = 3
    CLOSED = 4


class RejectReason(IntEnum):
    """Mirrors ``HardWalletSettlement.Reason``."""

    NONE = 0
    UNKNOWN_CARD = 1
    INVALID_SIGNATURE = 2
    ZERO_AMOUNT = 3
    OVER_OFFLINE_CAP = 4
    CARD_LOST = 5
    GRACE_EXPIRED = 6
    CARD_CLOSED = 7
    MERCHANT_REFUSED = 8  # the merchant cannot receive now (frozen, at its balance cap): retry later
    HOLDER_REFUSED = 9  # the card holder is frozen: settles once the regulator unfreezes the holder
    PAYEE_NOT_MERCHANT = 10  # card payments go to merchant wallets only: final
    # Signed times that cannot be true (the terminal's clock): final, the signature covers the time.
    TIME_IN_FUTURE = 11  # later than the block's time + MAX_CLOCK_SKEW
    TIME_BEFORE_REGISTRATION = 12  # before the card was registered
    TIME_BEFORE_UPLOAD_WINDOW = 13  # a lost card's payment signed before lostAt - uploadWindow


#: Rejections after which uploading the same payment again later may settle it.
RETRYABLE_REASONS = frozenset({RejectReason.MERCHANT_REFUSED, RejectReason.HOLDER_REFUSED})


@dataclass(frozen=True)
class PaymentDomain(Eip712Domain):
    """The EIP-712 domain: binds a signature to one chain and one settlement contract."""

    NAME = DOMAIN_NAME
    VERSION = DOMAIN_VERSION


@dataclass(frozen=True)
class Payment:
    """What a card signs: card, merchant, amount (fen), the card's counter, the terminal's time."""

    card: str
    merchant: str
    amount: int
    counter: int
    time: int

    def struct_hash(self) -> bytes:
        return keccak(
            encode(
                ["bytes32", "address", "address", "uint256", "uint64", "uint64"],
                [PAYMENT_TYPEHASH, self.card, self.merchant, self.amount, self.counter, self.time],
            )
        )

    def digest(self, domain: PaymentDomain) -> bytes:
        """The EIP-712 digest (``\\x19\\x01 || domain separator || struct hash``) the card signs."""
        return keccak(b"\x19\x01" + domain.separator() + self.struct_hash())

    def typed_data(self, domain: PaymentDomain) -> dict[str, Any]:
        """The full EIP-712 message, as wallets and ``eth_signTypedData_v4`` take it."""
        return {
            "types": {"EIP712Domain": DOMAIN_FIELDS, "Payment": PAYMENT_FIELDS},
            "primaryType": "Payment",
            "domain": domain.as_dict(),
            "message": {
                "card": to_checksum_address(self.card),
                "merchant": to_checksum_address(self.merchant),
                "amount": self.amount,
                "counter": self.counter,
                "time": self.time,
            },
        }


@dataclass(frozen=True)
class SignedPayment:
    """A payment and the card's 65-byte signature, as a terminal stores and uploads it."""

    payment: Payment
    signature: bytes

    def abi(self) -> tuple[str, str, int, int, int, bytes]:
        p = self.payment
        return (p.card, p.merchant, p.amount, p.counter, p.time, self.signature)

    @property
    def key(self) -> tuple[str, int]:
        """What identifies a payment on chain: (card, counter)."""
        return (self.payment.card, self.payment.counter)

    def to_json(self) -> dict[str, Any]:
        p = self.payment
        return {
            "card": p.card,
            "merchant": p.merchant,
            "amount": p.amount,
            "counter": p.counter,
            "time": p.time,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignedPayment:
        """The payment as stored or uploaded; addresses in their EIP-55 form through the cached
        ``checksum`` (a settle builds 100 payments naming a few cards and one merchant: two
        uncached keccaks each were most of the builder's time, issue 19)."""
        payment = Payment(
            checksum(data["card"]),
            checksum(data["merchant"]),
            int(data["amount"]),
            int(data["counter"]),
            int(data["time"]),
        )
        return cls(payment, bytes.fromhex(str(data["signature"]).removeprefix("0x")))

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


def sign_payment(private_key: bytes, payment: Payment, domain: PaymentDomain) -> SignedPayment:
    """Sign ``payment`` with a raw secp256k1 key (r || s || v, v in {27, 28}, low s).

    Used inside :class:`wallets.hardwallet.HardWallet`; tests also use it to play a cloned card.
    """
    signed = Account.unsafe_sign_hash(payment.digest(domain), private_key)
    return SignedPayment(payment, bytes(signed.signature))


def recover_card(signed: SignedPayment, domain: PaymentDomain) -> str:
    """The address that signed ``signed`` under ``domain`` (a terminal's offline check).

    ValueError for every signature the contract's ``ECDSA.tryRecover`` (OpenZeppelin) finds no
    signer in: not r || s || v with v 27 or 28, r or s zero or not below the curve order, s in the
    upper half (a malleable twin), or no point on the curve (red team: such a signature paid to a
    code answered 500, and an upload of them was sent on chain to be rejected there)."""
    sig = signed.signature
    if len(sig) != 65 or sig[64] not in (27, 28):
        raise ValueError("a card signature is 65 bytes, r || s || v with v 27 or 28")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
    if not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_N // 2:
        raise ValueError("r and s must lie in 1..n-1 and s in the lower half of the curve order")
    try:
        vrs = keys.Signature(sig[:64] + bytes([sig[64] - 27]))
        public = vrs.recover_public_key_from_msg_hash(signed.payment.digest(domain))
    except (BadSignature, ValidationError) as exc:
        raise ValueError(f"no signer can be recovered: {exc}") from None
    return str(public.to_checksum_address())


# -- settlement outcomes -------------------------------------------------------------------------


class Outcome(StrEnum):
    SETTLED = "settled"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    SHORTFALL = "shortfall"


@dataclass(frozen=True)
class PaymentOutcome:
    """The fate of one uploaded payment, decoded from its event."""

    card: str
    counter: int
    merchant: str
    amount: int
    outcome: Outcome
    paid: int = 0  # what reached the merchant
    reason: RejectReason = RejectReason.NONE
    detail: bytes = b"\0\0\0\0"  # the token's error selector for the token's refusals

    @property
    def final(self) -> bool:
        """False only when uploading it again later may settle it (the merchant could not receive,
        or the holder is frozen)."""
        return not (self.outcome is Outcome.REJECTED and self.reason in RETRYABLE_REASONS)


@dataclass(frozen=True)
class SettlementResult:
    tx: TxResult
    outcomes: list[PaymentOutcome]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes if o.outcome is outcome)


def outcomes_of(result: TxResult) -> list[PaymentOutcome]:
    """One outcome per uploaded payment, in upload order (the log order)."""
    out: list[PaymentOutcome] = []
    for e in result.events:
        a = e.args
        if e.name == "PaymentSettled":
            out.append(
                PaymentOutcome(
                    a["card"], a["counter"], a["merchant"], a["amount"], Outcome.SETTLED, a["amount"]
                )
            )
        elif e.name == "PaymentDuplicate":
            out.append(PaymentOutcome(a["card"], a["counter"], a["merchant"], a["amount"], Outcome.DUPLICATE))
        elif e.name == "PaymentRejected":
            out.append(
                PaymentOutcome(
                    a["card"],
                    a["counter"],
                    a["merchant"],
                    a["amount"],
                    Outcome.REJECTED,
                    reason=RejectReason(a["reason"]),
                    detail=bytes(a["detail"]),
                )
            )
        elif e.name == "PaymentShortfall":
            out.append(
                PaymentOutcome(
                    a["card"], a["counter"], a["merchant"], a["amount"], Outcome.SHORTFALL, a["covered"]
                )
            )
    return out


@dataclass(frozen=True)
class CardInfo:
    card: str
    holder: str
    form: CardForm
    status: CardStatus
    registered_at: int  # no payment signed before it settles
    lost_at: int
    grace_ends_at: int
    signed_from: int  # lost: payments signed before it are refused (lost_at - the upload window)
    loaded: int
    settled: int
    refunded: int
    reserve: int
    shortfall: int


@dataclass(frozen=True)
class PurseProgramme:
    """A purse programme (``CardPurses.PurseProgramme``) and its merchant categories."""

    id: int
    expires_at: int
    to_holder_at_expiry: bool
    held: int
    funder: str
    per_card_cap: int
    funded: int
    expired: int
    spent: int
    categories: tuple[int, ...]


@dataclass(frozen=True)
class Purse:
    """One earmarked purse on a card, with the card's books of its programme."""

    programme: int
    balance: int
    funded: int
    expired: int
    spent: int


@dataclass(frozen=True)
class Limits:
    offline_cap: int
    reserve_cap: int
    grace_period: int


class HardWalletClient(ContractClient):
    """Cards, loads, batch settlement and lost cards (``HardWalletSettlement``); ``address`` is the
    spender a load's allowance names."""

    CONTRACT = "HardWalletSettlement"

    @property
    def domain(self) -> PaymentDomain:
        """The domain cards must sign under for this deployment."""
        return PaymentDomain(self.tx.chain_id, self.contract.address)

    # -- calls (unsent: the services send them through Operations, tests through ``tx``) ----

    def register_card_call(self, card: str, holder: str, form: CardForm) -> ContractFunction:
        """Register ``card`` (its key's address) to ``holder``'s personal wallet (OPERATOR_ROLE)."""
        return self.contract.functions.registerCard(card, holder, int(form))

    def set_limits_call(self, offline_cap: int, reserve_cap: int, grace_period: int) -> ContractFunction:
        return self.contract.functions.setLimits(offline_cap, reserve_cap, grace_period)

    def set_upload_window_call(self, seconds: int) -> ContractFunction:
        """How long a terminal may hold a payment before uploading it (OPERATOR_ROLE)."""
        return self.contract.functions.setUploadWindow(seconds)

    def approve_call(self, amount: int) -> ContractFunction:
        """The holder's token approval of ``amount`` to the settlement contract (before a load)."""
        return self.cash.functions.approve(self.contract.address, amount)

    def load_call(self, card: str, amount: int) -> ContractFunction:
        """Move ``amount`` from the signer (the holder) into ``card``'s reserve; needs its allowance."""
        return self.contract.functions.load(card, amount)

    def report_lost_call(self, card: str) -> ContractFunction:
        return self.contract.functions.reportLost(card)

    def return_reserve_call(self, card: str) -> ContractFunction:
        return self.contract.functions.returnReserve(card)

    def recover_card_call(self, card: str, lost: str, successor: str) -> ContractFunction:
        """Anyone: ``card`` (not closed) of the retired ``lost`` wallet becomes its registered
        successor's, reserve included."""
        return self.contract.functions.recoverCard(card, lost, successor)

    def settle_call(self, payments: Sequence[SignedPayment]) -> ContractFunction:
        """One batch (1..MAX_BATCH payments); anyone may send it, each pays only its card's merchant."""
        return self.contract.functions.settle([p.abi() for p in payments])

    # -- earmarked purses (CardPurses) ------------------------------------------------------

    def create_purse_programme_call(
        self,
        programme: int,
        funder: str,
        per_card_cap: int,
        expires_at: int,
        to_holder_at_expiry: bool,
        categories: Sequence[int],
    ) -> ContractFunction:
        """Create a purse programme (OPERATOR_ROLE)."""
        return self.contract.functions.createPurseProgramme(
            programme, funder, per_card_cap, expires_at, to_holder_at_expiry, list(categories)
        )

    def fund_purse_call(self, card: str, programme: int, amount: int) -> ContractFunction:
        """The programme's funder puts ``amount`` on ``card``'s purse; needs its allowance."""
        return self.contract.functions.fundPurse(card, programme, amount)

    def expire_purse_call(self, card: str, programme: int) -> ContractFunction:
        return self.contract.functions.expirePurse(card, programme)

    def create_purse_programme(
        self,
        operator: LocalAccount,
        programme: int,
        funder: str,
        per_card_cap: int,
        expires_at: int,
        to_holder_at_expiry: bool,
        categories: Sequence[int],
    ) -> TxResult:
        fn = self.create_purse_programme_call(
            programme, funder, per_card_cap, expires_at, to_holder_at_expiry, categories
        )
        return self.tx.transact(operator, fn)

    def fund_purse(
        self, funder: LocalAccount, card: str, programme: int, amount: int, *, approve: bool = True
    ) -> TxResult:
        if approve:
            self.approve(funder, amount)
        return self.tx.transact(funder, self.fund_purse_call(card, programme, amount))

    def expire_purse(self, account: LocalAccount, card: str, programme: int) -> TxResult:
        return self.tx.transact(account, self.expire_purse_call(card, programme))

    def purse_programme(self, programme: int) -> PurseProgramme:
        raw, categories = self.tx.call(self.contract.functions.purseProgramme(programme))
        return PurseProgramme(
            id=programme,
            expires_at=int(raw[0]),
            to_holder_at_expiry=bool(raw[1]),
            held=int(raw[2]),
            funder=str(raw[3]),
            per_card_cap=int(raw[4]),
            funded=int(raw[5]),
            expired=int(raw[6]),
            spent=int(raw[7]),
            categories=tuple(int(c) for c in categories),
        )

    def purses(self, card: str) -> list[Purse]:
        """``card``'s purses (empty slots left out), in spending order."""
        out = []
        for programme, balance in self.tx.call(self.contract.functions.pursesOf(card)):
            if programme == 0:
                continue
            books = self.tx.call(self.contract.functions.purseBooks(card, programme))
            out.append(Purse(int(programme), int(balance), *(int(v) for v in books)))
        return out

    def purse_spendable(self, card: str, category: int, at: int) -> int:
        """What ``card``'s purses would pay of a payment at a merchant of ``category`` settled at
        block time ``at``: the sum of its non-empty purses whose programme allows ``category`` and
        has not expired (``CardPurses._drawPurses``; a blocked card's purses pay nothing there,
        which its status tells). The card itself counts the same offline (wallets/hardwallet.py)."""
        total = 0
        for programme, balance in self.tx.call(self.contract.functions.pursesOf(card)):
            if programme == 0:
                break  # the slots are kept contiguous
            if balance == 0:
                continue
            terms = self.purse_programme(int(programme))
            if at <= terms.expires_at and category in terms.categories:
                total += int(balance)
        return total

    # -- operator --------------------------------------------------------------------------

    def register_card(self, operator: LocalAccount, card: str, holder: str, form: CardForm) -> TxResult:
        return self.tx.transact(operator, self.register_card_call(card, holder, form))

    def set_limits(
        self, operator: LocalAccount, offline_cap: int, reserve_cap: int, grace_period: int
    ) -> TxResult:
        return self.tx.transact(operator, self.set_limits_call(offline_cap, reserve_cap, grace_period))

    def set_upload_window(self, operator: LocalAccount, seconds: int) -> TxResult:
        return self.tx.transact(operator, self.set_upload_window_call(seconds))

    # -- holder ----------------------------------------------------------------------------

    def approve(self, holder: LocalAccount, amount: int) -> TxResult:
        return self.tx.transact(holder, self.approve_call(amount))

    def load(self, holder: LocalAccount, card: str, amount: int, *, approve: bool = True) -> TxResult:
        """Approve ``amount`` (unless ``approve=False``) and load it into ``card``'s reserve."""
        if approve:
            self.approve(holder, amount)
        return self.tx.transact(holder, self.load_call(card, amount))

    def report_lost(self, account: LocalAccount, card: str) -> TxResult:
        return self.tx.transact(account, self.report_lost_call(card))

    def return_reserve(self, account: LocalAccount, card: str) -> TxResult:
        return self.tx.transact(account, self.return_reserve_call(card))

    # -- terminals -------------------------------------------------------------------------

    def settle(self, submitter: LocalAccount, payments: Sequence[SignedPayment]) -> SettlementResult:
        """Upload one batch (1..MAX_BATCH payments); one outcome per payment, in order."""
        result = self.tx.transact(submitter, self.settle_call(payments))
        return SettlementResult(result, outcomes_of(result))

    # -- views -----------------------------------------------------------------------------

    def card(self, card: str) -> CardInfo:
        raw = self.tx.call(self.contract.functions.cardOf(card))
        # HardWalletSettlement.Card's order (packed for settle): holder, form, status, registeredAt,
        # lostAt, graceEndsAt, signedFrom, settled, reserve, shortfall, loaded, refunded.
        return CardInfo(
            card,
            raw[0],
            CardForm(raw[1]),
            CardStatus(raw[2]),
            registered_at=int(raw[3]),
            lost_at=int(raw[4]),
            grace_ends_at=int(raw[5]),
            signed_from=int(raw[6]),
            settled=int(raw[7]),
            reserve=int(raw[8]),
            shortfall=int(raw[9]),
            loaded=int(raw[10]),
            refunded=int(raw[11]),
        )

    def is_counter_used(self, card: str, counter: int) -> bool:
        return bool(self.tx.call(self.contract.functions.isCounterUsed(card, counter)))

    def digest_on_chain(self, payment: Payment) -> bytes:
        p = payment
        fn = self.contract.functions.paymentDigest(p.card, p.merchant, p.amount, p.counter, p.time)
        return bytes(self.tx.call(fn))

    def offline_cap(self) -> int:
        """The most one offline payment may be (fen); a card's reader shows it beside the card."""
        return int(self.tx.call(self.contract.functions.offlineCap()))

    def upload_window(self) -> int:
        """How long (s) a terminal may hold a payment before uploading it."""
        return int(self.tx.call(self.contract.functions.uploadWindow()))

    def limits(self) -> Limits:
        f = self.contract.functions
        return Limits(
            self.offline_cap(),
            int(self.tx.call(f.reserveCap())),
            int(self.tx.call(f.gracePeriod())),
        )

    def totals(self) -> dict[str, int]:
        f = self.contract.functions
        return {
            "loaded": int(self.tx.call(f.totalLoaded())),
            "settled": int(self.tx.call(f.totalSettled())),
            "refunded": int(self.tx.call(f.totalRefunded())),
            "reserve": int(self.tx.call(f.totalReserve())),
            "shortfall": int(self.tx.call(f.totalShortfall())),
            "earmarked": int(self.tx.call(f.totalEarmarked())),
            "earmarked_funded": int(self.tx.call(f.totalEarmarkedFunded())),
            "earmarked_spent": int(self.tx.call(f.totalEarmarkedSpent())),
            "earmarked_expired": int(self.tx.call(f.totalEarmarkedExpired())),
        }


# -- quick-pay mandates --------------------------------------------------------------------------


@dataclass(frozen=True)
class Mandate:
    id: int
    holder: str
    expires_at: int
    revoked: bool
    merchant: str
    day: int
    per_payment_cap: int
    daily_cap: int
    spent_today: int  # as stored: counts for `day` only
    total_pulled: int


def order_ref(reference: str) -> bytes:
    """A merchant's order reference as the bytes32 a pull carries."""
    return keccak(f"xcpay:quickpay:{reference}".encode())


class QuickPayClient(ContractClient):
    """Mandates (钱包快付): the holder grants and revokes, the merchant pulls (``QuickPay``);
    ``address`` is the spender a pull's allowance names."""

    CONTRACT = "QuickPay"

    # -- calls (unsent: the services send them through Operations, tests through ``tx``) ----

    def approve_call(self, amount: int) -> ContractFunction:
        """The holder's token approval to QuickPay (the mandate's caps, not it, limit each pull)."""
        return self.cash.functions.approve(self.contract.address, amount)

    def grant_call(
        self, merchant: str, per_payment_cap: int, daily_cap: int, expires_at: int
    ) -> ContractFunction:
        """The signer (the holder) lets ``merchant`` pull within the caps until ``expires_at``."""
        return self.contract.functions.grant(merchant, per_payment_cap, daily_cap, expires_at)

    def revoke_call(self, mandate_id: int) -> ContractFunction:
        return self.contract.functions.revoke(mandate_id)

    def recover_mandate_call(self, mandate_id: int, lost: str, successor: str) -> ContractFunction:
        """Anyone: mandate ``mandate_id`` (not revoked) of the retired ``lost`` wallet becomes its
        registered successor's."""
        return self.contract.functions.recoverMandate(mandate_id, lost, successor)

    def pull_call(self, mandate_id: int, amount: int, reference: bytes) -> ContractFunction:
        """The signer (the mandate's merchant) pulls ``amount`` for the order ``reference``
        (:func:`order_ref`); needs the holder's allowance to QuickPay."""
        return self.contract.functions.pull(mandate_id, amount, reference)

    # -- sent here (tests, scripts) ---------------------------------------------------------

    def approve(self, holder: LocalAccount, amount: int) -> TxResult:
        """The token allowance the merchant pulls against (the mandate's caps limit each pull)."""
        return self.tx.transact(holder, self.approve_call(amount))

    def grant(
        self, holder: LocalAccount, merchant: str, per_payment_cap: int, daily_cap: int, expires_at: int
    ) -> tuple[int, TxResult]:
        result = self.tx.transact(holder, self.grant_call(merchant, per_payment_cap, daily_cap, expires_at))
        return int(result.named("MandateGranted")[0]["id"]), result

    def revoke(self, holder: LocalAccount, mandate_id: int) -> TxResult:
        return self.tx.transact(holder, self.revoke_call(mandate_id))

    def pull(self, merchant: LocalAccount, mandate_id: int, amount: int, reference: bytes) -> TxResult:
        return self.tx.transact(merchant, self.pull_call(mandate_id, amount, reference))

    # -- views -----------------------------------------------------------------------------

    def mandate(self, mandate_id: int) -> Mandate:
        raw = self.tx.call(self.contract.functions.mandateOf(mandate_id))
        return Mandate(mandate_id, raw[0], int(raw[1]), bool(raw[2]), raw[3], *(int(v) for v in raw[4:]))

    def spent_today(self, mandate_id: int) -> int:
        return int(self.tx.call(self.contract.functions.spentToday(mandate_id)))

    def is_reference_used(self, mandate_id: int, reference: bytes) -> bool:
        return bool(self.tx.call(self.contract.functions.isReferenceUsed(mandate_id, reference)))
