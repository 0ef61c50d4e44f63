"""merchant refunds of ordinary payments, and the spot-check robot's probes (issue 23)

Revision ID: 0018
Revises: 0015
Create Date: 2026-11-26 10:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "merchant_refunds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("payment_kind", sa.String(length=16), nullable=False),
        sa.Column("payment_ref", sa.String(length=64), nullable=False, index=True),
        sa.Column("code_id", sa.String(length=24), nullable=True, index=True),
        sa.Column("terminal_id", sa.String(length=24), nullable=True, index=True),
        sa.Column("merchant", sa.String(length=42), nullable=False, index=True),
        sa.Column("payer", sa.String(length=42), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("cash_fen", sa.BigInteger(), nullable=True),
        sa.Column("voucher_fen", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=True, unique=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "spot_checks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("day", sa.String(length=10), nullable=False, index=True),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=24), nullable=False),
        sa.Column("merchant", sa.String(length=42), nullable=False),
        sa.Column("category", sa.Integer(), nullable=False),
        sa.Column("area", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("refund_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("day", "target_kind", "target_id", name="uq_spot_checks_target"),
    )


def downgrade() -> None:
    op.drop_table("spot_checks")
    op.drop_table("merchant_refunds")
