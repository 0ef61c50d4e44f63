"""The refunds family's tables (migration 0018): merchants' refunds of ordinary payments, and the
spot-check robot's probes (抽检)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base, utcnow


class MerchantRefund(Base):
    """A refund of (part of) one payment, recorded against it. ``payment_kind`` is ``code`` (a
    payment of a payment code, any form; ``payment_ref`` its ``code_payments.id``). The chain
    (``MerchantRefunds``) enforces that a payment's refunds never exceed what was paid; this row
    mirrors what its operation did: ``status`` pending | confirmed | failed, and once confirmed the
    split the contract made (``cash_fen`` to the payer, ``voucher_fen`` to the programme)."""

    __tablename__ = "merchant_refunds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_kind: Mapped[str] = mapped_column(String(16))
    payment_ref: Mapped[str] = mapped_column(String(64), index=True)
    code_id: Mapped[str | None] = mapped_column(String(24), index=True, nullable=True)
    merchant: Mapped[str] = mapped_column(String(42), index=True)
    payer: Mapped[str] = mapped_column(String(42))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    cash_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    voucher_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    operation_id: Mapped[str | None] = mapped_column(String(36), unique=True, nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


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
