"""Index the contracts' events into the database, each exactly once.

The cursor (last indexed block) and the events of a block range are written in one database
transaction; a unique (tx_hash, log_index) makes a second pass over the same blocks a no-op.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.common.context import ServiceContext
from services.common.models import ChainEvent, Cursor
from services.common.problems import jsonable

log = logging.getLogger("xcpay.indexer")
CURSOR = "event-indexer"
# eth-tester's eth_getLogs slows down sharply with the range (50 blocks 0.3 s, 300 blocks 14 s
# on these machines), so catch up in small steps; each step commits its own cursor.
CHUNK = 100


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
                logs = ctx.w3.eth.get_logs({"fromBlock": start, "toBlock": end, "address": addresses})  # type: ignore[typeddict-item]
                events = ctx.tx.events.decode_logs(logs)
                with ctx.db.session() as s:
                    insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert  # type: ignore[union-attr]
                    for e in events:
                        stmt = (
                            insert(ChainEvent)
                            .values(
                                block_number=e.block_number,
                                log_index=e.log_index,
                                tx_hash=e.tx_hash,
                                contract=e.contract,
                                name=e.name,
                                args=jsonable(e.args),
                            )
                            .on_conflict_do_nothing(index_elements=["tx_hash", "log_index"])
                        )
                        stored += s.execute(stmt).rowcount or 0
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
