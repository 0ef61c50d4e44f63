"""The refunds family's request and response models: refunds, statements, spot checks."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.common.schemas import Strict, example


class RefundIn(Strict):
    model_config = example({"amount_fen": 1_200, "reason": "one dish was not served"})

    amount_fen: int = Field(gt=0, lt=2**63, description="how much of the payment to refund, in fen")
    reason: str | None = Field(default=None, min_length=1, max_length=200)


class RefundOut(BaseModel):
    id: int
    payment_kind: str = Field(description="code: a payment of a payment code")
    payment: str = Field(description="the payment's id (a code payment's id)")
    code_id: str | None
    merchant: str
    payer: str = Field(description="who gets the cash part back (a card payment: the card's holder)")
    amount_fen: int
    cash_fen: int | None = Field(description="once confirmed: the part paid back to the payer")
    voucher_fen: int | None = Field(description="once confirmed: the part returned to the voucher programme")
    reason: str | None
    status: str = Field(description="pending | confirmed | failed")
    operation_id: str | None
    tx_hash: str | None
    day: str = Field(description="the Beijing day the refund was asked (statements count it there)")


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
