"""indexes for the holder's channel: a holder's disbursement rows and campaign voucher grants

A holder reads the rows addressed to their wallet and their campaign grants; a payroll or a
campaign has up to 10,000 rows each, so both lookups by wallet get an index.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26 10:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_disbursement_rows_recipient", "disbursement_rows", ["recipient"])
    op.create_index("ix_voucher_leaves_holder", "voucher_leaves", ["holder"])


def downgrade() -> None:
    op.drop_index("ix_voucher_leaves_holder", table_name="voucher_leaves")
    op.drop_index("ix_disbursement_rows_recipient", table_name="disbursement_rows")
