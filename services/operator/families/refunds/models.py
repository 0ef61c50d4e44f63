"""The refunds family's own table (migration 0018): the spot-check robot's probes (抽检). The
refunds' table is shared with the gateway: ``services/common/refunds.py``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base, utcnow


class SpotCheck(Base):
    """One probe of the spot-check robot: a 1-fen payment to one active code (or terminal) of a
    merchant on one Beijing day, refunded at once. Unique per (day, target): a day's run is
    idempotent, a second run probes only what the first did not reach. ``outcome``: passed (paid
    and refunded), failed (``detail`` says where it stopped) or skipped (not probeable)."""

    __tablename__ = "spot_checks"
    __table_args__ = (UniqueConstraint("day", "target_kind", "target_id", name="uq_spot_checks_target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[str] = mapped_column(String(10), index=True)
    target_kind: Mapped[str] = mapped_column(String(16))  # code | terminal
    target_id: Mapped[str] = mapped_column(String(24))
    merchant: Mapped[str] = mapped_column(String(42))
    category: Mapped[int] = mapped_column(Integer)
    area: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16), default="running")
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    refund_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
