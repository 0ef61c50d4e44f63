"""The park file (``POST /v1/parks``) and the park report.

The file is one JSON document (or the same document written as TOML and converted with
``tomllib``; ``scripts/demo.py`` does that). Every field is validated here: an unknown field, a
duplicate id or wallet, a malformed address answers 422 ``invalid-request`` naming the field
(``tenants.1.staff.0``); what only the chain and the database know (a wallet not registered or of
the wrong kind, a merchant category that is not the one registered, a terminal or door point the
gateway does not know) answers 422 with its own problem type naming the field in its detail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, Field, model_validator

from services.common.schemas import Address, Strict, example

ParkId = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$", description="the park's id, e.g. 'huangqiao-fw'")
ItemId = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")


class TenantIn(Strict):
    id: str = ItemId
    name: str = Field(min_length=1, max_length=128, description="the tenant company")
    payer: Address = Field(description="the company's registered wallet that pays wages and fees")
    staff: list[Address] = Field(max_length=2000, description="its staff's registered personal wallets")


class MerchantIn(Strict):
    id: str = ItemId
    name: str = Field(min_length=1, max_length=128)
    wallet: Address = Field(description="a registered merchant wallet")
    category: int = Field(
        strict=True, ge=1, le=9999, description="its MCC as registered (5812 canteen, 5411 shop)"
    )


class FeeMandateIn(Strict):
    """A tenant's standing authorisation (a QuickPay mandate) for the park's fee wallet to pull its
    rent and utility fees: the tenant's custodial payer grants it when the park is set up."""

    tenant: str = Field(description="a tenant id of this file")
    cap_fen: int = Field(
        strict=True, gt=0, lt=2**128, description="the most one pull, and one day's pulls, may take"
    )
    expires_at: datetime


class WelfareIn(Strict):
    """The park's staff welfare (员工福利券): a voucher programme of the vouchers family, spendable
    only at the park's merchants (its explicit merchant list and their categories), funded by a
    custodial issuer (the park or a tenant's union), granting each staff member the same amount."""

    issuer: Address = Field(description="the custodial institution wallet that funds the budget")
    name: str = Field(min_length=1, max_length=32, description="at most 32 bytes of UTF-8")
    budget_fen: int = Field(strict=True, gt=0, lt=2**128)
    per_staff_fen: int = Field(
        strict=True, gt=0, lt=2**128, description="granted to every staff wallet (its cap too)"
    )
    starts_at: datetime
    expires_at: datetime


class ParkIn(Strict):
    model_config = example(
        {
            "id": "huangqiao-fw",
            "name": "黄桥未来工场",
            "area": "黄桥街道",
            "fee_wallet": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "tenants": [
                {
                    "id": "acme",
                    "name": "苏州某精密制造有限公司",
                    "payer": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
                    "staff": ["0x90F79bf6EB2c4f870365E785982E1f101E93b906"],
                }
            ],
            "merchants": [
                {
                    "id": "canteen",
                    "name": "园区食堂",
                    "wallet": "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
                    "category": 5812,
                }
            ],
            "terminals": [],
            "door_points": [],
            "fee_mandates": [
                {"tenant": "acme", "cap_fen": 5_000_000, "expires_at": "2027-12-31T23:59:59+08:00"}
            ],
        }
    )

    id: str = ParkId
    name: str = Field(min_length=1, max_length=128)
    area: str = Field(min_length=1, max_length=64, description="the district area (街道)")
    fee_wallet: Address = Field(description="the park's merchant wallet that collects rent and fees")
    tenants: list[TenantIn] = Field(min_length=1, max_length=500)
    merchants: list[MerchantIn] = Field(min_length=1, max_length=500)
    terminals: list[str] = Field(default=[], max_length=1000, description="gateway terminal ids")
    door_points: list[str] = Field(default=[], max_length=1000, description="gateway access point ids")
    fee_mandates: list[FeeMandateIn] = Field(
        default=[], max_length=500, description="rent and utility fee mandates, one per tenant at most"
    )
    welfare: WelfareIn | None = Field(default=None, description="the staff welfare voucher programme")

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        seen: dict[str, str] = {}

        def claim(address: str, where: str) -> None:
            if address in seen:
                raise ValueError(f"{where}: wallet {address} is already {seen[address]}")
            seen[address] = where

        claim(self.fee_wallet, "fee_wallet")
        for i, t in enumerate(self.tenants):
            claim(t.payer, f"tenants.{i}.payer")
            for j, s in enumerate(t.staff):
                claim(s, f"tenants.{i}.staff.{j}")
        for i, m in enumerate(self.merchants):
            claim(m.wallet, f"merchants.{i}.wallet")
        for name, ids in (
            ("tenants", [t.id for t in self.tenants]),
            ("merchants", [m.id for m in self.merchants]),
            ("terminals", self.terminals),
            ("door_points", self.door_points),
        ):
            if len(set(ids)) != len(ids):
                raise ValueError(f"{name}: ids repeat")
        tenants = {t.id for t in self.tenants}
        for i, f in enumerate(self.fee_mandates):
            if f.tenant not in tenants:
                raise ValueError(f"fee_mandates.{i}.tenant: no tenant {f.tenant!r} in this file")
        if len({f.tenant for f in self.fee_mandates}) != len(self.fee_mandates):
            raise ValueError("fee_mandates: a tenant has two")
        if self.welfare is not None:
            staff = sum(len(t.staff) for t in self.tenants)
            if self.welfare.per_staff_fen * staff > self.welfare.budget_fen:
                raise ValueError(f"welfare.budget_fen: below per_staff_fen x {staff} staff")
            if len(self.merchants) > 200 or len({m.category for m in self.merchants}) > 32:
                raise ValueError("welfare: a programme lists at most 200 merchants of 32 categories")
            if len(self.welfare.name.encode()) > 32:
                raise ValueError("welfare.name: at most 32 bytes of UTF-8")
            if self.welfare.expires_at <= self.welfare.starts_at:
                raise ValueError("welfare.expires_at: not after starts_at")
        return self


