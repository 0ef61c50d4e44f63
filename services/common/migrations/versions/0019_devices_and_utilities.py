"""unattended devices (pre-authorisations, recycling payouts) and utility bills (issue 23)

Revision ID: 0019
Revises: 0015
Create Date: 2026-11-26 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
# Other changes of this session take the numbers between; the lead re-points down_revision (one head).
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "device_preauths",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("card", sa.String(length=42), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.Column("terminal_id", sa.String(length=24), sa.ForeignKey("gateway_terminals.id"), nullable=False),
        sa.Column("merchant", sa.String(length=42), nullable=False),
        sa.Column("holder", sa.String(length=42), nullable=False),
        sa.Column("max_amount", sa.BigInteger(), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=False, unique=True),
        sa.Column("preauth_id", sa.BigInteger(), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("card", "counter", name="uq_device_preauth_counter"),
    )
    for col in ("card", "terminal_id", "merchant", "preauth_id"):
        op.create_index(op.f(f"ix_device_preauths_{col}"), "device_preauths", [col])
    op.create_table(
        "device_payouts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("programme", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("terminal_id", sa.String(length=24), sa.ForeignKey("gateway_terminals.id"), nullable=False),
        sa.Column("to", sa.String(length=42), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=False, unique=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("programme", "reference", name="uq_device_payout_reference"),
    )
    for col in ("programme", "terminal_id"):
        op.create_index(op.f(f"ix_device_payouts_{col}"), "device_payouts", [col])
    op.create_table(
        "utility_billers",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("wallet", sa.String(length=42), nullable=False),
        sa.Column("account_pattern", sa.String(length=128), nullable=False),
        sa.Column("mandate_cap_fen", sa.BigInteger(), nullable=False),
        sa.Column("debit_day", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index(op.f("ix_utility_billers_wallet"), "utility_billers", ["wallet"])
    op.create_table(
        "utility_bills",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("biller_id", sa.String(length=32), sa.ForeignKey("utility_billers.id"), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("operation_id", sa.String(length=36), nullable=True),
        sa.Column("code_id", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("paid_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("biller_id", "account", "period", name="uq_utility_bill"),
    )
    op.create_index(op.f("ix_utility_bills_biller_id"), "utility_bills", ["biller_id"])
    op.create_table(
        "utility_autodebits",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("biller_id", sa.String(length=32), sa.ForeignKey("utility_billers.id"), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=42), nullable=False),
        sa.Column("mandate_id", sa.BigInteger(), nullable=True),
        sa.Column("operation_id", sa.String(length=36), nullable=False),
        sa.Column("api_key_id", sa.Integer(), sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("biller_id", "account", name="uq_utility_autodebit"),
    )
    op.create_index(op.f("ix_utility_autodebits_biller_id"), "utility_autodebits", ["biller_id"])


def downgrade() -> None:
    for table in (
        "utility_autodebits",
        "utility_bills",
        "utility_billers",
        "device_payouts",
        "device_preauths",
    ):
        op.drop_table(table)
