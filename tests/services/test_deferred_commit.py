"""``Database.deferred_session``: its commits skip their own disk flush, and no other session
ever gets a connection with flushes off (services/common/db.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from services.common.db import Database, upgrade
from services.common.models import Meta
from tests.databases import BACKENDS, fresh_database


def _durability(db: Database, s: object) -> str:
    query = "PRAGMA synchronous" if db.engine.dialect.name == "sqlite" else "SHOW synchronous_commit"
    return str(s.execute(text(query)).scalar())  # type: ignore[attr-defined]


# What each database says inside a deferred session and in an ordinary one (SQLite: 1 = NORMAL,
# 2 = FULL).
DEFERRED = {"sqlite": "1", "postgresql": "off"}
DURABLE = {"sqlite": "2", "postgresql": "on"}


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_deferred_commit_is_kept_and_every_other_session_flushes_again(kind: str, tmp_path: Path) -> None:
    with fresh_database(kind, tmp_path) as url:
        upgrade(url)
        db = Database(url)
        try:
            with db.session() as s:
                assert _durability(db, s) == DURABLE[kind]
            with db.deferred_session() as s:
                assert _durability(db, s) == DEFERRED[kind]
                s.add(Meta(key="deferred", value="kept"))
                s.commit()
            with pytest.raises(RuntimeError), db.deferred_session() as s:
                s.add(Meta(key="dropped", value="never"))
                raise RuntimeError("the request stopped")
            # One connection at a time in the pool's turn: each later session is back to durable.
            for _ in range(3):
                with db.session() as s:
                    assert _durability(db, s) == DURABLE[kind]
                    assert s.get(Meta, "deferred") is not None and s.get(Meta, "dropped") is None
        finally:
            db.dispose()
