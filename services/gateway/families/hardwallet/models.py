"""The hard-wallet family's tables: offline uploads and door access (grants, challenges, decisions).

On the shared declarative ``Base`` (services/common/models.py): one metadata, so the migrations
and services/schema.py see every table; moving a class here kept its table name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base, utcnow


class OfflineUpload(Base):
    """One batch a terminal uploaded: its operation (the settle transaction) and, once confirmed,
    each payment's outcome, so the same batch uploaded again gets the same answer."""

    __tablename__ = "offline_uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("gateway_terminals.id"), index=True)
    batch_digest: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    operation_id: Mapped[str] = mapped_column(String(36), unique=True)
    results: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccessGrant(Base):
    """One entry of an access point's list: a holder's cards, or every card of a form."""

    __tablename__ = "access_grants"
    __table_args__ = (UniqueConstraint("access_point_id", "holder", "form", name="uq_access_grant"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    access_point_id: Mapped[str] = mapped_column(ForeignKey("access_points.id"), index=True)
    holder: Mapped[str | None] = mapped_column(String(42), nullable=True)
    form: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccessChallenge(Base):
    """A fresh random challenge for one access point: short-lived, consumed by its first use."""

    __tablename__ = "access_challenges"

    nonce: Mapped[str] = mapped_column(String(66), primary_key=True)
    access_point_id: Mapped[str] = mapped_column(ForeignKey("access_points.id"), index=True)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccessDecision(Base):
    """Every allow or deny an access point received, with its reason."""

    __tablename__ = "access_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    access_point_id: Mapped[str] = mapped_column(ForeignKey("access_points.id"), index=True)
    card: Mapped[str] = mapped_column(String(42), index=True)
    holder: Mapped[str | None] = mapped_column(String(42), nullable=True)
    nonce: Mapped[str] = mapped_column(String(66))
    allowed: Mapped[bool] = mapped_column()
    reason: Mapped[str] = mapped_column(String(64))
