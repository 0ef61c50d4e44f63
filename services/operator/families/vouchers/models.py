"""The vouchers family's tables.

On the shared declarative ``Base`` (services/common/models.py): one metadata, so the migrations
and services/schema.py see every table; moving a class here kept its table name."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base


class VoucherLeaf(Base):
    """One grant of a voucher programme's Merkle campaign, with its proof (siblings, 64 hex each)."""

    __tablename__ = "voucher_leaves"
    __table_args__ = (UniqueConstraint("programme_id", "idx", name="uq_voucher_leaf"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(BigInteger, index=True)
    idx: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str] = mapped_column(String(42), index=True)  # a holder reads their own grants
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    proof: Mapped[str] = mapped_column(Text)
