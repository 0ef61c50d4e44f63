"""voucher campaign leaves

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 00:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "voucher_leaves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.BigInteger(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=42), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("proof", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("programme_id", "idx", name="uq_voucher_leaf"),
    )
    with op.batch_alter_table("voucher_leaves", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_voucher_leaves_programme_id"), ["programme_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("voucher_leaves", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voucher_leaves_programme_id"))
    op.drop_table("voucher_leaves")
