"""What the prepaid routes take and answer: enrolments, packages, sessions and claims in; a
package (with its history) and listings out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, Field

from services.common.schemas import Address, AmountFen128, EcdsaSignature, OperationOut, example
from services.operator.schemas import Strict

PackageId = Annotated[int, Path(ge=1, le=2**63 - 1)]
MAX_SESSIONS = 2**32 - 1
PackageState = Literal["open", "consumed", "cancelled", "refunded"]


class EnrolIn(Strict):
    merchant: Address
    supervised_bps: int = Field(ge=1, le=10_000, description="share of each prepayment held in escrow")
    ceiling_fen: int = Field(
        default=0, strict=True, ge=0, lt=2**255, description="per-package ceiling, 0 for none"
    )


class PackageIn(Strict):
    model_config = example(
        {
            "consumer": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "merchant": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "sessions": 10,
            "unit_price_fen": 10_000,
            "expires_at": "2026-12-31T23:59:59+08:00",
            "cancellation_fee_fen": 5_000,
        }
    )

    consumer: Address
    merchant: Address
    sessions: int = Field(ge=1, le=MAX_SESSIONS)
    unit_price_fen: AmountFen128
    expires_at: datetime = Field(description="end date (ISO 8601 with a time zone)")
    cancellation_fee_fen: int = Field(default=0, strict=True, ge=0, lt=2**128)


class SessionsIn(Strict):
    sessions: int = Field(ge=1, le=MAX_SESSIONS)


class ClaimIn(Strict):
    sessions: int = Field(ge=1, le=MAX_SESSIONS)
    deadline: int = Field(ge=0, lt=2**64, description="unix seconds the consumer's signature is valid until")
    signature: EcdsaSignature = Field(
        description="consumer's EIP-712 Consume signature: 65 bytes, or 64 (EIP-2098 compact, expanded)"
    )


class RefundPageIn(Strict):
    offset: int = Field(default=0, ge=0, lt=2**63)
    limit: int = Field(default=100, ge=1, le=100)


class PackageOut(BaseModel):
    id: int
    consumer: str
    merchant: str
    status: str
    sessions: int
    used: int
    unit_price_fen: int
    cancellation_fee_fen: int
    expires_at: int
    deposited_fen: int
    released_fen: int
    refunded_fen: int
    held_fen: int
    signature_nonce: int
    history: list[dict[str, Any]]


class PackageCreatedOut(OperationOut):
    package_id: int | None = Field(default=None, description="the new package's id (null while pending)")


class PackageItem(BaseModel):
    """A package as a listing shows it; ``GET /packages/{package_id}`` adds its history."""

    id: int
    consumer: str
    merchant: str
    status: str
    sessions: int
    used: int
    unit_price_fen: int
    expires_at: int
    held_fen: int
