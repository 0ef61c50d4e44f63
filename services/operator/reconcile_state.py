"""The reconciliation's checkpoint: what it has checked, and the proof that it still stands.

A run that ends saves the block it reached, that block's hash, a SHA-256 over every event up to
it (as the chain emitted them), what the chain told it that the event index does not keep
(:class:`Facts`) and its report. The next run trusts the event index for those blocks, instead of
reading them from the node again, only when both proofs hold: the block hash is still the node's
(otherwise a reorganisation or a reset node: start over from deployment) and the index still
reproduces the digest (otherwise someone changed it: start over, and the full replay names the
change). The operator's own records (operations, payment codes) are read and checked in full on
every run: they are the service's, cheap to read, and changing one must not go unseen.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from services.common.db import Database
from services.common.models import utcnow
from services.operator.models import ReconciliationCheckpoint, RecordChange

NAME = "auditor"
_save_lock = threading.Lock()


def event_line(block: int, log_index: int, tx_hash: str, contract: str, name: str, args: Any) -> bytes:
    """One event as the digest reads it; ``args`` in their JSON form (as the index stores them)."""
    return (
        json.dumps(
            [block, log_index, tx_hash, contract, name, args], sort_keys=True, separators=(",", ":")
        ).encode()
        + b"\n"
    )


def new_digest() -> Any:
    """The running hash of the events, oldest first (``update`` it with :func:`event_line`)."""
    return hashlib.sha256()


@dataclass
class Facts:
    """What the chain said about the checked blocks that the event index does not hold.

    ``senders``: the signer of each transaction with events but without an operation (a
    transaction's signer never changes). ``receipts``: transactions of operations without events of
    ours, found successful. ``wrong``: addresses whose balance differed from their Transfer history
    (read again on every run until they agree)."""

    senders: dict[str, str] = field(default_factory=dict)
    receipts: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Facts:
        return cls(
            senders=dict(data.get("senders", {})),
            receipts=list(data.get("receipts", [])),
            wrong=list(data.get("wrong", [])),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "senders": self.senders,
            "receipts": sorted(set(self.receipts)),
            "wrong": sorted(set(self.wrong)),
        }


@dataclass
class Checkpoint:
    block_number: int
    block_hash: str
    events_digest: str
    event_count: int
    facts: Facts
    verdict: str
    mode: str
    report: dict[str, Any]
    checked_at: datetime
    # the record changes counted when the run began and the rules it applied (see
    # ``record_changes``); None for a checkpoint that cannot vouch for them
    basis: str | None = None


def record_changes(db: Database) -> tuple[int, int] | None:
    """(the sum of the record-change weights, the newest row's id), read before the run reads any
    record. The sum grows by every committed write to a table the reconciliation reads (the
    triggers of migration 0021), so an equal sum later means that nothing it read has changed
    since. None when nothing was ever counted (a database built without those triggers): such a
    run vouches for nothing, and the next one checks everything again."""
    with db.session() as s:
        total, top = s.execute(select(func.sum(RecordChange.weight), func.max(RecordChange.id))).one()
    return None if total is None else (int(total), int(top))


FOLD_ABOVE = 1_000  # rows of record changes (PostgreSQL: one a write) folded into one by a run


def fold_record_changes(db: Database, top: int) -> None:
    """Fold the record-change rows up to ``top`` into one row of their summed weight (PostgreSQL,
    where each write inserts a row; the sum is unchanged, in one statement). Rows written by
    transactions that had not committed when this ran are not seen, so not folded: they count
    when they commit, as they would have."""
    if db.engine.dialect.name != "postgresql":
        return  # SQLite keeps one row
    with db.session() as s:
        rows = s.scalar(select(func.count()).select_from(RecordChange).where(RecordChange.id <= top))
        if (rows or 0) <= FOLD_ABOVE:
            return
        s.execute(
            text(
                "WITH gone AS (DELETE FROM record_changes WHERE id <= :top RETURNING weight) "
                "INSERT INTO record_changes (weight) SELECT SUM(weight) FROM gone HAVING COUNT(*) > 0"
            ),
            {"top": top},
        )
        s.commit()


def load(db: Database) -> Checkpoint | None:
    with db.session() as s:
        row = s.get(ReconciliationCheckpoint, NAME)
        if row is None:
            return None
        return Checkpoint(
            block_number=row.block_number,
            block_hash=row.block_hash,
            events_digest=row.events_digest,
            event_count=row.event_count,
            facts=Facts.from_json(row.facts or {}),
            verdict=row.verdict,
            mode=row.mode,
            report=row.report,
            checked_at=row.checked_at,
            basis=row.basis,
        )


def save(db: Database, cp: Checkpoint) -> None:
    """Store ``cp`` as the checkpoint (one row; the newest run wins, each one verified)."""
    values = {
        "block_number": cp.block_number,
        "block_hash": cp.block_hash,
        "events_digest": cp.events_digest,
        "event_count": cp.event_count,
        "facts": cp.facts.as_json(),
        "verdict": cp.verdict,
        "mode": cp.mode,
        "report": cp.report,
        "checked_at": cp.checked_at,
        "basis": cp.basis,
    }
    with _save_lock:
        for _ in range(2):  # another process may insert the first row between our read and write
            with db.session() as s:
                row = s.get(ReconciliationCheckpoint, NAME)
                if row is None:
                    s.add(ReconciliationCheckpoint(name=NAME, **values))
                else:
                    for k, v in values.items():
                        setattr(row, k, v)
                try:
                    s.commit()
                    return
                except IntegrityError:
                    s.rollback()


def restamp(db: Database, cp: Checkpoint, report: dict[str, Any], checked_at: datetime) -> None:
    """A run that found nothing changed since checkpoint ``cp``: its report (the same verdict, run
    now) and time replace the stored ones, if ``cp`` is still the stored checkpoint. Not flushed
    to disk on its own: what it records is there already, only older (``deferred_session``)."""
    with _save_lock, db.deferred_session() as s:
        row = s.get(ReconciliationCheckpoint, NAME)
        if row is not None and (row.block_number, row.block_hash, row.basis) == (
            cp.block_number,
            cp.block_hash,
            cp.basis,
        ):
            row.report, row.mode, row.checked_at = report, report["mode"], checked_at
            s.commit()


def forget(db: Database) -> None:
    """Drop the checkpoint: the next run replays from deployment."""
    with db.session() as s:
        row = s.get(ReconciliationCheckpoint, NAME)
        if row is not None:
            s.delete(row)
            s.commit()


def now() -> datetime:
    return utcnow()
