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
    outcome: str = Field(description="running | passed | failed | skipped | refund-pending")
    detail: str | None = Field(description="why: a failure's cause, a skip's reason (frozen, held)")


class SpotCheckGroup(BaseModel):
    targets: int
    skipped: int = Field(description="not probed: the merchant's wallet frozen or under a hold")
    skipped_by_reason: dict[str, int] = Field(description="skipped targets by reason: frozen, held")
    probed: int = Field(description="passed + failed + refund_pending")
    passed: int
    refund_pending: int = Field(
        description="paid, the refund waiting (a hold or a freeze came first); retried every round"
    )
    coverage: float = Field(description="probed / (targets - skipped)")
    pass_rate: float = Field(description="passed / (passed + failed): a waiting refund is neither yet")


class SpotCheckReport(BaseModel):
    day: str
    targets: int
    skipped: int
    skipped_by_reason: dict[str, int]
    probed: int
    passed: int
    refund_pending: int
    coverage: float
    pass_rate: float
    meets_target: bool = Field(description="coverage and pass rate both above 85% (the pilot's target)")
    by_area: dict[str, SpotCheckGroup]
    by_category: dict[str, SpotCheckGroup]
    checks: list[SpotCheckOut]