class ParkOut(BaseModel):
    id: str
    name: str
    area: str
    tenants: int
    staff: int
    merchants: int
    terminals: int
    door_points: int
    fee_mandates: dict[str, int] = Field(description="tenant id -> its fee mandate's id on chain")
    welfare_programme: int | None = Field(description="the welfare voucher programme's id on chain")
    created: bool = Field(description="false when this file was posted before (nothing changed)")


class FeeIn(Strict):
    tenant: str = Field(min_length=1, max_length=32)
    # 2000-01 to 2099-12: a fee "for 0000-01" or "for 9999-12" is a typo or a probe (red team 8)
    period: str = Field(
        pattern=r"^20\d{2}-(0[1-9]|1[0-2])$", description="the month the fee is for, YYYY-MM (2000-2099)"
    )
    kind: str = Field(default="rent", pattern=r"^[a-z][a-z-]{0,15}$", description="rent, water, power...")
    amount_fen: int = Field(strict=True, gt=0, lt=2**128)


class FeeOut(BaseModel):
    tenant: str
    period: str
    kind: str
    amount_fen: int
    mandate_id: int
    operation_id: str
    status: str
    tx_hash: str | None


class Money(BaseModel):
    fen: int
    yuan: str


class TenantLine(BaseModel):
    tenant: str
    name: str
    paid_in: Money = Field(description="wages and subsidies in cash into its staff's wallets")
    spent_inside: Money = Field(description="its staff's own cash spent at the park's merchants")
    retention_ratio: float | None = Field(description="spent_inside / paid_in: free money only")
    earmarked_granted: Money = Field(description="welfare vouchers granted to its staff")
    earmarked_spent: Money = Field(description="welfare vouchers its staff spent at the park's merchants")
    fees_paid: Money


class CategoryLine(BaseModel):
    category: int
    merchants: int
    spent_inside: Money = Field(description="the staff's own cash")
    earmarked_spent: Money = Field(description="earmarked money (welfare and other vouchers, card purses)")


class MerchantLine(BaseModel):
    merchant: str
    name: str
    category: int
    spent_inside: Money = Field(description="the staff's own cash")
    earmarked_spent: Money = Field(description="earmarked money (welfare and other vouchers, card purses)")
    takings_from_staff: Money = Field(description="spent_inside + earmarked_spent")


class Earmarked(BaseModel):
    """The welfare voucher programme's money (员工福利券): it can only be spent at the park's own
    merchants, so it is counted apart from the wages (counting it in would inflate the retention
    ratio with money that has nowhere else to go). ``granted = spent_inside + unspent + returned``."""

    programme: int | None = Field(description="the welfare programme's id on chain (None: no welfare)")
    granted: Money = Field(description="granted to the park's staff")
    spent_inside: Money = Field(description="spent by the staff at the park's merchants")
    unspent: Money = Field(description="still on the staff's voucher balances")
    returned: Money = Field(description="unspent at expiry, returned to the issuer")
    expired: bool = Field(description="the programme's expiry is past (on the chain's clock)")
    spend_ratio: float | None = Field(description="spent_inside / granted")
    other_spent_inside: Money = Field(
        description="other earmarked money the staff spent at the park's merchants: other voucher "
        "programmes' shares, card purses (e.g. a district's consumption vouchers)"
    )


class ActivityLine(BaseModel):
    """One Beijing day of one tenant's staff (``tenant`` None: cards or holders that are not the
    park's staff, e.g. visitors, contractors, the spot-check robot's probe card)."""

    day: str
    tenant: str | None
    card_taps: int = Field(description="card payments settled at the park's terminals")
    card_tap_fen: Money = Field(description="what those card payments paid the merchants")
    door_entries: int = Field(description="door access allowed at the park's door points")
    door_denied: int = Field(description="door access denied at the park's door points")


class ParkReport(BaseModel):
    park: str
    name: str
    area: str
    as_of_block: int
    paid_in: Money = Field(
        description="free money: wages and subsidies in cash from the tenants' payers into staff wallets"
    )
    spent_inside: Money = Field(
        description="free money: what the staff paid the park's merchants from their own cash "
        "(earmarked voucher and purse shares are in ``earmarked``)"
    )
    retention_ratio: float | None = Field(
        description="spent_inside / paid_in: the retention of free money (None when nothing was paid)"
    )
    earmarked: Earmarked
    fee_income: Money = Field(description="what the tenants' payers paid into the park's fee wallet")
    card_taps: int = Field(description="card payments settled at the park's terminals, in all")
    card_tap_fen: Money
    door_entries: int = Field(description="door access allowed at the park's door points, in all")
    door_denied: int
    by_tenant: list[TenantLine]
    by_category: list[CategoryLine]
    by_merchant: list[MerchantLine]
    activity: list[ActivityLine] = Field(description="card taps and door access per day and tenant")
