"""The operator app's own tables (the reconciliation's checkpoints, the dashboard's sign-in links).

On the shared declarative ``Base`` (services/common/models.py): one metadata, so the migrations
and services/schema.py see every table; moving a class here kept its table name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base, utcnow


class ReconciliationCheckpoint(Base):
    """How far the auditor's reconciliation has checked the chain, so that the next run reads only
    the blocks after it (services/operator/reconcile_state.py).

    ``block_hash`` proves the checked chain is still the node's (a reorganisation or a reset node
    changes it: the next run starts over from deployment); ``events_digest`` is a SHA-256 over
    every event up to ``block_number`` as the chain emitted it, which the event index must still
    reproduce before the next run trusts it for those blocks. ``facts`` holds what the chain told
    about those blocks that the index does not keep (who sent a transaction without an operation,
    receipts of operations without events, balances found wrong); ``report`` the verdict."""

    __tablename__ = "reconciliation_checkpoints"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    events_digest: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(Integer)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    verdict: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What the records the run read looked like (the sum of RecordChange weights when it began)
    # and which rules it applied: a later run with no new block, the same basis and the same
    # block hash would find exactly this report again (services/operator/reconciliation.py).
    basis: Mapped[str | None] = mapped_column(String(80), nullable=True)


class RecordChange(Base):
    """Writes to the tables the reconciliation reads, counted by database triggers (migration
    0021): ``SUM(weight)`` only grows, by every committed write, whoever made it."""

    __tablename__ = "record_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    weight: Mapped[int] = mapped_column(BigInteger)


class DashboardSignIn(Base):
    """A one-time sign-in link of the dashboard: its token is stored hashed (SHA-256 of 256 random
    bits, like an API key), expires after minutes, and is spent by its first use (``used_at`` set
    by a compare-and-set, so two tabs racing on one link get one session). ``api_key_id``: the
    short-lived read-only key its use gave."""

    __tablename__ = "dashboard_sign_ins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
