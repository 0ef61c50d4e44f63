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
    # issue 22: the amount the regulator holds (cannot move), and a recovered wallet's successor
    held_fen: int = 0
    retired: bool = False
    successor: str | None = None


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


# -- one person, one identity; holds, court orders, recovery (issue 22) -------------------------

# A case number or a hold's reason is stored on chain as bytes32: 1 to 32 bytes of UTF-8 (a
# Chinese case number such as "(2026)京0105执123号" is 24 bytes). Checked again in the service.
CaseText = Field(min_length=1, max_length=32, description="1 to 32 bytes of UTF-8, stored on chain")


class PersonalWalletLimitIn(Strict):
    model_config = example({"limit": 1})

    limit: int = Field(ge=1, le=255, description="personal wallets one identity may hold per tier")


class PersonalWalletLimitOut(BaseModel):
    limit: int
    operation: OperationOut | None = None


class HoldIn(Strict):
    model_config = example(
        {
            "wallet": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "amount_fen": 50_000,
            "reason": "judicial freeze",
            "case_number": "(2026)京0105执123号",
        }
    )

    wallet: Address
    amount_fen: AmountFen
    reason: str = CaseText
    case_number: str = CaseText


class HoldOut(BaseModel):
    hold_id: int
    wallet: str
    amount_fen: int
    active: bool
    reason: str
    case_number: str


class HoldsOut(BaseModel):
    wallet: str
    held_fen: int
    holds: list[HoldOut]


class HoldPlacedOut(OperationOut):
    hold_id: int | None = None


class CourtOrderIn(Strict):
    model_config = example(
        {
            "from": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "to": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "amount_fen": 50_000,
            "case_number": "(2026)京0105执123号",
            "hold_id": 1,
        }
    )

    from_wallet: Address = Field(alias="from")
    to: Address
    amount_fen: AmountFen
    case_number: str = CaseText
    hold_id: int = Field(default=0, ge=0, lt=2**255, description="the hold it executes against (0: none)")


class CourtOrderOut(BaseModel):
    order_id: int
    status: str
    from_wallet: str = Field(serialization_alias="from")
    to: str
    amount_fen: int
    case_number: str
    hold_id: int
    maker: str


class CourtOrderProposedOut(OperationOut):
    order_id: int | None = None


class RecoveryIn(Strict):
    model_config = example(
        {"evidence": "face check 2026-11-26 counter 3, ID card 110101199003077777 seen by clerk 17"}
    )

    evidence: str = Field(
        min_length=1,
        max_length=2000,
        description="the identity verification record; only its SHA-256 is stored (on chain too)",
    )
    custody: Literal["custodial", "self"] = "custodial"
    address: Address | None = Field(default=None, description="the new wallet, for self-custody")

    @model_validator(mode="after")
    def _consistent(self) -> RecoveryIn:
        if (self.custody == "self") != (self.address is not None):
            raise ValueError("a self-custody replacement needs its address; a custodial one must not give it")
        return self


class RecoveryOut(BaseModel):
    recovery_id: int
    status: str
    lost: str
    replacement: str
    maker: str
    evidence_hash: str


class RecoveryMoveRefused(BaseModel):
    """A move of a family-held thing the chain refused (its problem type and detail)."""

    item: str
    kind: str
    type: str
    detail: str


class RecoveryHoldingsOut(BaseModel):
    """What a sweep moved of the families' holdings: one operation per thing (voucher holding,
    package, mandate, card, disbursement exception or leaf), and the moves refused."""

    moves: list[OperationOut] = Field(default_factory=list)
    refused: list[RecoveryMoveRefused] = Field(default_factory=list)


class RecoveryApprovedOut(OperationOut):
    """The approval's operation; ``holdings``: the families' holdings moved after it (null while
    the approval is pending: ``POST /v1/regulator/recoveries/{id}/holdings`` moves them later)."""

    holdings: RecoveryHoldingsOut | None = None


class RecoveryProposedOut(OperationOut):
    recovery_id: int | None = None
    replacement: str | None = None
