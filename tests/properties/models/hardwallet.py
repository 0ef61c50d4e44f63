"""The hard-wallet family's model: a card and an uploaded payment (``HardWalletSettlement``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from chain.clients.hardwallet import MAX_CLOCK_SKEW, CardStatus, RejectReason, SignedPayment
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
    registered_at: int = 0  # the chain's; no payment signed before it settles
    lost_at: int = 0
    grace_ends_at: int = 0
    signed_from: int = 0  # lost: lost_at - the upload window at the report
    used: set[int] = field(default_factory=set)
    clone_counter: int = 1_000
    purse: int = 0  # the elderly-care purse (CardPurses), spendable at the care merchant only
    purse_funded: int = 0
    purse_spent: int = 0


@dataclass(frozen=True)
class Uploaded:
    signed: SignedPayment
    valid: bool  # False: the signature does not match the payment


def time_or_status_refusal(c: CardModel, time: int, now: int) -> RejectReason | None:
    """``HardWalletSettlement._settleOne`` after the amount checks, for a payment signed at ``time``
    uploaded in a block of time ``now``: times that cannot be true, then the card's status."""
    if time > now + MAX_CLOCK_SKEW:
        return RejectReason.TIME_IN_FUTURE
    if time < c.registered_at:
        return RejectReason.TIME_BEFORE_REGISTRATION
    if c.status is CardStatus.CLOSED:
        return RejectReason.CARD_CLOSED
    if c.status is CardStatus.LOST:
        if time > c.lost_at:
            return RejectReason.CARD_LOST
        if time < c.signed_from:
            return RejectReason.TIME_BEFORE_UPLOAD_WINDOW
        if now > c.grace_ends_at:
            return RejectReason.GRACE_EXPIRED
    return None
