"""Request and response models of the hard-wallet family: terminals, offline payments, cards,
door access and quick-pay mandates (amounts in fen, names ending ``_fen``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from chain.clients.hardwallet import MAX_BATCH, RejectReason
from services.common.schemas import Address, AmountFen, OperationOut, Strict, example

Form = Literal["card", "sim", "wearable"]
Hex32 = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$")]
Signature = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="65 bytes: r || s || v")]
CANTEEN_MCC = 5812  # ISO 18245: eating places and restaurants


# -- terminals ---------------------------------------------------------------------------------


class TerminalIn(Strict):
    model_config = example(
        {"merchant": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "location": "staff canteen, counter 1"}
    )

    merchant: Address
    location: str = Field(min_length=1, max_length=200)


class TerminalOut(BaseModel):
    id: str
    merchant: str
    category: int
    canteen: bool = Field(description="the merchant is of the canteen category (MCC 5812)")
    location: str
    revoked: bool
    created_at: datetime
    key: str | None = Field(default=None, description="The terminal's API key: in the creation answer only")


# -- offline payments --------------------------------------------------------------------------


class SignedPaymentIn(Strict):
    card: Address
    merchant: Address
    # Strict integers: what the card signed is an integer; 10.0, "10" or true is not what it signed
    # (red team, LOW). A zero amount passes: its outcome is answered per payment (rejected).
    amount: int = Field(strict=True, ge=0, lt=2**255, description="fen")
    # The card's counter is a uint64 on chain, but the gateway keeps the highest one it saw in a
    # signed 64-bit column: a counter from 2**63 on is refused here, before anything is sent
    # (it used to settle on chain and then fail to be recorded: a 500 after the money moved).
    counter: int = Field(strict=True, ge=0, lt=2**63, description="the card's payment counter, below 2**63")
    time: int = Field(strict=True, ge=0, lt=2**64)
    signature: Signature


class UploadIn(Strict):
    payments: list[SignedPaymentIn] = Field(min_length=1, max_length=MAX_BATCH)


class PaymentResult(BaseModel):
    index: int
    card: str
    counter: int
    merchant: str
    amount_fen: int
    outcome: Literal["settled", "duplicate", "rejected", "shortfall"]
    paid_fen: int = Field(description="what reached the merchant")
    reason: str | None = Field(
        default=None,
        description="rejected: why, one of "
        + ", ".join(r.name.lower().replace("_", "-") for r in RejectReason if r is not RejectReason.NONE),
    )
    detail: str | None = Field(
        default=None,
        description="merchant-refused, holder-refused, payee-not-merchant: the token's error selector",
    )
    final: bool = Field(description="false only when uploading it again later may settle it")


class UploadOut(BaseModel):
    id: int
    terminal: str
    status: str
    operation_id: str
    tx_hash: str | None
    block_number: int | None
    replayed: bool = Field(description="the answer of an earlier upload of the same batch; nothing was sent")
    counts: dict[str, int]
    results: list[PaymentResult]


# -- cards -------------------------------------------------------------------------------------


class CardIn(Strict):
    model_config = example(
        {
            "card": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
            "holder": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "form": "card",
        }
    )

    card: Address = Field(description="the address of the key inside the card's secure element")
    holder: Address = Field(description="the holder's registered personal wallet")
    form: Form = "card"
    serial: str | None = Field(default=None, max_length=64)


class LoadIn(Strict):
    amount_fen: AmountFen


class CardIssuedOut(OperationOut):
    card: str = Field(description="the card's address")
    holder: str


class CardOut(BaseModel):
    card: str
    holder: str
    form: str
    serial: str | None
    status: str
    reserve_fen: int
    loaded_fen: int
    settled_fen: int
    refunded_fen: int
    shortfall_fen: int
    lost_at: int | None
    grace_ends_at: int | None
    last_counter_seen: int = Field(description="highest counter the gateway saw processed (0: none)")
    offline_cap_fen: int


# -- door access -------------------------------------------------------------------------------


class AccessPointIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    location: str = Field(default="", max_length=200)


class GrantIn(Strict):
    """Exactly one of ``holder`` and ``form`` (the schema says at least one property)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    holder: Address | None = Field(default=None, description="this holder's cards")
    form: Form | None = Field(default=None, description="every card of this form")


