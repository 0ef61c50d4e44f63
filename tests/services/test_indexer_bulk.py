"""The event index's bulk insert (``insert_events``: straight to the driver, JSON and subject made
in Python) stores exactly what the ORM's insert of one ``ChainEvent`` at a time stores, skips what
is stored already, and says how many rows were new. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select

from chain.events import Event
from services.common.db import Database, alembic_config, make_engine
from services.common.indexer import insert_events
from services.common.models import ChainEvent
from services.common.problems import jsonable
from tests.databases import BACKENDS, fresh_database

ALICE = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"
TX1, TX2, TX3 = ("0x" + c * 32 for c in ("a1", "b2", "c3"))
EVENTS = [
    Event("DigitalCash", "Transfer", {"from": ALICE, "to": ALICE, "value": 5}, ALICE, 7, 0, TX1),
    Event(
        "Disbursement",
        "Paid",
        {"id": b"\xab" * 32, "index": 3, "recipient": ALICE, "amount": 2**200},
        ALICE,
        7,
        1,
        TX1,
    ),
    Event(
        "CollectiveFund",
        "ProposalCreated",
        {"proposalId": 9, "collectiveId": 2},
        ALICE,
        8,
        0,
        TX2,
    ),
    Event(
        "VoucherProgrammes",
        "Spent",
        {"id": 2**70, "ok": True, "memo": 'é "q" \\'},
        ALICE,
        8,
        1,
        TX2,
    ),
    Event(
        "Registry",
        "Listed",
        {"ids": [1, 2], "pairs": ((ALICE, 1),), "none": None},
        ALICE,
        9,
        4,
        TX3,
    ),
]


def _database(kind: str, tmp: Path) -> Any:
    return fresh_database(kind, tmp)


def _rows(db: Database) -> list[tuple[Any, ...]]:
    with db.session() as s:
        return [
            tuple(r)
            for r in s.execute(
                select(
                    ChainEvent.block_number,
                    ChainEvent.log_index,
                    ChainEvent.tx_hash,
                    ChainEvent.contract,
                    ChainEvent.name,
                    ChainEvent.args,
                    ChainEvent.subject,
                ).order_by(ChainEvent.block_number, ChainEvent.log_index)
            )
        ]


def _open(url: str) -> Database:
    make_engine(url).dispose()
    command.upgrade(alembic_config(url), "head")
    return Database(url)


@pytest.mark.parametrize("kind", BACKENDS)
def test_bulk_rows_equal_the_orm_rows_and_stored_ones_are_skipped(kind: str, tmp_path: Path) -> None:
    (tmp_path / "bulk").mkdir()
    (tmp_path / "orm").mkdir()
    with _database(kind, tmp_path / "bulk") as bulk_url, _database(kind, tmp_path / "orm") as orm_url:
        bulk, orm = _open(bulk_url), _open(orm_url)
        try:
            with bulk.session() as s:  # the first three, then all five: two new, three skipped
                assert insert_events(s, EVENTS[:3]) == 3
                s.commit()
            with bulk.session() as s:
                assert insert_events(s, EVENTS, [jsonable(e.args) for e in EVENTS]) == 2
                s.commit()
            with bulk.session() as s:
                assert insert_events(s, EVENTS) == 0
                s.commit()
            with orm.session() as s:  # the old way: one ORM row per event, its subject by default
                for e in EVENTS:
                    s.add(
                        ChainEvent(
                            block_number=e.block_number,
                            log_index=e.log_index,
                            tx_hash=e.tx_hash,
                            contract=e.contract,
                            name=e.name,
                            args=jsonable(e.args),
                        )
                    )
                s.commit()
            got, expected = _rows(bulk), _rows(orm)
            assert got == expected
            assert [r[6] for r in got] == [None, None, 2, None, None]  # 2**70 is beyond a BIGINT
            assert got[1][5]["id"] == "0x" + "ab" * 32 and got[1][5]["amount"] == 2**200
        finally:
            bulk.dispose()
            orm.dispose()


def test_arguments_must_match_the_events() -> None:
    with pytest.raises(ValueError, match="2 events but 1 argument sets"):
        insert_events(object(), EVENTS[:2], [{}])
