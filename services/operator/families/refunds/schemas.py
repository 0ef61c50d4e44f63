"""The refunds family's request and response models: refunds, statements, spot checks."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StatementLine(BaseModel):
    """One code's or terminal's day: payments, refunds, vouchers, net (fen and yuan)."""

    kind: str = Field(description="code | terminal")
    id: str
    payments: int
    paid_fen: int
    voucher_fen: int = Field(description="of paid_fen, what voucher programmes paid")
    refunds: int
    refunded_fen: int
    refunded_voucher_fen: int = Field(description="of refunded_fen, what went back to voucher programmes")
    net_fen: int = Field(description="paid_fen - refunded_fen: what the merchant keeps of the day")
    paid_yuan: str
    refunded_yuan: str
    net_yuan: str


class Statement(BaseModel):
    merchant: str
    day: str = Field(description="a Beijing calendar day (UTC+8), YYYY-MM-DD")
    lines: list[StatementLine]
    totals: StatementLine
    transactions: list[str] = Field(description="every transaction the statement counts (payments, refunds)")


class SpotCheckOut(BaseModel):
    day: str
    target_kind: str
    target_id: str
    merchant: str
    category: int
    area: str
    outcome: str
    detail: str | None


class SpotCheckGroup(BaseModel):
    targets: int
    probed: int
    passed: int
    coverage: float = Field(description="probed / targets")
    pass_rate: float = Field(description="passed / probed")


class SpotCheckReport(BaseModel):
    day: str
    targets: int
    probed: int
    passed: int
    coverage: float
    pass_rate: float
    meets_target: bool = Field(description="coverage and pass rate both above 85% (the pilot's target)")
    by_area: dict[str, SpotCheckGroup]
    by_category: dict[str, SpotCheckGroup]
    checks: list[SpotCheckOut]
