"""The paycodes family's request and response models: codes, the payer forms, payments."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, Field, model_validator

from services.common.schemas import Address, Strict, example

CodeId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,24}$")]
MAX_DYNAMIC_S = 7 * 86_400


class CodeIn(Strict):
    model_config = example(
        {
            "merchant": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "amount_fen": 3_850,
            "reference": "bill-0042",
        }
    )

    merchant: Address
    amount_fen: int | None = Field(
        default=None, strict=True, gt=0, lt=2**63, description="a bill: the code is dynamic"
    )
    reference: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[\w.:/-]+$")
    expires_in_s: int = Field(default=900, ge=1, le=MAX_DYNAMIC_S, description="dynamic codes only")

    @model_validator(mode="after")
    def _bill(self) -> CodeIn:
        if self.reference is not None and self.amount_fen is None:
            raise ValueError("a reference belongs to a bill: give amount_fen too")
        return self


class CardPaymentIn(Strict):
    """A payment the card's secure element signed at the merchant's terminal (EIP-712, bound to this
    chain and the settlement contract)."""

    card: Address
    merchant: Address
    amount: int = Field(strict=True, gt=0, lt=2**128, description="fen")
    counter: int = Field(strict=True, ge=1, lt=2**64)
    time: int = Field(strict=True, ge=0, lt=2**64)
    signature: str = Field(pattern=r"^0x([0-9a-fA-F]{2}){65}$")


class PayIn(Strict):
    form: Literal["custodial", "signed-transaction", "voucher", "card"]
    payer: Address | None = Field(default=None, description="custodial and voucher forms: the payer's wallet")
    programme_id: int | None = Field(
        default=None,
        ge=1,
        lt=2**63,
        description="voucher form: the programme that pays its share of the bill",
    )
    payment: CardPaymentIn | None = Field(default=None, description="card form: the card-signed payment")
    amount_fen: int | None = Field(
        default=None, strict=True, gt=0, lt=2**63, description="static codes; a bill's must match"
    )
    signed_transaction: str | None = Field(
        default=None,
        pattern=r"^0x([0-9a-fA-F]{2})+$",
        max_length=4_000,
        description="signed-transaction form: the payer's own signed DigitalCash transfer to the merchant",
    )

    @model_validator(mode="after")
    def _form(self) -> PayIn:
        if self.form != "voucher" and self.programme_id is not None:
            raise ValueError("programme_id belongs to the voucher form")
        if (self.form == "card") != (self.payment is not None):
            raise ValueError("the card form needs payment (and only the card form has one)")
        if self.form == "card" and (self.payer is not None or self.signed_transaction is not None):
            raise ValueError("the card form takes only payment (and amount_fen)")
        if self.form == "voucher" and (self.payer is None or self.programme_id is None):
            raise ValueError("the voucher form needs payer and programme_id")
        if self.form == "custodial" and (self.payer is None or self.signed_transaction is not None):
            raise ValueError("the custodial form needs payer (and no signed_transaction)")
        if self.form == "signed-transaction" and (self.signed_transaction is None or self.payer is not None):
            raise ValueError("the signed-transaction form needs signed_transaction (and no payer)")
        return self


class PaymentOut(BaseModel):
    id: int
    form: str
    payer: str
    amount_fen: int
    status: str
    operation_id: str
    tx_hash: str | None
    settled_fen: int | None = Field(
        default=None,
        description="what reached the merchant: the amount once confirmed, a card shortfall's covered "
        "part (the code is then `short`), 0 if failed, null while pending",
    )


class CodeExtras(BaseModel):
    """What xcpay says about a code beyond EIP-681, which has no key for it (once query keys of
    the URI: a strict EIP-681 parser refuses unknown keys, so they moved here)."""

    mcc: int = Field(description="the merchant's category code (ISO 18245)")
    ref: str | None = Field(description="the bill reference (dynamic codes with one)")
    code: str = Field(description="this code's id: report a wallet's payment at /v1/payment-codes/{code}")


class CodeOut(BaseModel):
    id: str
    merchant: str
    category: int
    kind: str
    amount_fen: int | None
    reference: str | None
    expires_at: int | None
    status: str
    uri: str = Field(
        description="strict EIP-681: ethereum:<token>@<chainId>/transfer?address=<merchant>[&uint256=<fen>]; "
        "the QR images hold exactly this"
    )
    extras: CodeExtras
    png: str
    svg: str
    payments: list[PaymentOut]
