"""holder sign-in challenges: single-use, short-lived Sign-In with Ethereum messages

Revision ID: 0015
Revises: 0012
Create Date: 2026-11-26 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
# 0013 and 0014 are reserved for other changes of this session; whichever lands after another
# re-points its down_revision at it (one head).
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "holder_challenges",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("nonce", sa.String(length=64), nullable=False, unique=True),
        sa.Column("wallet", sa.String(length=42), nullable=False, index=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("api_key_id", sa.Integer(), sa.ForeignKey("api_keys.id"), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("holder_challenges")
