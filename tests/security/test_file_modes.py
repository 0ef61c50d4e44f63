"""Secrets at rest: the SQLite database (custodial keystores, key hashes) and its directory are
readable by their owner only, from the first byte, with the WAL and shared-memory files too."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy import text

from services.common.db import Database, upgrade


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_directory_are_owner_only(tmp_path: Path) -> None:
    os.umask(0o022)  # the usual umask, which made the file 0644
    path = tmp_path / "var" / "xcpay.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    db = Database(url)
    with db.session() as s:  # a write, so that the -wal and -shm files exist
        s.execute(text("INSERT INTO meta (key, value) VALUES ('mode-test', 'x')"))
        s.commit()
        sides = [path.with_name(path.name + side) for side in ("-wal", "-shm")]
        assert all(p.exists() for p in sides)
        assert {p.name: _mode(p) for p in (path, *sides)} == {p.name: 0o600 for p in (path, *sides)}
    db.dispose()
    assert _mode(path.parent) == 0o700


def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    os.chmod(path, 0o644)
    wal = path.with_name(path.name + "-wal")
    wal.write_bytes(b"")
    os.chmod(wal, 0o644)
    Database(url).dispose()
    assert (_mode(path), _mode(wal)) == (0o600, 0o600)
