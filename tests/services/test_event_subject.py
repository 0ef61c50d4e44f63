"""The event index's ``subject`` column (what an event is about: a collective, a voucher programme, a
prepaid package, a proposal, an asset), which the reports query through an index instead of reading
every event of a contract: filled on every insert, whoever inserts (one row or many), and filled for
the rows an older database already held by migration 0009. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import insert, inspect, select, text

from services.common.db import Database, alembic_config, make_engine
from services.common.models import ChainEvent, event_subject
from tests.databases import BACKENDS, fresh_database

ROWS = [
    # (contract, name, args, subject)
    ("VoucherProgrammes", "Spent", {"id": 7, "holder": "0xaa", "bill": 5}, 7),
    ("PrepaidEscrow", "SessionsConsumed", {"id": 3, "sessions": 1}, 3),
    ("CollectiveFund", "ProposalCreated", {"proposalId": 9, "collectiveId": 2, "amount": 1}, 2),
    ("CollectiveFund", "ProposalApproved", {"proposalId": 9, "approver": "0xbb"}, 9),
    ("CollectiveFund", "AssetRevalued", {"assetId": 4, "value": 1}, 4),
    ("DigitalCash", "Transfer", {"from": "0xaa", "to": "0xbb", "value": 5}, None),
    ("Disbursement", "Paid", {"id": "0x" + "ab" * 32, "amount": 5}, None),  # a bytes32 id: none
    ("VoucherProgrammes", "Spent", {"id": 2**70, "bill": 1}, None),  # beyond a BIGINT: unindexed
]


def test_the_subject_rule() -> None:
    for _, _, args, subject in ROWS:
        assert event_subject(args) == subject, args
    assert event_subject({"id": True}) is None


@pytest.mark.parametrize("kind", BACKENDS)
def test_inserts_fill_the_subject_and_the_migration_fills_older_rows(kind: str, tmp_path: Path) -> None:
    with fresh_database(kind, tmp_path) as url:
        make_engine(url).dispose()
        command.upgrade(alembic_config(url), "0008")
        engine = make_engine(url)
        with engine.begin() as conn:  # rows an older service indexed, without the column
            for i, (contract, name, args, _) in enumerate(ROWS):
                conn.execute(
                    text(
                        "INSERT INTO chain_events (block_number, log_index, tx_hash, contract, name, args) "
                        "VALUES (:b, 0, :tx, :c, :n, :a)"
                    ),
                    {"b": i, "tx": f"0x{i:064x}", "c": contract, "n": name, "a": _json(args)},
                )
        engine.dispose()
        command.upgrade(alembic_config(url), "head")
        db = Database(url)
        try:
            with db.session() as s:
                got = s.execute(
                    select(ChainEvent.block_number, ChainEvent.subject).order_by(ChainEvent.id)
                ).all()
            assert [sub for _, sub in got] == [subject for *_, subject in ROWS]
            indexes = {ix["name"] for ix in inspect(db.engine).get_indexes("chain_events")}
            assert "ix_chain_events_subject" in indexes
            # New rows: one ORM object, and a Core insert of many rows (the indexer's bulk form).
            with db.session() as s:
                s.add(
                    ChainEvent(
                        block_number=100,
                        log_index=0,
                        tx_hash="0x" + "1" * 64,
                        contract="C",
                        name="N",
                        args={"id": 11},
                    )
                )
                s.execute(
                    insert(ChainEvent),
                    [
                        {
                            "block_number": 101,
                            "log_index": j,
                            "tx_hash": "0x" + "2" * 64,
                            "contract": c,
                            "name": n,
                            "args": a,
                        }
                        for j, (c, n, a, _) in enumerate(ROWS)
                    ],
                )
                # and a multi-row VALUES insert (an ON CONFLICT bulk insert's form) of the table;
                # through the ORM entity SQLAlchemy cannot run a column default per row of such an
                # insert, so that form passes the subject itself
                s.execute(
                    insert(ChainEvent.__table__).values(
                        [
                            {"block_number": 102, "log_index": j, "tx_hash": "0x" + "3" * 64}
                            | {"contract": c, "name": n, "args": a}
                            for j, (c, n, a, _) in enumerate(ROWS)
                        ]
                    )
                )
                s.execute(
                    insert(ChainEvent).values(
                        [
                            {"block_number": 103, "log_index": j, "tx_hash": "0x" + "4" * 64}
                            | {"contract": c, "name": n, "args": a, "subject": event_subject(a)}
                            for j, (c, n, a, _) in enumerate(ROWS)
                        ]
                    )
                )
                s.commit()
                new = s.scalars(
                    select(ChainEvent.subject).where(ChainEvent.block_number >= 100).order_by(ChainEvent.id)
                ).all()
            assert list(new) == [11, *([subject for *_, subject in ROWS] * 3)]
        finally:
            db.dispose()


def _json(value: object) -> str:
    import json

    return json.dumps(value)
