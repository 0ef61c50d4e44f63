"""API keys: random, shown once, stored as SHA-256 hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.models import ApiKey, utcnow


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    CHECKER = "checker"
    MERCHANT = "merchant"
    REGULATOR = "regulator"
    AUDITOR = "auditor"
    OFFICER = "officer"  # a village officer of collectives; the key speaks for its custodial wallet
    TERMINAL = "terminal"  # a gateway terminal; the key speaks for its merchant's wallet
    ACCESS_POINT = "access-point"  # a door reader of the gateway
    # a resident: the key speaks for their own wallet only (sign-in with the wallet's key, or
    # issued by the operator for a custodial wallet); reaches the /v1/holder routes and nothing else
    HOLDER = "holder"


def new_key() -> str:
    return "xcp_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # Keys are 256-bit random strings, so a plain SHA-256 cannot be brute-forced; no salt needed.
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    session: Session,
    role: Role,
    label: str = "",
    key: str | None = None,
    wallet: str | None = None,
    institution: int | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key (or the given one) for ``role``; returns the row and the clear key.
    ``institution``: the operator institution an operator key acts for (None: institution #1)."""
    key = key or new_key()
    row = ApiKey(
        key_hash=hash_key(key),
        prefix=key[:8],
        role=str(role),
        label=label,
        wallet=wallet,
        institution=institution,
    )
    session.add(row)
    session.flush()
    return row, key


def authenticate(session: Session, presented: str) -> ApiKey | None:
    """The key's row, or None for an unknown, revoked or expired key. Read from the database on
    every request, so a revocation takes effect at once (no cache to wait out)."""
    if len(presented) > 200:
        return None
    digest = hash_key(presented)
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if row is None or row.revoked or not hmac.compare_digest(row.key_hash, digest):
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return row


def ensure_admin(session: Session, configured: str | None) -> str | None:
    """Make sure an admin key exists. Returns a newly generated clear key (to print once) or None."""
    if configured:
        if session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(configured))) is None:
            create_key(session, Role.ADMIN, "bootstrap (XCPAY_ADMIN_API_KEY)", configured)
        session.commit()
        return None
    if session.scalar(select(ApiKey).where(ApiKey.role == Role.ADMIN, ApiKey.revoked.is_(False))) is not None:
        return None
    _, key = create_key(session, Role.ADMIN, "bootstrap (generated)")
    session.commit()
    return key
