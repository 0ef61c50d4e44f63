"""two tiers: the institutions' core-banking ledger, bank links, transfers; institution-scoped keys

Revision ID: 0020
Revises: 0015
Create Date: 2026-11-26 10:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
# The lead relinks the chain when merging (one head).
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("institution", sa.Integer(), nullable=True))
    op.create_table(
        "bank_accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("institution", sa.Integer(), nullable=False, index=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("number", sa.String(length=34), nullable=False),
        sa.Column("masked", sa.String(length=40), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("institution", "number", name="uq_bank_account_number"),
    )
    op.create_table(
        "bank_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("institution", sa.Integer(), nullable=False, index=True),
        sa.Column("transfer_id", sa.String(length=36), nullable=True, index=True),
        sa.Column("memo", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "bank_postings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("entry_id", sa.Integer(), sa.ForeignKey("bank_entries.id"), nullable=False, index=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("bank_accounts.id"), nullable=False, index=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "wallet_bank_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("wallet", sa.String(length=42), nullable=False, index=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("bank_accounts.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("wallet", "account_id", name="uq_wallet_bank_link"),
    )
    op.create_table(
        "bank_transfers",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("institution", sa.Integer(), nullable=False, index=True),
        sa.Column("wallet", sa.String(length=42), nullable=False, index=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("bank_accounts.id"), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, index=True),
        sa.Column("bank_entry_id", sa.Integer(), sa.ForeignKey("bank_entries.id"), nullable=True),
        sa.Column("reversal_entry_id", sa.Integer(), sa.ForeignKey("bank_entries.id"), nullable=True),
        sa.Column("operation_id", sa.String(length=36), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("problem", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("api_key_id", "idempotency_key", name="uq_bank_transfer_idem"),
    )


def downgrade() -> None:
    op.drop_table("bank_transfers")
    op.drop_table("wallet_bank_links")
    op.drop_table("bank_postings")
    op.drop_table("bank_entries")
    op.drop_table("bank_accounts")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("institution")
