"""The utilities family's request and response models (amounts in fen)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.common.schemas import Address, Strict

Period = str


class BillerIn(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$", examples=["xc-water"])
    name: str = Field(min_length=1, max_length=128, examples=["相城水务"])
    kind: Literal["water", "power", "gas"]
    wallet: Address = Field(description="the biller's custodial merchant wallet (MCC 4900)")
    account_pattern: str = Field(
        min_length=1, max_length=128, description="a regular expression every account number matches"
    )
    mandate_cap_fen: int = Field(strict=True, gt=0, lt=2**127, description="the most one auto-debit pulls")
    debit_day: int = Field(
        strict=True, ge=1, le=28, description="the day of the month (Beijing) auto-debits run"
    )


class BillerOut(BaseModel):
    id: str
    name: str
    kind: str
    wallet: str
    account_pattern: str
    mandate_cap_fen: int
    debit_day: int


class BillIn(Strict):
    account: str = Field(min_length=1, max_length=64)
    period: Period = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-11"])
    amount_fen: int = Field(strict=True, gt=0, lt=2**63)


class BillOut(BaseModel):
    id: int
    biller: str
    account: str
    period: str
    amount_fen: int
    status: Literal["open", "paying", "paid"]
    channel: str | None = None
    code_id: str | None = None
    operation_id: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    paid_at: int | None = None


class PayBillIn(Strict):
    payer: Address = Field(description="the resident's custodial wallet")
    period: Period | None = Field(default=None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")


class CodeForBillIn(Strict):
    period: Period | None = Field(default=None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    expires_in_s: int = Field(strict=True, default=900, ge=60, le=86_400)


class AutoDebitIn(Strict):
    account: str = Field(min_length=1, max_length=64)
    holder: Address = Field(description="the resident's custodial wallet")
    expires_at: int = Field(strict=True, gt=0, lt=2**64, description="when the mandate ends (Unix seconds)")


class AutoDebitOut(BaseModel):
    id: int
    biller: str
    account: str
    holder: str
    mandate_id: int | None
    revoked: bool
    operation_id: str


class RunOut(BaseModel):
    paid: int
    failed: int
    skipped: int
