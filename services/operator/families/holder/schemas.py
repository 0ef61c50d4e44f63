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
