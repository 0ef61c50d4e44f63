"""The park family's tables: one row per park, the declarative file it was set up from (its
canonical JSON and that text's SHA-256, which makes ``POST /v1/parks`` idempotent), and one row
per wallet a park claims (migration 0026): a wallet belongs to one park only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base, utcnow


class Park(Base):
    """An industrial park (黄桥未来工场): its tenants, their staff, its merchants, terminals, door
    points and fee wallet, as declared in ``spec`` (a validated ``ParkIn``)."""

    __tablename__ = "parks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    area: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_hash: Mapped[str] = mapped_column(String(64))
    # tenant id -> the id of the QuickPay mandate its payer granted the fee wallet
    mandates: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # the welfare voucher programme's id, once created; its grants done (False until confirmed)
    welfare_programme: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=None)
    welfare_granted: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ParkWallet(Base):
    """A wallet a park claims: a tenant's payer, a staff member's or a merchant's. The primary
    key is the wallet, so a wallet belongs to one park only, and two parks set up at the same
    moment cannot both take it: the database refuses the second insert, whatever the services'
    interleaving (a check before the insert alone could not). Inserted in the park's own
    transaction: a refused park leaves nothing behind. ``place``: the wallet's field in the park's
    file (``tenants.0.staff.3``), named in the 409 ``park-wallet-taken`` another park gets.

    Not claimed: the fee wallet (it counts only the park's own payers' payments, so one property
    company may collect for several parks) and the welfare issuer (a district union may fund
    several parks' welfare)."""

    __tablename__ = "park_wallets"

    wallet: Mapped[str] = mapped_column(String(42), primary_key=True)
    park_id: Mapped[str] = mapped_column(ForeignKey("parks.id"), index=True)
    place: Mapped[str] = mapped_column(String(64))
