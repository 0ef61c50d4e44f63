"""The devices family's tables: what the gateway uploaded, so an offline device that uploads the
same pre-authorisation or the same bin drop again gets the earlier answer without a new transaction
(as a terminal's batch does, services/gateway/families/hardwallet/models.py ``OfflineUpload``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base, utcnow


class DevicePreAuth(Base):
    """One card-signed pre-authorisation a vending machine uploaded: one row per (card, counter)."""

    __tablename__ = "device_preauths"
    __table_args__ = (UniqueConstraint("card", "counter", name="uq_device_preauth_counter"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card: Mapped[str] = mapped_column(String(42), index=True)
    counter: Mapped[int] = mapped_column(BigInteger)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("gateway_terminals.id"), index=True)
    merchant: Mapped[str] = mapped_column(String(42), index=True)
    holder: Mapped[str] = mapped_column(String(42))
    max_amount: Mapped[int] = mapped_column(BigInteger)
    operation_id: Mapped[str] = mapped_column(String(36), unique=True)
    preauth_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    closed: Mapped[bool] = mapped_column(default=False)  # completed or released, seen on chain
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DevicePayout(Base):
    """One recycling bin's payout: one row per (programme, the bin's reference)."""

    __tablename__ = "device_payouts"
    __table_args__ = (UniqueConstraint("programme", "reference", name="uq_device_payout_reference"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme: Mapped[int] = mapped_column(BigInteger, index=True)
    reference: Mapped[str] = mapped_column(String(64))
    terminal_id: Mapped[str] = mapped_column(ForeignKey("gateway_terminals.id"), index=True)
    to: Mapped[str] = mapped_column(String(42))
    amount: Mapped[int] = mapped_column(BigInteger)
    operation_id: Mapped[str] = mapped_column(String(36), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
