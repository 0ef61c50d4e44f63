"""incremental reconciliation: its checkpoint; the event index's subject column for the reports

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 03:40:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A copy of services.common.models.event_subject as of this revision (a migration does not follow
# later changes of the code it started from).
SUBJECT_ARGS = ("collectiveId", "id", "proposalId", "assetId")
PAGE = 5_000


def _subject(args: dict[str, Any]) -> int | None:
    for name in SUBJECT_ARGS:
        value = args.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value if 0 <= value <= 2**63 - 1 else None
    return None


def upgrade() -> None:
    op.create_table(
        "reconciliation_checkpoints",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("events_digest", sa.String(length=64), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("chain_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject", sa.BigInteger(), nullable=True))
    events = sa.table(
        "chain_events",
        sa.column("id", sa.Integer),
        sa.column("args", sa.JSON),
        sa.column("subject", sa.BigInteger),
    )
    conn = op.get_bind()
    last = 0
    while True:  # in pages: an index of millions of events is not read at once
        rows = conn.execute(
            sa.select(events.c.id, events.c.args).where(events.c.id > last).order_by(events.c.id).limit(PAGE)
        ).all()
        if not rows:
            break
        updates = [{"key": i, "subject": s} for i, a in rows if (s := _subject(a or {})) is not None]
        if updates:
            conn.execute(
                events.update()
                .where(events.c.id == sa.bindparam("key"))
                .values(subject=sa.bindparam("subject")),
                updates,
            )
        last = rows[-1][0]
    with op.batch_alter_table("chain_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chain_events_subject", ["contract", "subject", "block_number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("chain_events", schema=None) as batch_op:
        batch_op.drop_index("ix_chain_events_subject")
        batch_op.drop_column("subject")
    op.drop_table("reconciliation_checkpoints")
