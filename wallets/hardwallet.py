"""A hard wallet (IC card, SIM-card wallet, wearable) **simulated** in Python: a SIMULATOR, not a
secure element, and no substitute for one.

A real secure element keeps its key in tamper-resistant silicon: the key is generated or injected
once at personalisation and can never be read out, copied, or rolled back; its counter is
monotonic in hardware and survives power loss; a top-up is accepted only with the issuer's
cryptographic authorisation; side channels (power, timing, glitching) are countered. This class
imitates the *behaviour* (a hidden key, a counter, a balance and a cap) so that terminals, the
gateway and the settlement contract can be exercised, but its key lives in this process's memory
and anyone with the process can take it.

:class:`HardWallet` behaves like the chip of an e-CNY hard wallet:

- it holds a secp256k1 key that no method returns (not ``repr``, not pickling, not copying); the
  only ways out are signatures and :meth:`HardWallet.save`, which encrypts the whole card image
  under a password, and only for a card personalised with an *issuer secret* and only when that
  secret is presented (:meth:`HardWallet.restore` needs it too): a demo cannot export or clone a
  card by accident, and a card personalised without one never exports its key, as a real secure
  element never does;
- every signature increments a monotonic counter, which the settlement contract uses to reject a
  payment uploaded twice;
- it tracks its offline cash and up to :data:`MAX_PURSES` earmarked purses (programme, balance,
  merchant categories, expiry: ``CardPurses.sol``) and refuses to sign what its cash plus the
  purses allowed at the terminal's merchant category (unexpired at the payment's time) cannot
  cover, or above its offline single-payment cap; it spends the purses in the order the settlement
  draws them (slot order, allowed and unexpired ones only), then cash, so its own view after a
  payment is what the contract computes when it settles it;
- it signs EIP-712 ``Payment`` messages (card, merchant, amount, counter, time) bound to one chain
  id and one settlement contract (:class:`chain.clients.hardwallet.PaymentDomain`), so a signature
  is worthless on any other chain or contract;
- it answers a door reader's challenge (:meth:`HardWallet.sign_challenge`) with an EIP-712
  ``Access(address card,bytes32 challenge)`` signature under its own domain (name
  ``XcpayAccess``, same chain id and settlement contract), so it can never pass for a payment.
  A challenge signature moves no money and uses no counter: its replay protection is the
  challenge itself, which the gateway accepts once.

A real card's top-up command is authenticated by the issuer; here :meth:`HardWallet.credit` (cash)
and :meth:`HardWallet.credit_purse` (a purse, with its programme's categories and expiry) are
simply called once the on-chain load or funding is confirmed, and :meth:`HardWallet.expire_purse`
once the purse is expired on chain (the contract's last slot then moves into the freed one, and so
does the card's). A purse's expiry is judged at the payment's time on the card and at settlement
time on chain: a payment signed before the expiry but uploaded after it is paid from cash there, so
terminals upload before a programme expires. The settlement contract never trusts the card:
a restored old image (rolled-back counter) or a cloned card only produces duplicates and, beyond
the card's reserve, a recorded shortfall and a blocked card.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time as _time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, NoReturn

from eth_abi import encode
from eth_account import Account
from eth_hash.auto import keccak
from eth_keys import keys
from eth_keys.exceptions import ValidationError as KeyValidationError
from eth_utils import to_checksum_address

from chain.clients.devices import DeviceDomain, PreAuthMessage, SignedPreAuth, sign_preauth
from chain.clients.hardwallet import CardForm, Payment, PaymentDomain, SignedPayment, sign_payment
from wallets import keystore

__all__ = [
    "MAX_PURSES",
    "CardForm",
    "CardPurse",
    "CardRefused",
    "CategoryRequired",
    "ExportRefused",
    "HardWallet",
    "HardWalletError",
    "InsufficientOfflineBalance",
    "OverOfflineCap",
    "access_digest",
    "recover_access",
]

KIND_CARD: Final = "xcpay-hardwallet"
DEFAULT_OFFLINE_CAP: Final = 1_000_00  # fen; HardWalletSettlement's default offlineCap
MAX_PURSES: Final = 4  # CardPurses.MAX_PURSES: slots per card
MAX_PURSE_CATEGORIES: Final = 8  # CardPurses.MAX_PURSE_CATEGORIES
_IMAGE_VERSION: Final = 3  # 2: the image carries the issuer secret's tag; 3: and the purses
_IMAGE_VERSIONS: Final = (2, 3)  # what restore reads (a version-2 image has no purses)

ACCESS_DOMAIN_NAME: Final = "XcpayAccess"
ACCESS_TYPE: Final = "Access(address card,bytes32 challenge)"
_DOMAIN_TYPE: Final = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"


def access_digest(card: str, challenge: bytes, domain: PaymentDomain) -> bytes:
    """The EIP-712 digest a card signs to open a door: ``Access(card, challenge)`` under the
    ``XcpayAccess`` domain (version 1, the payment domain's chain id and settlement contract)."""
    if len(challenge) != 32:
        raise ValueError("a challenge is 32 bytes")
    separator = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(_DOMAIN_TYPE.encode()),
                keccak(ACCESS_DOMAIN_NAME.encode()),
                keccak(b"1"),
                domain.chain_id,
                to_checksum_address(domain.verifying_contract),
            ],
        )
    )
    struct = keccak(
        encode(["bytes32", "address", "bytes32"], [keccak(ACCESS_TYPE.encode()), card, challenge])
    )
    return keccak(b"\x19\x01" + separator + struct)


