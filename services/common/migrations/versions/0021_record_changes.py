"""record_changes: a count of every write to the records the reconciliation reads, kept by triggers

Revision ID: 0021
Revises: 0015
Create Date: 2026-11-26 10:30:00

The incremental reconciliation's refresh with no new block answers from its checkpoint when
nothing it reads has changed since (services/operator/reconciliation.py). "Nothing changed" is
``SUM(weight)`` of this table, which only grows: a trigger on each table the reconciliation reads
adds to it in the writing transaction, so a write, whoever makes it (the services, a script, a
hand-typed UPDATE), counts when it commits. On PostgreSQL each write statement inserts a row (no
row is updated by two writers, so writers never wait on each other; the reconciliation folds
the rows into one, keeping the sum); on SQLite, whose writers take turns anyway, every row
written adds 1 to the one row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables the reconciliation reads (its events, the operator's records).
WATCHED = ("chain_events", "operations", "wallets", "payment_codes", "code_payments")


def upgrade() -> None:
    op.create_table(
        "record_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("weight", sa.BigInteger(), nullable=False),
    )
    op.add_column("reconciliation_checkpoints", sa.Column("basis", sa.String(length=80), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION xcpay_record_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN INSERT INTO record_changes (weight) VALUES (1); RETURN NULL; END $$"
        )
        for table in WATCHED:
            op.execute(
                f"CREATE TRIGGER record_changes_{table} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION xcpay_record_change()"
            )
        return
    op.execute("INSERT INTO record_changes (id, weight) VALUES (0, 0)")
    for table in WATCHED:
        for verb in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER record_changes_{table}_{verb.lower()} AFTER {verb} ON {table} "
                "BEGIN UPDATE record_changes SET weight = weight + 1 WHERE id = 0; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS record_changes_{table} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS xcpay_record_change()")
    else:
        for table in WATCHED:
            for verb in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS record_changes_{table}_{verb}")
    op.drop_column("reconciliation_checkpoints", "basis")
    op.drop_table("record_changes")
