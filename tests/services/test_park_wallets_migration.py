"""Migration 0026 (``park_wallets``: a wallet belongs to one park): the parks an older database
holds are claimed in the order they were created, a wallet two of them named staying with the
earlier; from then on the table refuses a second claim. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from services.common.db import Database, alembic_config, make_engine
from services.operator.families.park.models import ParkWallet
from tests.databases import BACKENDS, fresh_database

A, B, C, D, M = (f"0x{i:040x}" for i in range(1, 6))


def _spec(payer: str, staff: list[str], merchant: str) -> str:
    tenants = [{"id": "t", "name": "T", "payer": payer, "staff": staff}]
    return json.dumps({"tenants": tenants, "merchants": [{"id": "m", "wallet": merchant}]})


@pytest.mark.parametrize("kind", BACKENDS)
def test_older_parks_are_claimed_first_come_and_a_second_claim_is_refused(kind: str, tmp_path: Path) -> None:
    with fresh_database(kind, tmp_path) as url:
        make_engine(url).dispose()
        command.upgrade(alembic_config(url), "0024")
        engine = make_engine(url)
        with engine.begin() as conn:  # two parks an older service set up, sharing B and the merchant
            for park_id, spec, at in (
                ("later", _spec(C, [B, D], M), "2026-11-02 08:00:00"),
                ("first", _spec(A, [B], M), "2026-11-01 08:00:00"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO parks (id, name, area, spec, spec_hash, mandates, welfare_granted, "
                        "created_at) VALUES (:id, 'p', 'a', :spec, 'h', '{}', false, :at)"
                    ),
                    {"id": park_id, "spec": spec, "at": at},
                )
        engine.dispose()
        command.upgrade(alembic_config(url), "head")
        db = Database(url)
        try:
            with db.session() as s:
                got = {w.wallet: (w.park_id, w.place) for w in s.scalars(select(ParkWallet))}
            assert got == {
                A: ("first", "tenants.0.payer"),
                B: ("first", "tenants.0.staff.0"),
                M: ("first", "merchants.0.wallet"),
                C: ("later", "tenants.0.payer"),
                D: ("later", "tenants.0.staff.1"),
            }
            with db.session() as s, pytest.raises(IntegrityError):
                s.add(ParkWallet(wallet=D, park_id="first", place="tenants.0.staff.1"))
                s.commit()
        finally:
            db.engine.dispose()
