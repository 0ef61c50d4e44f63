"""The databases the suite runs on: SQLite always, PostgreSQL when one is reachable.

``XCPAY_TEST_POSTGRES_URL`` names the server (a SQLAlchemy URL to an existing database used
only to create and drop throwaway databases); otherwise 127.0.0.1:5432 is tried with the
``postgres`` user and the ``test`` database. Each test module gets its own fresh database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_admin_url() -> str | None:
    url = os.environ.get("XCPAY_TEST_POSTGRES_URL", DEFAULT_PG)
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return url
    except Exception:
        if "XCPAY_TEST_POSTGRES_URL" in os.environ:
            raise  # asked for explicitly: its absence is a failure, not a skip
        return None


BACKENDS = ["sqlite"] + (["postgresql"] if postgres_admin_url() else [])


@contextmanager
def fresh_database(kind: str, tmp: Path) -> Iterator[str]:
    """A new, empty database of ``kind``; yields its URL and drops it afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'xcpay.db'}"
        return
    admin = postgres_admin_url()
    assert admin is not None
    name = f"xcpay_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
