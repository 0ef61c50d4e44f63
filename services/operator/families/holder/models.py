"""The holder family's table: sign-in challenges (migration 0015)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base, utcnow


class HolderChallenge(Base):
    """A Sign-In with Ethereum (EIP-4361) challenge given to a wallet: the exact message the
    holder must sign, its single-use nonce, and its expiry. ``used_at`` is set by a
    compare-and-set when a signature spends it, so a replayed signature gets nothing;
    ``api_key_id``: the short-lived holder key it gave."""

    __tablename__ = "holder_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    wallet: Mapped[str] = mapped_column(String(42), index=True)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
