"""What one ``POST /v1/issuance`` sends to the database, pinned (issue 19): a change that adds a
statement or a commit to the hottest request path shows here, with the statements listed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from tests.services.conftest import Api

# The guard's API key read; the intent (its durability setting, the insert, a deferred commit);
# the claimed row read again (never sign twice) and the signer's stored-but-unsent transactions;
# the signed bytes (the one durable commit); the outcome (its durability setting, the row under
# its lock, its event index row, audit row and update: a deferred commit). Was 12 statements
# and 2 durable commits: the row was also read before the receipt wait, the issuer's own address
# was looked up among the custodial wallets, and the outcome's commit was flushed to disk.
STATEMENTS = 11
COMMITS = 3
DURABLE_COMMITS = 1
DEFERRING = ("PRAGMA synchronous=NORMAL", "SET LOCAL synchronous_commit = off")  # Database.deferred_session


def test_one_issuance_sends_a_pinned_number_of_statements(api: Api) -> None:
    wallet = api.new_wallet(tier=3)
    for _ in range(2):  # warm: the first requests of a process read what it then keeps
        r = api.post("operator", "/v1/issuance", {"to": wallet, "amount_fen": 100})
        assert r.status_code == 200, r.text
    engine = api.app.state.ctx.db.engine
    seen: list[str] = []

    def statement(conn: Any, cursor: Any, text: str, *_: Any) -> None:
        seen.append(" ".join(text.split())[:120])

    def commit(conn: Any) -> None:
        seen.append("COMMIT")

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        r = api.post("operator", "/v1/issuance", {"to": wallet, "amount_fen": 100})
        assert r.status_code == 200 and r.json()["status"] == "confirmed", r.text
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
    listing = "\n".join(seen)
    assert sum(1 for s in seen if s != "COMMIT") == STATEMENTS, listing
    assert seen.count("COMMIT") == COMMITS, listing
    durable, deferred = 0, False
    for s in seen:
        if s in DEFERRING:
            deferred = True
        elif s == "COMMIT":
            durable += not deferred
            deferred = False
    assert durable == DURABLE_COMMITS, listing
