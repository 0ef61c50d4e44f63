"""The banking family's request and answer bodies. Account numbers come in once (opening an
account) and never go out: every answer carries the masked number."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.common.schemas import Address, AmountFen128


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountIn(_In):
    number: str = Field(min_length=12, max_length=19, pattern=r"^[0-9]+$", examples=["6222020200012345678"])
    holder: str = Field(min_length=1, max_length=200)
    opening_balance_fen: int = Field(default=0, strict=True, ge=0, lt=2**63)


class AccountOut(BaseModel):
    id: int
    institution: int
    masked: str
    holder: str
    balance_fen: int


class LinkIn(_In):
    account_id: int = Field(strict=True, gt=0, lt=2**31)


class LinksOut(BaseModel):
    wallet: str
    accounts: list[AccountOut]


class BankTransferIn(_In):
    wallet: Address
    account_id: int = Field(strict=True, gt=0, lt=2**31)
    amount_fen: AmountFen128


class BankTransferOut(BaseModel):
    id: str
    kind: str
    institution: int
    wallet: str
    account: str  # masked
    amount_fen: int
    status: str
    operation_id: str | None = None
    tx_hash: str | None = None
    problem: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime


class InstitutionIn(_In):
    signer: Address
    name: str = Field(min_length=1, max_length=32, pattern=r"^[ -~]+$", examples=["abc-xiangcheng"])


class ReserveIn(_In):
    amount_fen: AmountFen128


class InstitutionOut(BaseModel):
    id: int
    signer: str
    name: str
    reserve_fen: int
    outstanding_fen: int
    issued_fen: int
    redeemed_fen: int
    headroom_fen: int


class InstitutionsOut(BaseModel):
    items: list[InstitutionOut]
    supply_fen: int
    total_reserve_fen: int


class StatementLine(BaseModel):
    at: datetime | None = None
    tx_hash: str | None = None
    side: str  # out: our customer paid another's | in: another's paid ours | issued | redeemed
    wallet: str
    counterparty: str
    counterparty_institution: int
    amount_fen: int


class JournalLine(BaseModel):
    entry: int
    memo: str
    account: str  # masked
    amount_fen: int
    at: datetime


class StatementOut(BaseModel):
    institution: int
    chain: list[StatementLine]
    journal: list[JournalLine]
    totals: dict[str, int]
