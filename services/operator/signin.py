"""One-time sign-in links for the dashboard: a way in other than typing an API key.

``make run`` prints a link (``python -m services.operator login-link`` makes another) of the form
``/dashboard/login?token=…``. The token is 256 random bits, stored only as its SHA-256, valid for
``LINK_TTL`` and spent by its first use: opening it gives the tab a new **auditor** key (read-only)
that expires after ``SESSION_TTL``, kept by the page in ``sessionStorage`` like a typed key. A
second use, an expired or an unknown token get a page that says so and how to get a new link; the
token in a log or a browser history is worth nothing once used.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from services.common.keys import Role, create_key, hash_key
from services.common.models import utcnow
from services.operator.models import DashboardSignIn

LINK_TTL = timedelta(minutes=15)
SESSION_TTL = timedelta(hours=12)


def create_link_token(session: Session, label: str = "make run", ttl: timedelta = LINK_TTL) -> str:
    """Store a new sign-in token (hashed) and return it in the clear, to print once."""
    token = "xcl_" + secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        DashboardSignIn(
            token_hash=hash_key(token),
            role=str(Role.AUDITOR),
            label=label[:200],
            created_at=now,
            expires_at=now + ttl,
        )
    )
    session.commit()
    return token


def redeem(session: Session, token: str) -> str | None:
    """Spend ``token``: a new read-only key for the dashboard, or None when the token is unknown,
    expired or used already. The spend is one conditional UPDATE (``used_at IS NULL``), so a token
    gives at most one key however many requests race on it."""
    if not token or len(token) > 200:
        return None
    now = utcnow()
    spent = session.execute(
        update(DashboardSignIn)
        .where(
            DashboardSignIn.token_hash == hash_key(token),
            DashboardSignIn.used_at.is_(None),
            DashboardSignIn.expires_at > now,
        )
        .values(used_at=now)
        .returning(DashboardSignIn.id, DashboardSignIn.role)
    ).first()
    if spent is None:
        session.rollback()
        return None
    row_id, role = spent
    key_row, key = create_key(session, Role(role), f"dashboard sign-in link #{row_id}")
    key_row.expires_at = now + SESSION_TTL
    session.execute(update(DashboardSignIn).where(DashboardSignIn.id == row_id).values(api_key_id=key_row.id))
    session.commit()
    return key
