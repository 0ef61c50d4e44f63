"""event_name_blocks: an index on chain_events (contract, name, block_number) (issue 19)

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-26 16:45:00

The dashboard reads, each poll, one contract's events of one name in the blocks the indexer has
finished since its last poll (the token's ``Transfer``, the registry's ``WalletRegistered``).
With only the single-column indexes the planner took the name's (SQLite, with no statistics,
prefers an equality to a range) and read every ``Transfer`` ever indexed to find the new ones;
this index answers the three terms together.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chain_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chain_events_name_blocks", ["contract", "name", "block_number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("chain_events", schema=None) as batch_op:
        batch_op.drop_index("ix_chain_events_name_blocks")