def recover_access(card: str, challenge: bytes, signature: bytes, domain: PaymentDomain) -> str:
    """Who signed ``Access(card, challenge)``; raises ValueError on a malformed signature."""
    if len(signature) != 65 or signature[64] not in (27, 28):
        raise ValueError("a card signature is 65 bytes, r || s || v with v 27 or 28")
    vrs = keys.Signature(signature[:64] + bytes([signature[64] - 27]))
    digest = access_digest(to_checksum_address(card), challenge, domain)
    return str(vrs.recover_public_key_from_msg_hash(digest).to_checksum_address())


class HardWalletError(Exception):
    """Root of hard-wallet failures."""


class CardRefused(HardWalletError):
    """The card refused to sign; nothing changed (no counter used, no balance spent)."""


class OverOfflineCap(CardRefused):
    def __init__(self, cap: int, amount: int) -> None:
        super().__init__(f"{amount} fen is above the offline single-payment cap of {cap} fen")
        self.cap, self.amount = cap, amount


class InsufficientOfflineBalance(CardRefused):
    """What the card may spend here (``balance`` = ``cash`` + ``earmarked``, the purses allowed
    at this merchant's category and unexpired) does not cover ``amount``."""

    def __init__(self, balance: int, amount: int, *, cash: int | None = None, earmarked: int = 0) -> None:
        cash = balance - earmarked if cash is None else cash
        if earmarked:
            detail = f"{cash} fen of cash plus {earmarked} fen of purses allowed here"
            super().__init__(f"{amount} fen is above what the card may spend here: {detail}")
        else:
            super().__init__(f"{amount} fen is above the card's offline balance of {balance} fen")
        self.balance, self.amount, self.cash, self.earmarked = balance, amount, cash, earmarked


class CategoryRequired(CardRefused):
    """The card holds purse value but the terminal did not present its merchant category: the card
    cannot know which purses the settlement would draw, so it signs nothing."""

    def __init__(self) -> None:
        super().__init__("the card holds purses: the terminal must present its merchant category")


@dataclass(frozen=True)
class CardPurse:
    """One earmarked purse on the card: its programme, what is left of it (fen), the merchant
    categories it may be spent at and its expiry (Unix seconds; spendable while ``time <=
    expires_at``, as ``CardPurses._drawPurses`` judges it)."""

    programme: int
    balance: int
    categories: frozenset[int]
    expires_at: int

    def allows(self, category: int | None, time: int) -> bool:
        """Whether a payment at ``time`` at a merchant of ``category`` draws this purse."""
        return self.balance > 0 and time <= self.expires_at and category in self.categories

    def as_json(self) -> dict[str, Any]:
        return {
            "programme": self.programme,
            "balance": self.balance,
            "categories": sorted(self.categories),
            "expires_at": self.expires_at,
        }


def _purse_terms(programme: int, categories: Iterable[int], expires_at: int) -> frozenset[int]:
    if not 0 < programme < 2**32:
        raise ValueError("a purse programme id is in 1..2**32-1")
    cats = list(categories)
    if not 1 <= len(cats) <= MAX_PURSE_CATEGORIES or any(not 0 < c < 2**16 for c in cats):
        raise ValueError(f"a purse programme allows 1..{MAX_PURSE_CATEGORIES} categories in 1..65535")
    if len(set(cats)) != len(cats):
        raise ValueError("a purse programme lists a category once")
    if not 0 < expires_at < 2**64:
        raise ValueError("a purse expiry is in 1..2**64-1")
    return frozenset(cats)


class ExportRefused(HardWalletError):
    """The card's image may not leave it (no issuer secret, or the wrong one): nothing was exported."""


