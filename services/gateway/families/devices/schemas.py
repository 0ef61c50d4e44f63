"""The devices family's request and response models (amounts in fen)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.common.schemas import Address, OperationOut, Strict

Fen = int
Signature = str


class PreAuthIn(Strict):
    """A pre-authorisation as the card signed it (``HardWallet.sign_preauth``)."""

    card: Address
    merchant: Address
    max_amount_fen: int = Field(strict=True, gt=0, lt=2**128)
    # A uint64 on chain, but stored in a signed 64-bit column (as the card payments' counter).
    counter: int = Field(strict=True, ge=0, lt=2**63, description="the card's counter, below 2**63")
    time: int = Field(strict=True, ge=0, lt=2**64)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class CompleteIn(Strict):
    amount_fen: int = Field(strict=True, gt=0, lt=2**128, description="what the machine really dispensed")


class PreAuthOut(BaseModel):
    id: int | None = Field(description="the pre-authorisation's id on chain (None while pending)")
    card: str
    counter: int
    holder: str
    merchant: str
    authorized_fen: int
    captured_fen: int = 0
    status: Literal["pending", "open", "completed", "released", "failed"]
    expires_at: int | None = None
    expired: bool = False
    operation_id: str
    tx_hash: str | None = None
    replayed: bool = False


class ProgrammeIn(Strict):
    sponsor: Address = Field(description="a registered wallet (custodial, to fund through the gateway)")
    merchant: Address = Field(description="the recycling merchant whose bins pay from the programme")
    daily_cap_fen: int = Field(
        strict=True, gt=0, lt=2**128, description="most one person is paid a Beijing day"
    )


class FundIn(Strict):
    amount_fen: int = Field(strict=True, gt=0, lt=2**128)


class ProgrammeOut(BaseModel):
    id: int
    sponsor: str
    merchant: str
    daily_cap_fen: int
    budget_fen: int
    funded_fen: int
    paid_fen: int
    closed: bool


class ProgrammeOpOut(OperationOut):
    programme_id: int | None = None


class PayoutIn(Strict):
    programme: int = Field(strict=True, ge=1, lt=2**63)
    to: Address = Field(description="a personal wallet, or a card (its holder's wallet is paid)")
    amount_fen: int = Field(strict=True, gt=0, lt=2**128)
    reference: str = Field(min_length=1, max_length=64, description="the bin's own drop number")


class PayoutOut(BaseModel):
    programme: int
    reference: str
    to: str
    person: str | None = None
    amount_fen: int
    paid_today_fen: int | None = None
    status: str
    operation_id: str
    tx_hash: str | None = None
    replayed: bool = False
