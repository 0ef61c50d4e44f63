"""The audit log: who (key and role) did what, to what, when, with which operation and outcome."""

from __future__ import annotations

from services.common.db import Database
from services.common.models import ApiKey, AuditEntry


def entry(
    key: ApiKey | None,
    action: str,
    target: str = "",
    operation_id: str | None = None,
    outcome: str = "",
) -> AuditEntry:
    """The audit row, not yet added: ``record`` commits it alone; an operation's outcome commits
    it in the same transaction as the outcome (one commit fewer per operation)."""
    return AuditEntry(
        api_key_id=key.id if key else None,
        role=key.role if key else "anonymous",
        action=action,
        target=target.replace("\x00", "")[:200],  # PostgreSQL stores no NUL
        operation_id=operation_id,
        outcome=outcome[:32],
    )


def record(
    db: Database,
    key: ApiKey | None,
    action: str,
    target: str = "",
    operation_id: str | None = None,
    outcome: str = "",
) -> None:
    with db.session() as s:
        s.add(entry(key, action, target, operation_id, outcome))
        s.commit()