def _issuer_tag(secret: bytes) -> bytes:
    if len(secret) < 16:
        raise ValueError("an issuer secret has at least 16 bytes")
    return hashlib.sha256(b"xcpay hard-wallet issuer\0" + bytes(secret)).digest()


def _purses_of(rows: Iterable[Mapping[str, Any]]) -> list[CardPurse]:
    """Purses from a card image (a spent purse, balance 0, keeps its slot as on chain)."""
    out: list[CardPurse] = []
    for row in rows:
        programme, balance, expires_at = int(row["programme"]), int(row["balance"]), int(row["expires_at"])
        cats = _purse_terms(programme, (int(c) for c in row["categories"]), expires_at)
        if balance < 0 or any(p.programme == programme for p in out):
            raise ValueError("a purse balance is not negative and a programme holds one slot")
        out.append(CardPurse(programme, balance, cats, expires_at))
    if len(out) > MAX_PURSES:
        raise ValueError(f"a card holds at most {MAX_PURSES} purses")
    return out


class HardWallet:
    """A secure element: a hidden key, a monotonic counter, offline cash, purses and a cap."""

    __slots__ = (
        "__issuer",
        "__key",
        "__lock",
        "_balance",
        "_cap",
        "_counter",
        "_domain",
        "_form",
        "_purses",
        "address",
        "serial",
    )

    def __init__(
        self,
        private_key: bytes,
        domain: PaymentDomain,
        *,
        form: CardForm = CardForm.CARD,
        offline_cap: int = DEFAULT_OFFLINE_CAP,
        serial: str | None = None,
        counter: int = 0,
        offline_balance: int = 0,
        issuer_secret: bytes | None = None,
    ) -> None:
        """Personalise a card with ``private_key`` (the issuer's injection; use :meth:`issue` to
        have the card generate its own). ``issuer_secret``: the secret that :meth:`save` and
        :meth:`restore` require; without one the card never exports its key."""
        if offline_cap <= 0 or counter < 0 or offline_balance < 0:
            raise ValueError("offline cap must be positive; counter and balance not negative")
        self.__key = keys.PrivateKey(bytes(private_key))
        self.__lock = threading.Lock()
        #: The card's public address: what the operator registers on chain.
        self.address: str = self.__key.public_key.to_checksum_address()
        self.serial: str = serial or f"HW-{secrets.token_hex(6).upper()}"
        self._form = CardForm(form)
        self._domain = PaymentDomain(domain.chain_id, to_checksum_address(domain.verifying_contract))
        self._cap = offline_cap
        self._counter = counter
        self._balance = offline_balance
        self._purses: list[CardPurse] = []  # slot order, contiguous, as CardPurses keeps them
        self.__issuer = _issuer_tag(issuer_secret) if issuer_secret is not None else None

    @classmethod
    def issue(
        cls,
        domain: PaymentDomain,
        *,
        form: CardForm = CardForm.CARD,
        offline_cap: int = DEFAULT_OFFLINE_CAP,
        serial: str | None = None,
        issuer_secret: bytes | None = None,
    ) -> HardWallet:
        """A new card whose key is generated inside it and never leaves it (unless the issuer
        presents ``issuer_secret`` to :meth:`save`)."""
        while True:
            raw = secrets.token_bytes(32)
            try:
                keys.PrivateKey(raw)
            except KeyValidationError:  # the rare out-of-range scalar: draw again
                continue
            return cls(
                raw, domain, form=form, offline_cap=offline_cap, serial=serial, issuer_secret=issuer_secret
            )

    # -- state -----------------------------------------------------------------------------

    @property
    def form(self) -> CardForm:
        return self._form

    @property
    def domain(self) -> PaymentDomain:
        return self._domain

    @property
    def counter(self) -> int:
        """The counter of the last signature (0: none yet). It only ever grows."""
        return self._counter

    @property
    def offline_balance(self) -> int:
        """The card's offline *cash* (its purses are apart: :attr:`purses`)."""
        return self._balance

    @property
    def purses(self) -> tuple[CardPurse, ...]:
        """The card's purses in slot order: the order the settlement draws them."""
        return tuple(self._purses)

    def spendable(self, category: int | None, time: int) -> int:
        """What the card would sign for at a merchant of ``category`` at ``time``: its cash plus
        the purses allowed there and unexpired (the offline cap aside)."""
        with self.__lock:
            return self._balance + sum(p.balance for p in self._purses if p.allows(category, time))

    @property
    def offline_cap(self) -> int:
        return self._cap

    def credit(self, amount: int) -> None:
        """Top up the offline balance by ``amount`` fen, once the on-chain load is confirmed."""
        if amount <= 0:
            raise ValueError("a top-up must be positive")
        with self.__lock:
            self._balance += amount

    def credit_purse(
        self, programme: int, amount: int, *, categories: Iterable[int], expires_at: int
    ) -> CardPurse:
        """Top up the card's purse of ``programme`` by ``amount`` fen once the on-chain funding
        (``fundPurse``) is confirmed, with the programme's merchant ``categories`` and expiry. As
        the contract does, a purse already held keeps its slot, a new one takes the next free slot
        (at most :data:`MAX_PURSES`). Returns the purse as it is now."""
        if amount <= 0:
            raise ValueError("a top-up must be positive")
        cats = _purse_terms(programme, categories, expires_at)
        with self.__lock:
            for i, held in enumerate(self._purses):
                if held.programme == programme:
                    if (held.categories, held.expires_at) != (cats, expires_at):
                        raise ValueError(f"purse programme {programme} is held with other terms")
                    self._purses[i] = replace(held, balance=held.balance + amount)
                    return self._purses[i]
            if len(self._purses) >= MAX_PURSES:
                raise ValueError(f"the card holds {MAX_PURSES} purses already")
            self._purses.append(CardPurse(programme, amount, cats, expires_at))
            return self._purses[-1]

    def expire_purse(self, programme: int) -> int:
        """Close the purse of ``programme`` once it is expired on chain (``expirePurse``); returns
        what the card still counted on it. The last slot moves into the freed one, as on chain."""
        with self.__lock:
            at = next((i for i, p in enumerate(self._purses) if p.programme == programme), None)
            if at is None:
                raise ValueError(f"the card holds no purse of programme {programme}")
            closed = self._purses[at]
            last = self._purses.pop()
            if at < len(self._purses):
                self._purses[at] = last
            return closed.balance

    # -- signing ---------------------------------------------------------------------------

    def sign_payment(
        self, merchant: str, amount: int, time: int | None = None, *, category: int | None = None
    ) -> SignedPayment:
        """Sign a payment of ``amount`` fen to ``merchant`` at ``time`` (the terminal's clock, Unix
        seconds), a merchant of ``category`` (the terminal presents it; the signed payload does not
        carry it: the settlement reads the merchant's category from the registry). Uses the next
        counter and spends, as the settlement will, the purses allowed at ``category`` and
        unexpired at ``time`` in slot order, then cash. Refuses, changing nothing: above the
        offline cap, beyond cash plus those purses, or without a category while it holds purse
        value that could be drawn (:class:`CategoryRequired`)."""
        if amount <= 0:
            raise CardRefused("a payment must be positive")
        when = int(_time.time()) if time is None else int(time)
        with self.__lock:
            if amount > self._cap:
                raise OverOfflineCap(self._cap, amount)
            if category is None and any(p.balance > 0 and when <= p.expires_at for p in self._purses):
                raise CategoryRequired()
            takes = self._draw(amount, category, when)
            earmarked = sum(takes)
            if amount - earmarked > self._balance:
                raise InsufficientOfflineBalance(
                    self._balance + earmarked, amount, cash=self._balance, earmarked=earmarked
                )
            payment = Payment(self.address, to_checksum_address(merchant), amount, self._counter + 1, when)
            signed = sign_payment(self.__key.to_bytes(), payment, self._domain)
            self._counter += 1
            self._balance -= amount - earmarked
            for i, take in enumerate(takes):
                if take:
                    self._purses[i] = replace(self._purses[i], balance=self._purses[i].balance - take)
        return signed

    def _draw(self, amount: int, category: int | None, when: int) -> list[int]:
        """What each slot would give to ``amount`` (``CardPurses._drawPurses``: slot order, empty,
        expired and not-allowed purses skipped, each up to its balance). Changes nothing."""
        takes, taken = [], 0
        for p in self._purses:
            take = min(amount - taken, p.balance) if p.allows(category, when) else 0
            takes.append(take)
            taken += take
        return takes

    def sign_challenge(self, challenge: bytes) -> bytes:
        """Sign a door reader's 32-byte challenge (see :func:`access_digest`); 65 bytes r || s || v.
        Uses no counter and no balance."""
        digest = access_digest(self.address, bytes(challenge), self._domain)
        with self.__lock:
            return bytes(Account.unsafe_sign_hash(digest, self.__key.to_bytes()).signature)

    def sign_preauth(
        self, merchant: str, max_amount: int, domain: DeviceDomain, time: int | None = None
    ) -> SignedPreAuth:
        """Sign a vending machine's pre-authorisation of at most ``max_amount`` fen for ``merchant``
        under the devices' ``domain`` (chain.clients.devices; issue 23). Uses the next counter
        (each counter pre-authorises once on chain) but no offline balance: the money is held
        from the holder's wallet online, and only the real amount is ever paid."""
        if max_amount <= 0:
            raise CardRefused("a pre-authorisation must be positive")
        when = int(_time.time()) if time is None else int(time)
        with self.__lock:
            message = PreAuthMessage(
                self.address, to_checksum_address(merchant), max_amount, self._counter + 1, when
            )
            signed = sign_preauth(self.__key.to_bytes(), message, domain)
            self._counter += 1
        return signed

    # -- save and restore ------------------------------------------------------------------

    def save(
        self,
        password: str | bytes,
        *,
        issuer_secret: bytes,
        cipher: str = keystore.DEFAULT_CIPHER,
        scrypt_n: int = keystore.DEFAULT_SCRYPT_N,
    ) -> dict[str, Any]:
        """The whole card image (key, counter, cash, purses, cap, form, domain), encrypted. Only for a
        card personalised with an issuer secret, and only when that secret is presented
        (:class:`ExportRefused` otherwise). A real secure element has no such door at all."""
        if self.__issuer is None:
            raise ExportRefused("this card was personalised without an issuer secret: its key stays inside")
        if not hmac.compare_digest(_issuer_tag(issuer_secret), self.__issuer):
            raise ExportRefused("wrong issuer secret: the card exports nothing")
        with self.__lock:
            image = {
                "issuer": self.__issuer.hex(),
                "v": _IMAGE_VERSION,
                "key": self.__key.to_hex(),
                "serial": self.serial,
                "form": int(self._form),
                "chain_id": self._domain.chain_id,
                "settlement": self._domain.verifying_contract,
                "offline_cap": self._cap,
                "counter": self._counter,
                "balance": self._balance,
                "purses": [p.as_json() for p in self._purses],
            }
        plaintext = json.dumps(image, sort_keys=True).encode()
        return keystore.seal(
            plaintext, password, kind=KIND_CARD, cipher=cipher, scrypt_n=scrypt_n, address=self.address
        )

    @classmethod
    def restore(
        cls, doc: Mapping[str, Any] | str | bytes, password: str | bytes, *, issuer_secret: bytes
    ) -> HardWallet:
        """A card from an image made by :meth:`save`, given the card's issuer secret (a restored
        image is a clone of the card: the settlement contract treats its payments as the card's,
        so duplicates and overspending are caught there). Raises a :class:`keystore.KeystoreError`,
        or :class:`ExportRefused` for the wrong issuer secret."""
        plaintext = keystore.unseal(doc, password, kind=KIND_CARD)
        try:
            image = json.loads(plaintext)
            if image["v"] not in _IMAGE_VERSIONS:
                raise keystore.UnsupportedKeystore(f"card image version {image['v']!r}")
            issuer = bytes.fromhex(str(image["issuer"]))
        except keystore.KeystoreError:
            raise
        except Exception as exc:  # authenticated but not a card image: not ours
            raise keystore.KeystoreCorrupt(f"not a valid card image: {exc}") from None
        if not hmac.compare_digest(_issuer_tag(issuer_secret), issuer):
            raise ExportRefused("wrong issuer secret: the image is not restored")
        try:
            card = cls(
                bytes.fromhex(str(image["key"]).removeprefix("0x")),
                PaymentDomain(int(image["chain_id"]), str(image["settlement"])),
                form=CardForm(image["form"]),
                offline_cap=int(image["offline_cap"]),
                serial=str(image["serial"]),
                counter=int(image["counter"]),
                offline_balance=int(image["balance"]),
                issuer_secret=issuer_secret,
            )
            card._purses = _purses_of(image.get("purses", []))
        except keystore.KeystoreError:
            raise
        except Exception as exc:  # authenticated but not a card image: not ours
            raise keystore.KeystoreCorrupt(f"not a valid card image: {exc}") from None
        declared = keystore.address_of(doc)
        if declared is not None and declared != card.address:
            raise keystore.KeystoreTampered("the card image does not match its address")
        return card

    # -- the key stays inside --------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"HardWallet({self.serial}, {self._form.name.lower()}, {self.address}, counter={self._counter}, "
            f"offline_balance={self._balance}, purses={len(self._purses)})"
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError("a hard wallet cannot be pickled; use save() for an encrypted image")

    def __copy__(self) -> NoReturn:
        raise TypeError("a hard wallet cannot be copied")

    def __deepcopy__(self, memo: dict[int, Any]) -> NoReturn:
        raise TypeError("a hard wallet cannot be copied")