class GrantOut(BaseModel):
    id: int
    holder: str | None
    form: str | None


class AccessPointOut(BaseModel):
    id: str
    name: str
    location: str
    grants: list[GrantOut]
    key: str | None = Field(
        default=None, description="The access point's API key: in the creation answer only"
    )


class ChallengeOut(BaseModel):
    challenge: str
    expires_at: int
    typed_data: dict[str, object] = Field(description="what the card signs (EIP-712), with card left to fill")


class AccessIn(Strict):
    card: Address
    challenge: Hex32
    signature: Signature


class DecisionOut(BaseModel):
    id: int
    at: datetime
    access_point: str
    card: str
    holder: str | None
    allowed: bool
    reason: str


# -- quick-pay ---------------------------------------------------------------------------------


class MandateIn(Strict):
    model_config = example(
        {
            "holder": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "merchant": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "per_payment_cap_fen": 5_000,
            "daily_cap_fen": 20_000,
            "expires_at": 1798761600,
        }
    )

    holder: Address = Field(description="a custodial wallet: the service signs the grant for it")
    merchant: Address
    per_payment_cap_fen: int = Field(strict=True, gt=0, lt=2**128)
    daily_cap_fen: int = Field(strict=True, gt=0, lt=2**128)
    expires_at: int = Field(gt=0, lt=2**64, description="Unix seconds")


class PullIn(Strict):
    amount_fen: int = Field(strict=True, gt=0, lt=2**128)
    reference: str = Field(
        min_length=1, max_length=64, pattern=r"^[\w.:/-]+$", description="the order number"
    )


class MandateOut(BaseModel):
    id: int
    holder: str
    merchant: str
    per_payment_cap_fen: int
    daily_cap_fen: int
    expires_at: int
    revoked: bool
    spent_today_fen: int
    total_pulled_fen: int


class MandateOpOut(OperationOut):
    mandate_id: int | None = None


# -- earmarked purses on cards (养老支付凭证, meal allowances) --------------------------------------

CARE_MCC = 8050  # ISO 18245: nursing and personal care facilities (the elderly-care voucher's)
PurseId = Annotated[int, Field(strict=True, ge=1, lt=2**32, description="the purse programme's id")]
Category = Annotated[int, Field(strict=True, ge=1, lt=2**16, description="a merchant category code")]


class PurseProgrammeIn(Strict):
    model_config = example(
        {
            "programme": 1,
            "funder": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "per_card_cap_fen": 300_00,
            "expires_at": 1_830_000_000,
            "at_expiry": "funder",
            "categories": [CARE_MCC],
        }
    )

    programme: PurseId
    funder: Address = Field(description="the registered wallet that funds the purses (custodial here)")
    per_card_cap_fen: Annotated[int, Field(strict=True, gt=0, lt=2**128)]
    expires_at: Annotated[int, Field(strict=True, gt=0, lt=2**64)] = Field(description="unix seconds")
    at_expiry: Literal["funder", "holder"] = Field(
        default="funder",
        description="where unspent value goes at expiry: back to the funder (default) or to the holder",
    )
    categories: list[Category] = Field(min_length=1, max_length=8)


class PurseProgrammeOut(BaseModel):
    programme: int
    funder: str
    per_card_cap_fen: int
    expires_at: int
    at_expiry: str
    categories: list[int]
    funded_fen: int
    spent_fen: int
    expired_fen: int
    held_fen: int


class PurseFundIn(Strict):
    programme: PurseId
    amount_fen: AmountFen


class PurseOut(BaseModel):
    """One purse of a card: its balance and books, and the programme's terms a card needs to spend
    it offline (its merchant categories and expiry: wallets.hardwallet.HardWallet.credit_purse)."""

    programme: int
    balance_fen: int
    funded_fen: int
    spent_fen: int
    expired_fen: int
    categories: list[int] = Field(description="the merchant categories the purse may be spent at")
    expires_at: int = Field(description="unix seconds: spendable while the settlement's block time <= it")
    expired: bool = Field(description="past its expiry at `as_of`: it pays nothing any more")


class CardPursesOut(BaseModel):
    card: str
    cash_reserve_fen: int
    as_of: int = Field(description="the chain's block time the balances were read at (unix seconds)")
    purses: list[PurseOut] = Field(description="in spending order: the first allowed purse pays first")
