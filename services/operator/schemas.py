"""Request and response models of the operator API (amounts in fen, names ending ``_fen``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from services.common.keys import Role
from services.common.schemas import Address, Strict


class ApiKeyIn(Strict):
    role: Role
    label: str = Field(default="", max_length=200)
    wallet: Address | None = Field(
        default=None,
        description="Merchant keys: the merchant's registered wallet (required). Checker keys: the "
        "registered custodial wallet that signs their approvals (required). Officer keys: the village "
        "officer's registered custodial wallet (required), which signs their proposals, approvals and "
        "payments.",
    )
    expires_at: datetime | None = Field(
        default=None, description="after this instant (ISO 8601, time zone) the key is refused"
    )
    institution: int | None = Field(
        default=None,
        ge=1,
        lt=2**31,
        description="Operator keys: the operator institution the key acts for (two tiers); it reaches "
        "only the wallets and bank accounts that institution serves. Unset: institution 1.",
    )

    @model_validator(mode="after")
    def _bound_keys_have_wallets(self) -> ApiKeyIn:
        if self.role == Role.HOLDER:
            raise ValueError(
                "holder keys come from sign-in (POST /v1/holder/session) or POST /v1/holder/keys"
            )
        if self.role == Role.MERCHANT and self.wallet is None:
            raise ValueError("a merchant key needs its merchant wallet")
        if self.role == Role.CHECKER and self.wallet is None:
            raise ValueError("a checker key needs the checker's custodial wallet")
        if self.role == Role.OFFICER and self.wallet is None:
            raise ValueError("an officer key needs the officer's custodial wallet")
        if self.wallet is not None and self.role not in (Role.MERCHANT, Role.CHECKER, Role.OFFICER):
            raise ValueError("only merchant, checker and officer keys speak for a wallet")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expires_at needs a time zone")
        if self.institution is not None and self.role != Role.OPERATOR:
            raise ValueError("only operator keys act for an institution")
        return self


class ApiKeyOut(BaseModel):
    id: int
    role: str
    label: str
    wallet: str | None = None
    institution: int | None = None
    key: str = Field(description="Shown once; only its hash is stored.")
    created_at: datetime
    expires_at: datetime | None = None


class ApiKeyInfo(BaseModel):
    """A key as the admin lists it: never the key, never its hash; the prefix to recognise it."""

    id: int
    prefix: str
    role: str
    label: str
    wallet: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    revoked_at: datetime | None
    active: bool


class EventOut(BaseModel):
    block_number: int
    log_index: int
    tx_hash: str
    contract: str
    name: str
    args: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventOut]
    total: int
    offset: int
    limit: int
