"""The holder family's request and response models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.common.schemas import Address, EcdsaSignature, OperationOut, Strict


class ChallengeIn(Strict):
    wallet: Address = Field(description="the registered wallet the holder will sign in with")


class ChallengeOut(BaseModel):
    """An EIP-4361 (Sign-In with Ethereum) message to sign with ``personal_sign`` (EIP-191)."""

    message: str = Field(description="sign exactly this text; it holds the single-use nonce")
    nonce: str
    wallet: str
    expires_at: datetime


class SessionIn(Strict):
    message: str = Field(min_length=1, max_length=2000, description="the challenge's message, as given")
    signature: EcdsaSignature


class HolderKeyIn(Strict):
    wallet: Address = Field(description="a registered custodial wallet of this service")
    ttl_minutes: int = Field(default=60, ge=1, le=60 * 24 * 30, description="the key's life")


class HolderKeyOut(BaseModel):
    """A holder key: shown once, stored hashed; send it as ``X-API-Key``."""

    key: str
    key_id: int
    wallet: str
    expires_at: datetime


class TierLimitsOut(BaseModel):
    balance_cap_fen: int
    payment_cap_fen: int
    daily_cap_fen: int


class BalanceOut(BaseModel):
    """The holder's wallet today. ``available_fen``: the balance less what holds (judicial, AML)
    keep; ``daily_left_fen``: what today's cap still lets the wallet pay (null: no cap)."""

    wallet: str
    display_name: str | None
    kind: str
    tier: int
    frozen: bool
    cap_exempt: bool
    balance_fen: int
    held_fen: int
    available_fen: int
    limits: TierLimitsOut | None
    spent_today_fen: int
    daily_left_fen: int | None
    balance_room_fen: int | None = Field(description="what the wallet may still receive (null: no cap)")


class MovementOut(BaseModel):
    """One movement of cash into or out of the wallet (a DigitalCash ``Transfer`` event)."""

    id: int
    block_number: int
    tx_hash: str
    direction: str = Field(description="in | out")
    amount_fen: int
    counterparty: str
    counterparty_name: str | None
    family: str = Field(description="cash, prepaid, disburse, vouchers, collective, hardwallet, paycodes")
    purpose: str = Field(description="what the transaction did, from its other events (e.g. Issued)")


class MandateOut(BaseModel):
    id: int
    merchant: str
    merchant_name: str | None
    per_payment_cap_fen: int
    daily_cap_fen: int
    spent_today_fen: int
    total_pulled_fen: int
    expires_at: int
    revoked: bool
    active: bool


class UnsignedCall(BaseModel):
    """A transaction for a self-custody holder to sign and send themselves (the service holds no
    key of theirs): ``to``, ``data`` and an EIP-681 link a wallet app opens."""

    chain_id: int
    to: str
    data: str
    eip681: str


class RevokeOut(BaseModel):
    """Custodial: the revocation operation (confirmed: the mandate pulls nothing from now on).
    Self-custody: the call to sign, nothing was sent."""

    mandate: int
    operation: OperationOut | None = None
    sign_yourself: UnsignedCall | None = None


class PackageOut(BaseModel):
    id: int
    merchant: str
    merchant_name: str | None
    status: str
    sessions: int
    used: int
    unit_price_fen: int
    deposited_fen: int
    released_fen: int
    expires_at: int


# -- what the holder holds besides cash: cards, packages, vouchers, disbursement rows ------------


class CardOut(BaseModel):
    """One of the holder's hard-wallet cards as the chain holds it (HardWalletSettlement)."""

    card: str
    holder: str = Field(
        description="the wallet the card is registered to: the holder's, or one a recovery retired to it"
    )
    form: str = Field(description="card | sim | wearable")
    serial: str | None = Field(description="the issuer's serial, when the gateway issued the card")
    status: str = Field(description="active | blocked | lost | closed")
    reserve_fen: int = Field(description="what the card may still spend offline")
    loaded_fen: int
    settled_fen: int
    refunded_fen: int
    shortfall_fen: int
    lost_at: int | None = Field(description="when it was reported lost (unix seconds)")
    grace_ends_at: int | None = Field(
        description="payments signed before the report settle until then; the reserve comes back after"
    )
    offline_cap_fen: int = Field(description="the largest single offline payment")


class SessionsIn(Strict):
    sessions: int = Field(ge=1, lt=2**32, description="sessions attended, to release to the merchant")


class ActionOut(BaseModel):
    """Custodial: the operation the service signed for the holder. Self-custody: the call to sign
    and send (``sign_yourself``); nothing was sent."""

    subject: str = Field(description="what the action was on (a package id, a card address)")
    operation: OperationOut | None = None
    sign_yourself: UnsignedCall | None = None


class ClaimableLeafOut(BaseModel):
    index: int
    amount_fen: int


class VoucherMerchantOut(BaseModel):
    merchant: str
    name: str | None
    category: int


class VoucherOut(BaseModel):
    """A voucher programme the holder holds a grant of (or may claim one from), and where it pays."""

    programme_id: int
    name: str
    issuer: str
    issuer_name: str | None
    status: str = Field(description="upcoming | open | expired | closed")
    starts_at: int
    expires_at: int
    granted_fen: int
    spent_fen: int
    returned_fen: int
    balance_fen: int = Field(description="what the holder may still spend")
    min_bill_fen: int = Field(description="a bill must reach this for the voucher to pay (0: any bill)")
    discount_fen: int = Field(description="what the voucher pays of one bill at most (0: the whole bill)")
    categories: list[int] = Field(description="merchant categories (MCC) where the voucher pays")
    merchant_list: bool = Field(description="true: only the listed merchants, in those categories")
    merchants: list[VoucherMerchantOut] = Field(
        description="where it can be spent: the listed merchants, or the registered merchants of "
        "those categories (at most 100)"
    )
    claimable: list[ClaimableLeafOut] = Field(description="campaign grants of the holder not claimed yet")


class DisbursementRowOut(BaseModel):
    """A row of a payroll or subsidy batch paid (or to be paid) to the holder."""

    reference: str
    index: int
    payer: str
    payer_name: str | None
    purpose: str
    amount_fen: int
    mode: str = Field(description="explicit | merkle")
    status: str = Field(description="pending | paid | exception | reclaimed")
    reason: str | None = Field(description="why an exception was not paid")
    ends_at: int
    claimable: bool = Field(
        description="the holder may claim it now (POST …/claim): an unpaid Merkle row or a payout "
        "exception of an approved batch that has not ended"
    )
