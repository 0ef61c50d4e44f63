"""Index the contracts' events into the database, each exactly once.

The cursor (last indexed block) and the events of a block range are written in one database
transaction; a unique (tx_hash, log_index) makes a second pass over the same blocks a no-op.

The service's own transactions are indexed as they are confirmed, from the events the operation
decoded from its receipt, in the commit that records the confirmation (:func:`insert_events`, one
bulk insert; ``Operations.on_confirmed``): during a payroll the indexer used to read and decode
the same logs again, one insert per event, for 29% of the service's CPU.
A transaction's events are stored all together or not at all, so when the indexer then passes
over those blocks it skips the logs of every transaction already stored, before decoding them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from web3 import HTTPProvider
from web3.exceptions import Web3RPCError
from web3.types import RPCEndpoint

from chain.events import Event
from chain.sender import light_log, node_errors
from services.common.context import ServiceContext
from services.common.models import ChainEvent, Cursor, event_subject
from services.common.problems import jsonable

log = logging.getLogger("xcpay.indexer")
CURSOR = "event-indexer"
# eth-tester's eth_getLogs slows down sharply with the range (50 blocks 0.3 s, 300 blocks 14 s
# on these machines), so catch up in small steps; each step commits its own cursor.
CHUNK = 100
# Parameter sets per execute (SQLAlchemy splits them into statements within the driver's limits).
INSERT_ROWS = 1_000


class Indexer:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()

    def run_once(self) -> int:
        """Index every new block up to the latest; returns how many events were stored."""
        with self._lock:
            ctx = self.ctx
            latest = ctx.w3.eth.block_number
            stored = 0
            with ctx.db.session() as s:
                cursor = s.get(Cursor, CURSOR)
                start = (cursor.position + 1) if cursor else ctx.manifest.block
            addresses = ctx.tx.events.addresses()
            while start <= latest:
                end = min(start + CHUNK - 1, latest)
                logs = _logs(ctx, start, end, addresses)
                with ctx.db.session() as s:
                    done = set(
                        s.scalars(
                            select(ChainEvent.tx_hash)
                            .where(ChainEvent.block_number.between(start, end))
                            .distinct()
                        )
                    )
                    fresh = [_typed(log) for log in logs if _tx_hash(log) not in done]
                    stored += insert_events(s, ctx.tx.events.decode_logs(fresh))
                    row = s.get(Cursor, CURSOR)
                    if row is None:
                        s.add(Cursor(name=CURSOR, position=end))
                    else:
                        row.position = end
                    s.commit()
                start = end + 1
            return stored

    def catch_up(self) -> None:
        """Index up to the chain head before answering a read; on failure (node down or slow)
        the read answers from the index as it is."""
        try:
            self.run_once()
        except Exception as exc:
            log.warning("indexing before a read failed: %s", exc)

    def position(self) -> int | None:
        with self.ctx.db.session() as s:
            return s.scalar(select(Cursor.position).where(Cursor.name == CURSOR))


def insert_events(session: Any, events: Sequence[Event], args: Sequence[Any] | None = None) -> int:
    """Insert ``events`` in bulk, skipping those stored already; returns how many were new.

    ``args``: each event's arguments made JSON-ready already (``jsonable``), as the operation that
    decoded them stored them in its result; made here when not given (a 200-row payroll chunk has
    600 events: converting them twice was a tenth of the service's time per chunk)."""
    if not events:
        return 0
    if args is None:
        args = [jsonable(e.args) for e in events]
    elif len(args) != len(events):
        raise ValueError(f"{len(events)} events but {len(args)} argument sets")
    dialect = session.bind.dialect
    driver_insert = _DRIVER_INSERT.get((dialect.name, dialect.driver))
    if driver_insert is not None:
        # Straight to the driver, each row's JSON and subject made here: SQLAlchemy's per-row
        # parameter processing (the JSON type's serializer, the subject default, building each
        # parameter set) cost more than SQLite took to store the rows (600 per payroll chunk).
        # The same values as the ORM's insert stores (``test_indexer_bulk.py`` compares them).
        params = [
            (e.block_number, e.log_index, e.tx_hash, e.contract, e.name, json.dumps(a), event_subject(a))
            for e, a in zip(events, args, strict=True)
        ]
        conn = session.connection()
        stored = 0
        for i in range(0, len(params), INSERT_ROWS):
            part = params[i : i + INSERT_ROWS]
            count = conn.exec_driver_sql(driver_insert, part).rowcount
            stored += count if count is not None and count >= 0 else len(part)
        return stored
    insert = pg_insert if dialect.name == "postgresql" else sqlite_insert
    rows = [
        {
            "block_number": e.block_number,
            "log_index": e.log_index,
            "tx_hash": e.tx_hash,
            "contract": e.contract,
            "name": e.name,
            "args": a,
        }
        for e, a in zip(events, args, strict=True)
    ]
    # One statement, many parameter sets: SQLAlchemy batches them into multi-row INSERTs with a
    # statement compiled once (a VALUES list built per call was compiled anew each time).
    stmt = insert(ChainEvent).on_conflict_do_nothing(index_elements=["tx_hash", "log_index"])
    stored = 0
    for i in range(0, len(rows), INSERT_ROWS):
        part = rows[i : i + INSERT_ROWS]
        count = session.connection().execute(stmt, part).rowcount
        stored += count if count is not None and count >= 0 else len(part)
    return stored


_INSERT_HEAD = (
    "INSERT INTO chain_events (block_number, log_index, tx_hash, contract, name, args, subject) VALUES "
)
_INSERT_TAIL = " ON CONFLICT (tx_hash, log_index) DO NOTHING"
# By (dialect, driver), in the driver's parameter style (sqlite3: qmark; psycopg: format).
_PG = _INSERT_HEAD + "(%s, %s, %s, %s, %s, CAST(%s AS JSON), %s)" + _INSERT_TAIL
_DRIVER_INSERT = {
    ("sqlite", "pysqlite"): _INSERT_HEAD + "(?, ?, ?, ?, ?, ?, ?)" + _INSERT_TAIL,
    ("postgresql", "psycopg"): _PG,
    ("postgresql", "psycopg2"): _PG,
}


def _logs(ctx: ServiceContext, start: int, end: int, addresses: list[str]) -> list[Any]:
    """The logs of ``addresses`` in blocks ``start``..``end``. Over HTTP they are read raw and
    only those of transactions not indexed yet are converted (``_typed``): web3's formatters
    walked every log of every payroll chunk the service had indexed already from its own
    receipt (a quarter of the service's CPU during a payroll)."""
    provider = ctx.w3.provider
    if not isinstance(provider, HTTPProvider):
        return list(ctx.w3.eth.get_logs({"fromBlock": start, "toBlock": end, "address": addresses}))  # type: ignore[typeddict-item]
    query = {"fromBlock": hex(start), "toBlock": hex(end), "address": addresses}
    with node_errors():
        answer = provider.make_request(RPCEndpoint("eth_getLogs"), [query])
    if "error" in answer:
        raise Web3RPCError(str(answer["error"]))
    return list(answer.get("result") or [])


def _typed(log: Any) -> Any:
    """A raw JSON-RPC log as web3 types it (a log from web3 already is)."""
    return light_log(log) if isinstance(log.get("blockNumber"), str) else log


def _tx_hash(log: Any) -> str:
    raw = log["transactionHash"]
    return raw.lower() if isinstance(raw, str) else "0x" + bytes(raw).hex()
