"""operation_audit_target: the audit target of an operation, stored with its intent (issue 19)

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-26 19:45:00

An operation's outcome is committed without its own disk flush (the chain is its record; the
reconciler derives it again by receipt lookup after a power loss). Its audit row goes in the same
commit, so the reconciler must be able to write that row too: who (the operation's key), what
(its kind), with what outcome (its status) it knows; the target (a wallet, ``a->b``, a batch) is
the route's and was not stored anywhere before. Null for the operations of older releases and
for those no audit row follows (an allowance, a child of another operation).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("audit_target", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_column("audit_target")
