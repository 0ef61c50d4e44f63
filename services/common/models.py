"""The operator's records (SQLAlchemy 2.0 typed ORM).

The chain holds balances and escrow state; the database holds what the chain does not: intents
(operations) and their idempotency keys, API keys (hashed), custodial keystores (encrypted),
people and wallets' display data, the audit log, and an index of chain events for reports.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """``moment`` with its zone: a naive one (SQLite keeps no offset) was stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that reads back as an aware UTC datetime on every backend: SQLite stores no
    offset and returns naive values, which the API would then publish without one (not an RFC
    3339 ``date-time``, and different from what PostgreSQL returns)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else aware(value)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UtcDateTime()}  # noqa: RUF012


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # shown in listings, never enough to use
    role: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200), default="")
    # The wallet a merchant key speaks for: it reads only that merchant's records.
    wallet: Mapped[str | None] = mapped_column(String(42), nullable=True)
    # The operator institution an operator key acts for (two tiers, issue 24): it reaches only the
    # wallets that institution serves. None: institution #1, the operator before the two tiers.
    institution: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked: Mapped[bool] = mapped_column(default=False)
    # After this instant the key authenticates nothing (None: no expiry). Revoked or rotated keys
    # keep their row (the audit log and operations refer to it).
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)


class Wallet(Base):
    __tablename__ = "wallets"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    tier: Mapped[int] = mapped_column(Integer)
    category: Mapped[int] = mapped_column(Integer, default=0)
    display_name: Mapped[str] = mapped_column(String(200))
    identity_hash: Mapped[str] = mapped_column(String(66), index=True)  # payroll rows name people by it
    custody: Mapped[str] = mapped_column(String(16))  # custodial | self
    keystore: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # encrypted v3
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Operation(Base):
    """One state-changing request and the transaction that carries it out.

    Written ``pending`` before anything is signed; the signed raw transaction and its hash are
    stored before it is sent, so a restart can finish it by hash (or rebroadcast the very same
    bytes) and never signs a second transaction for one operation.
    """

    __tablename__ = "operations"
    __table_args__ = (UniqueConstraint("api_key_id", "idempotency_key", name="uq_operation_idempotency"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|confirmed|failed
    sender: Mapped[str | None] = mapped_column(String(42), nullable=True)
    nonce: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True, index=True)
    raw_tx: Mapped[str | None] = mapped_column(Text, nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The target of the audit row its outcome writes (None: no audit row follows it). Stored with
    # the intent so that whoever records the outcome (the request, the reconciler after a power
    # loss undid a deferred outcome) writes the same audit row.
    audit_target: Mapped[str | None] = mapped_column(String(200), nullable=True)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    operation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32), default="")


# The arguments that name what an event is about, in the order one is taken as its subject: the
# collective when the event names one, else its own programme, package, proposal or asset id.
SUBJECT_ARGS = ("collectiveId", "id", "proposalId", "assetId")
MAX_SUBJECT = 2**63 - 1  # a BIGINT; a larger id (none is issued so far) is left unindexed


def event_subject(args: dict[str, Any]) -> int | None:
    """The id an event is about (see ``SUBJECT_ARGS``), or None."""
    for name in SUBJECT_ARGS:
        value = args.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value if 0 <= value <= MAX_SUBJECT else None
    return None


def _subject_default(context: Any) -> int | None:
    return event_subject(context.get_current_parameters().get("args") or {})


