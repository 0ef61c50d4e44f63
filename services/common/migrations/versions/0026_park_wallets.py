"""park_wallets: a wallet belongs to one park only (issue 23: a wallet in two parks was counted
in both reports)

Revision ID: 0026
Revises: 0024
Create Date: 2026-11-26 13:40:00

The wallet is the primary key, so the database refuses a second park's claim however two set-ups
interleave. Parks set up before this migration are claimed in the order they were created; a
wallet an earlier park claimed already stays with that park (the later park keeps its file, its
report then counts the wallet for the earlier park only).
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _claims(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(wallet, place) of a park file: the tenants' payers and staff, the merchants' wallets."""
    out: list[tuple[str, str]] = []
    for i, t in enumerate(spec.get("tenants", [])):
        out.append((t["payer"], f"tenants.{i}.payer"))
        out += [(w, f"tenants.{i}.staff.{j}") for j, w in enumerate(t.get("staff", []))]
    out += [(m["wallet"], f"merchants.{i}.wallet") for i, m in enumerate(spec.get("merchants", []))]
    return out


def upgrade() -> None:
    op.create_table(
        "park_wallets",
        sa.Column("wallet", sa.String(length=42), nullable=False),
        sa.Column("park_id", sa.String(length=32), nullable=False),
        sa.Column("place", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["park_id"], ["parks.id"]),
        sa.PrimaryKeyConstraint("wallet"),
    )
    op.create_index(op.f("ix_park_wallets_park_id"), "park_wallets", ["park_id"], unique=False)
    bind = op.get_bind()
    parks = sa.table("parks", sa.column("id"), sa.column("spec", sa.JSON()), sa.column("created_at"))
    claims = sa.table("park_wallets", sa.column("wallet"), sa.column("park_id"), sa.column("place"))
    taken: set[str] = set()
    rows: list[dict[str, str]] = []
    for park_id, spec in bind.execute(
        sa.select(parks.c.id, parks.c.spec).order_by(parks.c.created_at, parks.c.id)
    ):
        for wallet, place in _claims(spec or {}):
            if wallet not in taken:
                taken.add(wallet)
                rows.append({"wallet": wallet, "park_id": park_id, "place": place})
    if rows:
        op.bulk_insert(claims, rows)


def downgrade() -> None:
    op.drop_index(op.f("ix_park_wallets_park_id"), table_name="park_wallets")
    op.drop_table("park_wallets")
