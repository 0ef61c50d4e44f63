"""one payment per bill: a transaction pays one code payment; a bill reference is held by one code;
idempotent code creation

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 23:59:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payment_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_reference", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
    # Existing bills: the newest code of each (merchant, reference) holds the reference.
    codes = sa.table(
        "payment_codes",
        sa.column("id", sa.String),
        sa.column("merchant", sa.String),
        sa.column("reference", sa.String),
        sa.column("held_reference", sa.String),
        sa.column("created_at", sa.DateTime),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(codes.c.id, codes.c.merchant, codes.c.reference)
        .where(codes.c.reference.is_not(None))
        .order_by(codes.c.created_at.desc(), codes.c.id)
    ).all()
    seen: set[tuple[str, str]] = set()
    for code_id, merchant, reference in rows:
        if (merchant, reference) not in seen:
            seen.add((merchant, reference))
            conn.execute(codes.update().where(codes.c.id == code_id).values(held_reference=reference))
    with op.batch_alter_table("payment_codes", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_payment_codes_held_reference", ["merchant", "held_reference"])
        batch_op.create_unique_constraint("uq_payment_codes_idempotency", ["created_by", "idempotency_key"])
    # A transaction two payments counted before this fix (one relay taken as two): the first keeps
    # it; the later ones lose it here, and their operations still carry it, which the auditor's
    # reconciliation names (transaction-counted-twice).
    payments = sa.table("code_payments", sa.column("id", sa.Integer), sa.column("tx_hash", sa.String))
    taken: set[str] = set()
    for pay_id, tx_hash in conn.execute(
        sa.select(payments.c.id, payments.c.tx_hash)
        .where(payments.c.tx_hash.is_not(None))
        .order_by(payments.c.id)
    ).all():
        if tx_hash in taken:
            conn.execute(payments.update().where(payments.c.id == pay_id).values(tx_hash=None))
        taken.add(tx_hash)
    with op.batch_alter_table("code_payments", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_code_payments_tx_hash", ["tx_hash"])


def downgrade() -> None:
    with op.batch_alter_table("code_payments", schema=None) as batch_op:
        batch_op.drop_constraint("uq_code_payments_tx_hash", type_="unique")
    with op.batch_alter_table("payment_codes", schema=None) as batch_op:
        batch_op.drop_constraint("uq_payment_codes_idempotency", type_="unique")
        batch_op.drop_constraint("uq_payment_codes_held_reference", type_="unique")
        batch_op.drop_column("request_hash")
        batch_op.drop_column("idempotency_key")
        batch_op.drop_column("held_reference")