class ChainEvent(Base):
    """One indexed contract event.

    ``subject`` (the voucher programme, prepaid package, collective, proposal or asset the event
    is about, see :func:`event_subject`) lets the reports ask the database for one programme's or
    one collective's events through an index instead of reading every event of the contract and
    filtering in Python. A column default fills it from ``args`` on every insert, whoever inserts
    (one row, executemany, or a multi-row VALUES of the table); a multi-row VALUES insert through
    the ORM entity cannot run a default per row in SQLAlchemy, so that form sets
    ``subject=event_subject(args)`` itself."""

    __tablename__ = "chain_events"
    __table_args__ = (
        UniqueConstraint("tx_hash", "log_index", name="uq_chain_event"),
        Index("ix_chain_events_subject", "contract", "subject", "block_number"),
        # One contract's events of one name in a range of blocks: what the dashboard reads each
        # poll (migration 0027).
        Index("ix_chain_events_name_blocks", "contract", "name", "block_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    log_index: Mapped[int] = mapped_column(Integer)
    tx_hash: Mapped[str] = mapped_column(String(66))
    contract: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    subject: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=_subject_default)


class Cursor(Base):
    """How far a background job got (the event indexer's last block)."""

    __tablename__ = "cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)


class Meta(Base):
    """Facts about this database, e.g. which chain it belongs to (genesis hash, token address)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class PaymentCode(Base):
    """A merchant's payment code (聚合支付码): static (any amount) or dynamic (one bill, paid once).

    ``held_reference`` is the bill's reference while this code holds it (open or paid), unique per
    merchant, so a merchant's bill reference is payable through one code at a time and paid at most
    once; an expired code that was never paid gives it up (cleared) when a new code asks for it.
    ``idempotency_key`` and ``request_hash`` make creation idempotent per API key."""

    __tablename__ = "payment_codes"
    __table_args__ = (
        UniqueConstraint("merchant", "held_reference", name="uq_payment_codes_held_reference"),
        UniqueConstraint("created_by", "idempotency_key", name="uq_payment_codes_idempotency"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    merchant: Mapped[str] = mapped_column(String(42), index=True)
    category: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # static | dynamic
    amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    uri: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    held_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class CodePayment(Base):
    """One payment of a code. ``settles`` holds the code id for a dynamic code's live payment and is
    unique, so a bill is paid at most once even by concurrent requests; a failed payment clears it.
    ``tx_hash`` is unique too: one transaction pays at most one payment of one code, ever (a relayed
    transaction's hash is recorded when the payment is claimed, before it is sent)."""

    __tablename__ = "code_payments"
    __table_args__ = (UniqueConstraint("tx_hash", name="uq_code_payments_tx_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_id: Mapped[str] = mapped_column(ForeignKey("payment_codes.id"), index=True)
    settles: Mapped[str | None] = mapped_column(String(24), unique=True, nullable=True)
    form: Mapped[str] = mapped_column(String(24))  # custodial | signed-transaction | voucher
    payer: Mapped[str] = mapped_column(String(42))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    operation_id: Mapped[str] = mapped_column(String(36), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|confirmed|failed
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- the hard-wallet gateway (services/gateway) --------------------------------------------------


class GatewayTerminal(Base):
    """A merchant's offline payment terminal, registered with the gateway. Its API key (role
    ``terminal``, wallet = the merchant) authenticates every upload and binds it to that merchant."""

    __tablename__ = "gateway_terminals"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    merchant: Mapped[str] = mapped_column(String(42), index=True)
    category: Mapped[int] = mapped_column(Integer)  # the merchant's MCC when registered (5812: canteen)
    location: Mapped[str] = mapped_column(String(200))
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GatewayCard(Base):
    """A hard wallet the gateway issued (the chain holds its reserve and status) and the highest
    counter the gateway has seen processed for it."""

    __tablename__ = "gateway_cards"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    holder: Mapped[str] = mapped_column(String(42), index=True)
    form: Mapped[str] = mapped_column(String(16))  # card | sim | wearable
    serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_counter: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccessPoint(Base):
    """A door (or gate, turnstile) whose reader asks the gateway whether a card may pass."""

    __tablename__ = "access_points"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(String(200), default="")
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- webhooks (services/common/webhooks.py) ------------------------------------------------------


class WebhookEndpoint(Base):
    """An HTTP(S) endpoint a key registered for some event types. ``secret`` is the HMAC key of
    its signatures, encrypted (AES-256-GCM under a key derived from the keystore password): the
    signer needs it in the clear, so it cannot be hashed like an API key. ``wallet``: the scope
    of a key that speaks for one wallet (a merchant's); such an endpoint receives only events of
    that wallet. ``created_by`` follows the key through rotation."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(200), default="")
    secret: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    wallet: Mapped[str | None] = mapped_column(String(42), nullable=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """The outbox: one event for one endpoint, written in the same transaction as the event's own
    record, so that no event is lost across a restart. ``due_ms`` (Unix milliseconds, compared in
    SQL on every backend) is when the next attempt may start; ``claim`` is bumped by the worker
    that takes it (compare-and-set), so two workers never send one attempt twice."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)  # the same for every endpoint
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # since it was (re)queued
    due_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    claim: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery: its answer's status code, or why there was none."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
