"""What the disbursement routes take and answer: batch metadata and rows in, a batch's progress
and the chain's figures out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, Field, field_validator

from services.common.schemas import Address, example
from services.operator.schemas import Strict

REFERENCE = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
PURPOSE = r"^[a-z][a-z0-9_-]{0,31}$"
Reference = Annotated[str, Path(pattern=REFERENCE, description="the payer's batch reference")]
RowIndex = Annotated[int, Path(ge=0, lt=2**31)]
Mode = Literal["explicit", "merkle"]
BATCH_STATUSES = Literal["draft", "ready", "approved", "executing", "executed", "closed", "cancelled"]


class BatchMeta(Strict):
    reference: str = Field(
        pattern=REFERENCE, description="unique batch reference; it can never be paid twice"
    )
    payer: Address = Field(description="custodial merchant (employer) or institution wallet that pays")
    purpose: str = Field(pattern=PURPOSE, examples=["salary", "subsidy", "bonus"])
    mode: Mode = Field(
        default="explicit",
        description="explicit: rows paid in chunks of 200; merkle: one root for any size, claimed per row",
    )
    ends_at: datetime = Field(description="end date (ISO 8601 with a time zone); after it the payer reclaims")


class BatchIn(BatchMeta):
    model_config = example(
        {
            "reference": "payroll-2026-05",
            "payer": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "purpose": "salary",
            "ends_at": "2026-06-30T23:59:59+08:00",
            "unit": "yuan",
            "rows": [
                {"recipient": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "amount": "4500.00"},
                {"identity": "110101199003077777", "amount": "3800.50"},
            ],
        }
    )

    unit: Literal["fen", "yuan"] = Field(description="the unit of every row's amount; no default")
    rows: list[dict[str, Any]] = Field(
        max_length=100_000,
        description='rows like {"recipient": "0x..", "amount": 1234} or {"identity": "..", "amount": "12.3"}',
    )


class OfficerIn(Strict):
    account: Address
    role: Literal["checker", "maker", "none"]

    @field_validator("account")
    @classmethod
    def _not_the_zero_address(cls, v: str) -> str:
        """No one holds the zero address's key: an officer there could never sign (red team 9)."""
        if int(v, 16) == 0:
            raise ValueError("the zero address cannot be an officer")
        return v


class ExecuteIn(Strict):
    push: Literal["all", "custodial"] = Field(
        default="all", description="Merkle batches: push claims for every recipient, or custodial ones only"
    )


class ChainFigures(BaseModel):
    status: str
    funded_fen: int
    paid_fen: int
    exceptions_fen: int
    reclaimed_fen: int
    outstanding_fen: int


class BatchOut(BaseModel):
    reference: str
    batch_id: str
    payer: str
    purpose: str
    mode: str
    status: str
    total_fen: int
    ends_at: int
    root: str | None
    rows_total: int
    rows_done: int
    progress: str
    rows_by_status: dict[str, int]
    chain: ChainFigures | None
    error: str | None
    operation_id: str | None = None


class BatchItem(BaseModel):
    """A batch as a listing shows it (its record here; ``GET /{reference}`` adds the chain's figures)."""

    reference: str
    batch_id: str
    payer: str
    purpose: str
    mode: str
    status: str
    total_fen: int
    ends_at: int
    rows_total: int
    rows_done: int
    error: str | None
    created_at: datetime
