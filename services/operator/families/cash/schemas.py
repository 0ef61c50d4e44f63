"""The cash family's request and response models: wallets, issuance, redemption, transfers and
the regulator's wallet reference (amounts in fen, names ending ``_fen``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.schemas import Address, AmountFen, OperationOut, Strict, example


class WalletIn(Strict):
    model_config = example(
        {"kind": "personal", "tier": 3, "display_name": "张三", "identity": "110101199003077777"}
    )

    kind: Literal["personal", "merchant", "institution"]
    tier: int = Field(ge=1, le=4)
    display_name: str = Field(min_length=1, max_length=200)
    merchant_category: int = Field(default=0, ge=0, le=9999, description="ISO 18245 MCC, merchants only")
    identity: str = Field(
        min_length=1, max_length=200, description="Identity document reference; only its hash is stored"
    )
    custody: Literal["custodial", "self"] = "custodial"
    address: Address | None = Field(default=None, description="Required for self-custody wallets")

    @model_validator(mode="after")
    def _consistent(self) -> WalletIn:
        if self.custody == "self" and self.address is None:
            raise ValueError("a self-custody wallet needs its address")
        if self.custody == "custodial" and self.address is not None:
            raise ValueError("a custodial wallet's address is created by the service; do not send one")
        if self.address is not None and int(self.address, 16) == 0:
            raise ValueError("the zero address cannot be a wallet")
        if (self.kind == "merchant") != (self.merchant_category != 0):
            raise ValueError("merchants, and only merchants, need a non-zero merchant_category")
        if not self.identity.split():
            raise ValueError("the identity is blank: send the identity document's reference")
        return self


MAX_WALLET_BATCH = 10_000


class WalletBatchIn(Strict):
    wallets: list[WalletIn] = Field(
        min_length=1,
        max_length=MAX_WALLET_BATCH,
        description="Registered on chain 200 to a transaction (registerBatch), all or nothing per 200",
    )


class WalletBatchRow(BaseModel):
    row: int = Field(description="1-based position in the request")
    address: str
    display_name: str
    operation_id: str


class WalletBatchOut(BaseModel):
    status: Literal["confirmed", "pending"]
    wallets: list[WalletBatchRow]
    operations: list[OperationOut]


class Limits(BaseModel):
    balance_cap_fen: int | None
    payment_cap_fen: int | None
    daily_cap_fen: int | None


class WalletOut(BaseModel):
    address: str
    kind: str
    tier: int
    merchant_category: int
    display_name: str | None
    custody: str | None
    registered: bool
    frozen: bool
    balance_fen: int
    limits: Limits | None
    spent_today_fen: int
    remaining_today_fen: int | None


class IssuanceIn(Strict):
    model_config = example({"to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "amount_fen": 100_000})

    to: Address
    amount_fen: AmountFen


class RedemptionIn(Strict):
    holder: Address = Field(alias="from")
    amount_fen: AmountFen

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TransferIn(Strict):
    sender: Address = Field(alias="from")
    to: Address
    amount_fen: AmountFen

    model_config = example(
        {
            "from": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "to": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "amount_fen": 2_500,
        },
        populate_by_name=True,
    )


class WalletRef(Strict):
    address: Address


class WalletCreatedOut(OperationOut):
    address: str | None = Field(default=None, description="the new wallet's address (also request.address)")


class WalletItem(BaseModel):
    """A wallet as a listing shows it: the operator's record and the chain's frozen flag."""

    address: str
    kind: str
    tier: int
    merchant_category: int
    display_name: str
    custody: str
    frozen: bool
    created_at: datetime
