"""court orders and recoveries proposed through the service, with their maker's API key

Revision ID: 0017
Revises: 0015
Create Date: 2026-11-26 10:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
# 0016 is reserved for another change of this session; whichever lands after another re-points
# its down_revision at it (one head).
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "court_orders",
        sa.Column("order_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("from_wallet", sa.String(length=42), nullable=False, index=True),
        sa.Column("to_wallet", sa.String(length=42), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("case_number", sa.String(length=66), nullable=False),
        sa.Column("hold_id", sa.BigInteger(), nullable=False),
        sa.Column("maker_key_id", sa.Integer(), sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "recoveries",
        sa.Column("recovery_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("lost", sa.String(length=42), nullable=False, index=True),
        sa.Column("replacement", sa.String(length=42), nullable=False),
        sa.Column("maker_key_id", sa.Integer(), sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("recoveries")
    op.drop_table("court_orders")
