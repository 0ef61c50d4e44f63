"""The park family's table: one row per park, the declarative file it was set up from (its
canonical JSON and that text's SHA-256, which makes ``POST /v1/parks`` idempotent)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, String
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
