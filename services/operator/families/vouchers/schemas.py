"""The voucher family's request and response models (consumption vouchers, union welfare)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, Field

from services.common.schemas import Address, EcdsaSignature, OperationOut, example
from services.operator.schemas import Strict

ProgrammeId = Annotated[int, Path(ge=1, le=2**63 - 1)]
CampaignIndex = Annotated[int, Path(ge=0, lt=2**31)]


class ProgrammeIn(Strict):
    model_config = example(
        {
            "issuer": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "name": "春季消费券",
            "mode": "grant-list",
            "budget_fen": 10_000_000,
            "per_person_cap_fen": 20_000,
            "starts_at": "2026-04-01T00:00:00+08:00",
            "expires_at": "2026-04-30T23:59:59+08:00",
            "categories": [5411, 5812],
            "min_bill_fen": 10_000,
            "discount_fen": 2_000,
        }
    )

    issuer: Address = Field(description="custodial institution wallet that funds the budget")
    name: str = Field(min_length=1, max_length=32, description="e.g. 'Xiangcheng spring vouchers'")
    mode: Literal["grant-list", "open-enrolment"]
    budget_fen: int = Field(strict=True, gt=0, lt=2**128)
    per_person_cap_fen: int = Field(strict=True, gt=0, lt=2**128)
    starts_at: datetime
    expires_at: datetime
    categories: list[int] = Field(
        min_length=1, max_length=32, description="allowed merchant categories (MCC)"
    )
    merchants: list[Address] = Field(
        default=[], max_length=200, description="optional explicit merchant list"
    )
    min_bill_fen: int = Field(
        default=0, strict=True, ge=0, lt=2**128, description="minimum-spend rule: bill at least this"
    )
    discount_fen: int = Field(
        default=0, strict=True, ge=0, lt=2**128, description="e.g. 20 off: the programme pays this much"
    )
    cap_per_identity: bool = Field(
        default=False,
        description="count the per-person cap over all the wallets of one identity (one red packet "
        "per person, not per wallet); set on chain right after creation, before any grant",
    )


class GrantsIn(Strict):
    unit: Literal["fen", "yuan"]
    rows: list[dict[str, Any]] = Field(max_length=100_000, description="[{recipient or identity, amount}]")


class HolderIn(Strict):
    holder: Address


class SpendIn(Strict):
    holder: Address
    merchant: Address
    bill_fen: int = Field(strict=True, gt=0, lt=2**128)


class SignedSpendIn(Strict):
    holder: Address
    bill_fen: int = Field(strict=True, gt=0, lt=2**128)
    deadline: int = Field(ge=0, lt=2**64, description="unix seconds the holder's signature is valid until")
    signature: EcdsaSignature = Field(
        description="the holder's EIP-712 Spend: 65 bytes, or 64 (EIP-2098 compact, expanded before sending)"
    )


class BatchesOut(BaseModel):
    programme_id: int
    operations: list[OperationOut]


class ProgrammeCreatedOut(OperationOut):
    programme_id: int | None = Field(default=None, description="the new programme's id (null while pending)")
    name: str = Field(description="the programme's name as text (the event holds it as bytes32)")


class ProgrammeItem(BaseModel):
    """A programme as a listing shows it; ``GET /{programme_id}`` has its full report."""

    id: int
    name: str
    issuer: str
    mode: str
    status: Literal["upcoming", "open", "expired", "closed"]
    starts_at: int
    expires_at: int
    budget_fen: int
    granted_fen: int
    spent_fen: int
    holders: int
