"""The hard-wallet family's model: a card and an uploaded payment (``HardWalletSettlement``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from chain.clients.hardwallet import CardStatus, SignedPayment
from wallets.hardwallet import HardWallet


@dataclass
class CardModel:
    holder: str
    se: HardWallet  # the genuine card
    status: CardStatus = CardStatus.ACTIVE
    loaded: int = 0
    settled: int = 0
    refunded: int = 0
    reserve: int = 0
    shortfall: int = 0
    lost_at: int = 0
    grace_ends_at: int = 0
    used: set[int] = field(default_factory=set)
    clone_counter: int = 1_000
    purse: int = 0  # the elderly-care purse (CardPurses), spendable at the care merchant only
    purse_funded: int = 0
    purse_spent: int = 0


@dataclass(frozen=True)
class Uploaded:
    signed: SignedPayment
    valid: bool  # False: the signature does not match the payment
