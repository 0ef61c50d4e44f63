"""The disburse family's tables: batches as the operator knows them and their rows.

On the shared declarative ``Base`` (services/common/models.py): one metadata, so the migrations
and services/schema.py see every table; moving a class here kept its table name."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base, utcnow


class Disbursement(Base):
    """A payroll or subsidy batch as the operator knows it (the chain holds its money and status).

    ``created_by`` and ``approved_by`` are API keys: the service refuses an approval by the key
    that created the batch, before the contract refuses the same signer on chain.
    """

    __tablename__ = "disbursements"

    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(66), unique=True)
    payer: Mapped[str] = mapped_column(String(42), index=True)
    purpose: Mapped[str] = mapped_column(String(32), index=True)
    mode: Mapped[str] = mapped_column(String(16))  # explicit | merkle
    total_fen: Mapped[int] = mapped_column(BigInteger)
    ends_at: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[str | None] = mapped_column(String(66), nullable=True)
    # draft (rows being added) | ready | approved | executing | executed | closed | cancelled
    status: Mapped[str] = mapped_column(String(16), default="draft")
    rows_total: Mapped[int] = mapped_column(Integer)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)  # paid or made exceptions
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    executed_by: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # why execution stopped, if it did
    push: Mapped[str | None] = mapped_column(String(16), nullable=True)  # Merkle: all | custodial
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DisbursementRow(Base):
    __tablename__ = "disbursement_rows"
    # Declared by __tablename__, so a Table (the runner and the reclaim update it in bulk, in Core).
    __table__: ClassVar[Table]
    __table_args__ = (UniqueConstraint("ref", "idx", name="uq_disbursement_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(ForeignKey("disbursements.ref"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    recipient: Mapped[str] = mapped_column(String(42), index=True)  # a holder reads their own rows
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    chunk: Mapped[int] = mapped_column(Integer)  # explicit: its chunk; Merkle: its push group
    proof: Mapped[str | None] = mapped_column(Text, nullable=True)  # Merkle: siblings, 64 hex each
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|paid|exception|reclaimed
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
