"""The collective family's request and response models (three-assets fund supervision).

What a caller sends and gets back; the routes (``routes.py``) validate with them and the service
(``service.py``) builds the answers. Only hashes of the texts go on chain (see ``service.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, Field, field_validator

from services.common.paging import DEFAULT_LIMIT
from services.common.schemas import Address, AmountFen, AmountFen128, OperationOut, example
from services.operator.schemas import Strict

DAY = 86_400
MAX_LIFETIME = 365 * DAY

CollectiveId = Annotated[int, Path(ge=1, le=2**63 - 1)]
ProposalId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Sha256Hex = Annotated[str, Field(pattern=r"^(0x)?[0-9a-fA-F]{64}$", description="hex SHA-256")]
Fen128 = Annotated[int, Field(strict=True, ge=0, lt=2**128)]
Text = Annotated[str, Field(min_length=1, max_length=2000)]
ProposalStateName = Literal[
    "pending", "timelocked", "executable", "executed", "rejected", "cancelled", "expired", "stale"
]


# -- request models ----------------------------------------------------------------------------


class OfficerIn(Strict):
    account: Address
    role: Literal["committee", "treasurer"] = Field(
        description="committee members propose, approve and pay; treasurers propose and pay"
    )


class OfficerChangeIn(Strict):
    account: Address
    role: Literal["committee", "treasurer", "none"] = Field(description="none removes the officer")


class TierIn(Strict):
    max_amount_fen: AmountFen128 = Field(description="inclusive limit of this tier")
    committee: int = Field(ge=0, le=16, description="committee approvals needed")
    township: bool = Field(default=False, description="the township supervisor must approve too")
    delay_s: int = Field(default=0, ge=0, lt=2**32, description="public-notice time lock once approved")


class LineIn(Strict):
    name: str = Field(min_length=1, description="at most 32 bytes of UTF-8", examples=["infrastructure"])
    budget_fen: Fen128

    @field_validator("name")
    @classmethod
    def _fits_bytes32(cls, value: str) -> str:
        if len(value.encode()) > 32 or "\0" in value:
            raise ValueError("a line name is at most 32 bytes of UTF-8, without NUL")
        return value


class YearIn(Strict):
    year: int = Field(ge=1, le=65_535, examples=[2025])
    lines: list[LineIn] = Field(min_length=1, max_length=8)


class RulesIn(Strict):
    tiers: list[TierIn] = Field(min_length=1, max_length=4, description="ascending limits")
    proposal_lifetime_s: int = Field(ge=1, le=MAX_LIFETIME)


class CollectiveIn(RulesIn, YearIn):
    model_config = example(
        {
            "name": "清水村股份经济合作社",
            "officers": [
                {"account": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "role": "committee"},
                {"account": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "role": "treasurer"},
            ],
            "tiers": [{"max_amount_fen": 500_000, "committee": 1}],
            "proposal_lifetime_s": 2_592_000,
            "year": 2026,
            "lines": [{"name": "roads", "budget_fen": 10_000_000}],
        }
    )

    name: str = Field(min_length=1, max_length=200, description="only its SHA-256 goes on chain")
    officers: list[OfficerIn] = Field(min_length=1, max_length=16)


class BudgetIn(Strict):
    line: int = Field(ge=0, le=7)
    budget_fen: Fen128


class SplitWindowIn(Strict):
    days: int = Field(
        ge=1,
        le=90,
        description="payments to a payee this many Beijing days back (today included) count toward "
        "the approval tier of a new proposal to it, with its pending proposals",
    )


class ReasonIn(Strict):
    reason: str = Field(default="", max_length=2000, description="only its SHA-256 goes on chain")


class ProposalIn(Strict):
    model_config = example(
        {
            "payee": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
            "amount_fen": 120_000,
            "line": 0,
            "purpose": "gravel for the east road",
        }
    )

    payee: Address
    amount_fen: AmountFen128
    line: int = Field(ge=0, le=7, description="budget line of the current year")
    purpose: Text = Field(description="what the money is for; only its SHA-256 goes on chain")
    evidence_sha256: Sha256Hex | None = Field(
        default=None, description="SHA-256 of the evidence document (invoice, contract), computed by you"
    )


class AssetIn(Strict):
    kind: Literal["property", "resource"]
    value_fen: Fen128 = Field(description="book value")
    description: Text = Field(description="deed, survey, location; only its SHA-256 goes on chain")


class IncomeIn(Strict):
    payer: Address = Field(description="custodial wallet that pays (a lessee, a subsidy account)")
    amount_fen: AmountFen
    asset_id: int = Field(default=0, ge=0, lt=2**63, description="asset the income belongs to, 0: none")
    memo: str = Field(default="", max_length=2000, description="only its SHA-256 goes on chain")


# -- response models ---------------------------------------------------------------------------


class CreatedOut(OperationOut):
    collective_id: int | None = None
    year_operation: OperationOut | None = None


class ProposalOperationOut(OperationOut):
    proposal_id: int | None = None


class AssetOperationOut(OperationOut):
    asset_id: int | None = None


class LineOut(BaseModel):
    line: int
    name: str
    budget_fen: int
    spent_fen: int
    remaining_fen: int


class TierOut(BaseModel):
    max_amount_fen: int
    committee: int
    township: bool
    delay_s: int


class AssetOut(BaseModel):
    id: int
    kind: str
    value_fen: int
    retired: bool
    description_sha256: str
    description: str | None
    counterparty: str | None
    annual_income_fen: int
    contract_ends_at: int
    income_received_fen: int


class IncomeOut(BaseModel):
    asset_id: int
    payer: str
    amount_fen: int
    memo_sha256: str
    at: int
    block_number: int
    tx_hash: str


class CollectiveOut(BaseModel):
    id: int
    name: str | None
    name_sha256: str
    supervisor: str
    frozen: bool
    year: int
    epoch: int
    proposal_lifetime_s: int
    officers: dict[str, str]
    tiers: list[TierOut]
    lines: list[LineOut]
    balance_fen: int
    total_income_fen: int
    total_paid_fen: int
    untagged_income_fen: int
    assets: list[AssetOut]
    income: list[IncomeOut]


class ApprovalOut(BaseModel):
    approver: str
    township: bool
    at: int
    block_number: int
    tx_hash: str


class ProposalOut(BaseModel):
    id: int
    collective_id: int
    year: int
    epoch: int
    line: int
    line_name: str | None
    proposer: str
    payee: str
    amount_fen: int
    status: str = Field(description="as stored: pending, executed, rejected, cancelled")
    state: str = Field(
        description="now: pending, timelocked, executable, executed, rejected, cancelled, expired, stale"
    )
    committee_required: int
    committee_approvals: int
    township_required: bool
    township_approved: bool
    approvals: list[ApprovalOut]
    purpose: str | None = Field(description="the purpose text, when proposed through this service")
    purpose_sha256: str
    evidence_sha256: str
    proposed_at: int
    ready_at: int | None
    executable_at: int | None
    expires_at: int
    closed_at: int | None = Field(description="when executed, rejected or cancelled")
    closed_by: str | None
    close_reason_sha256: str | None
    history: list[dict[str, Any]]


class LineTotal(BaseModel):
    year: int
    line: int
    name: str | None
    proposals: int
    executed: int
    executed_fen: int
    open: int
    open_fen: int = Field(description="pending, timelocked or executable (reserves nothing on chain)")
    rejected: int
    cancelled: int
    lapsed: int = Field(description="expired or stale")


class ProposalPage(BaseModel):
    collective_id: int
    year: int
    lines: list[LineOut] = Field(description="the current year's budget lines as the chain holds them")
    totals: list[LineTotal] = Field(description="every proposal counted by year and line")
    proposals: list[ProposalOut] = Field(description="this page of the proposals (filters and paging)")
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` (same filters) for the next page; null: no more"
    )
    limit: int = DEFAULT_LIMIT


# -- listing (issue 21: find what you created) --------------------------------------------------


class CollectiveItem(BaseModel):
    """A collective as a listing shows it; ``GET /{collective_id}`` has its lines, assets and income."""

    id: int
    name: str | None = Field(description="the name, when created through this service")
    supervisor: str
    frozen: bool
    year: int
    balance_fen: int
    total_income_fen: int
    total_paid_fen: int
