"""Webhooks: signed HTTP callbacks when something happened, delivered from an outbox.

An event is written with :func:`emit` into ``webhook_deliveries`` (one row per subscribed
endpoint) **in the caller's session, before its commit**: the event's own record (a confirmed
operation, a finished batch) and its deliveries commit together or not at all, so a crash or a
restart loses none and invents none. :class:`Deliverer` (a thread of the operator service) sends
what is due; the gateway writes its events (a card blocked) into the same shared database and the
operator's worker delivers them.

Each attempt is a POST of the same JSON body, signed with the endpoint's secret::

    X-Xcpay-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

The timestamp is in the signed text, so a receiver refuses old replays by checking it. A non-2xx
answer, a timeout or a refused connection is retried after an exponential backoff (capped); after
``webhook_max_attempts`` the delivery is ``failed``. Every attempt is recorded; any delivery can be
sent again (replay). Delivery is at least once: receivers deduplicate by the event id
(``X-Xcpay-Event-Id``, the body's ``id``), the same in every attempt, every replay and for every
endpoint. An operation's events have ids derived from the operation (:func:`operation_event_id`):
its outcome is committed without a disk flush of its own (``Operations._record_outcome``), and
should a power loss undo that commit, the reconciler records the outcome again and queues the
same events under the same ids. None of them can have left by then: a delivery is sent only after
the deliverer's claim (``Deliverer._take``) is committed durably, which puts every commit before
it on disk, the outcome's included.

The event types and where they are emitted:

- ``payment_code.paid``: a ``code.pay`` operation confirmed (a card payment: only if settled), in
  :meth:`services.common.operations.Operations._finish`, via :func:`from_operation`.
- ``payment.refunded``: a ``refunds.refund`` operation confirmed (its ``Refunded`` event), the same
  way; the merchant and the payer are its parties.
- ``card.blocked``: a ``CardBlocked`` (shortfall) or ``CardReportedLost`` event in any confirmed
  operation (the gateway's settlements and reports, a card payment of a code), the same way.
- ``voucher.programme_closed``: the first ``voucher.close`` of a programme (``BudgetReturned``).
- ``disbursement.finished`` / ``disbursement.exception``: the disbursement runner
  (services/operator/families/disburse/runner.py) marks a batch executed / rows as payout exceptions;
  their payloads are the family's (services/operator/families/disburse/webhooks.py).
- ``reconciliation.verdict_changed``: :func:`note_verdict`, after a reconciliation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from web3 import Web3

from services.common.db import Database
from services.common.models import (
    ApiKey,
    ChainEvent,
    GatewayCard,
    Meta,
    Operation,
    PaymentCode,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from services.common.problems import Problem, jsonable
from services.common.settings import Settings

log = logging.getLogger("xcpay.webhooks")

# Event type -> what it means (the registration route documents and validates them).
EVENTS: dict[str, str] = {
    "payment_code.paid": "a payment of a payment code was confirmed on chain",
    "payment.refunded": "a merchant's refund of (part of) a payment was confirmed on chain",
    "disbursement.finished": "a disbursement batch was executed (every chunk paid or made an exception)",
    "disbursement.exception": "rows of a disbursement batch became payout exceptions (held for a retry)",
    "voucher.programme_closed": "a voucher programme was closed (its ungranted budget returned)",
    "card.blocked": "a hard-wallet card was blocked (a shortfall) or reported lost",
    "reconciliation.verdict_changed": "the reconciliation's verdict changed (clean <-> discrepancies)",
}
# Events a key that speaks for one wallet may subscribe to: each names its parties, and such a key
# receives only the events naming its wallet. The reconciliation concerns the whole system.
WALLET_EVENTS = frozenset(EVENTS) - {"reconciliation.verdict_changed"}

SIGNATURE_HEADER = "X-Xcpay-Signature"
SECRET_PREFIX = "whsec_"
_FETCH = 20  # due deliveries taken per round
_LEASE_MS = 30_000  # beyond the attempt's timeout: a worker that died mid-attempt is retried after it


def now_ms() -> int:
    return int(time.time() * 1000)


# -- secrets ----------------------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _aead(settings: Settings) -> AESGCM:
    """The endpoints' secrets are sealed with a key derived from the keystore password (the
    service's one secret for what it must keep in the clear, as the custodial keystores are):
    a copy of the database alone signs nothing."""
    key = hashlib.sha256(b"xcpay webhook secrets\x00" + settings.keystore_password.encode()).digest()
    return AESGCM(key)


def seal(settings: Settings, secret: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = _aead(settings).encrypt(nonce, secret.encode(), b"xcpay-webhook")
    return "v1:" + base64.b64encode(nonce + sealed).decode()


def unseal(settings: Settings, stored: str) -> str:
    raw = base64.b64decode(stored.removeprefix("v1:"))
    return _aead(settings).decrypt(raw[:12], raw[12:], b"xcpay-webhook").decode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Xcpay-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


# -- validation -------------------------------------------------------------------------------


def allowed_hosts(settings: Settings) -> set[str]:
    return {h.strip().lower().strip("[]") for h in settings.webhook_allowed_hosts.split(",") if h.strip()}


def check_url(settings: Settings, url: str) -> str:
    """An endpoint's URL: http or https, a host on the allow list, no credentials (they would be
    stored and shown in listings), no fragment, no whitespace or control character (urlsplit
    drops some of them silently, and httpx then refuses to send: a delivery never sendable).
    Refused with 422 problems that say which rule."""
    bad = next((c for c in url if c.isspace() or unicodedata.category(c).startswith("C")), None)
    if bad is not None:
        raise Problem(
            422,
            "invalid-webhook-url",
            "A webhook URL has no whitespace or control characters",
            f"character U+{ord(bad):04X} at position {url.index(bad)}",
        )
    try:
        parts = urlsplit(url)
        port = parts.port  # a malformed port raises here
    except ValueError as exc:
        raise Problem(422, "invalid-webhook-url", "The URL does not parse", str(exc)) from None
    if parts.scheme not in ("http", "https"):
        raise Problem(
            422, "invalid-webhook-url", "A webhook URL is http or https", f"scheme {parts.scheme!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise Problem(
            422,
            "invalid-webhook-url",
            "A webhook URL may not hold credentials",
            "authenticate deliveries by their signature (X-Xcpay-Signature)",
        )
    host = (parts.hostname or "").lower()
    if not host:
        raise Problem(422, "invalid-webhook-url", "A webhook URL names a host", url[:200])
    if parts.fragment:
        raise Problem(422, "invalid-webhook-url", "A webhook URL has no fragment", parts.fragment[:200])
    del port
    if not host_allowed(settings, host):
        raise Problem(
            422,
            "webhook-host-not-allowed",
            "This host is not on the service's list of webhook hosts",
            f"{host} is not in XCPAY_WEBHOOK_ALLOWED_HOSTS",
        )
    return url


def host_allowed(settings: Settings, host: str) -> bool:
    allowed = allowed_hosts(settings)
    if "*" in allowed:
        return True
    host = host.lower().strip("[]")
    if host in allowed:
        return True
    try:  # an IP literal written another way (::0001, 127.000.0.1 does not parse) is the same address
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if ip == ipaddress.ip_address(entry):
                return True
        except ValueError:
            continue
    return False


# -- writing events ---------------------------------------------------------------------------


def emit(
    session: Session,
    event_type: str,
    payload: dict[str, Any],
    parties: Iterable[str] = (),
    event_id: str | None = None,
) -> int:
    """Queue ``event_type`` for every active endpoint subscribed to it, in ``session`` (the
    caller commits it with the event's own record). An endpoint of a wallet-scoped key receives
    only events naming its wallet among ``parties``; an endpoint of a key bound to an institution
    only events naming a wallet that institution serves (two tiers: its staff read only its
    customers' records; an event naming no wallet, the reconciliation's verdict, is the
    platform's); an endpoint of a revoked or expired key, nothing. ``event_id``: the event's id
    when its source derives one (an operation's events: :func:`operation_event_id`), else a new
    one. Returns how many deliveries were queued."""
    assert event_type in EVENTS, event_type
    named = {p.lower() for p in parties if p}
    now = utcnow()
    endpoints = session.execute(
        select(WebhookEndpoint, ApiKey)
        .join(ApiKey, ApiKey.id == WebhookEndpoint.created_by)
        .where(WebhookEndpoint.active.is_(True), ApiKey.revoked.is_(False))
        .order_by(WebhookEndpoint.id)
    ).all()
    event_id, due, data = event_id or str(uuid.uuid4()), now_ms(), jsonable(payload)
    queued = 0
    serving: dict[str, int] | None = None
    for endpoint, key in endpoints:
        if event_type not in endpoint.events:
            continue
        if key.expires_at is not None and key.expires_at <= now:
            continue
        if endpoint.wallet is not None and endpoint.wallet.lower() not in named:
            continue
        if key.institution is not None:
            if serving is None:
                serving = served_by_index(session, named)
            if not any(serving.get(p, 1) == key.institution for p in named):
                continue
        session.add(
            WebhookDelivery(
                endpoint_id=endpoint.id,
                event_id=event_id,
                event_type=event_type,
                payload=data,
                status="pending",
                attempts=0,
                due_ms=due,
                claim=0,
                created_at=now,
            )
        )
        queued += 1
    return queued


def served_by_index(session: Session, wallets: Iterable[str]) -> dict[str, int]:
    """The institution serving each of ``wallets`` (lower case), from the book's indexed
    ``WalletServed`` events (one query, in the caller's transaction: no chain call while an
    operation's outcome is being recorded); a wallet with none is institution #1's. The service's
    own registrations are indexed as they confirm (``Operations.on_confirmed``); one made past the
    service is known once the indexer has read it."""
    names: set[str] = set()
    for wallet in wallets:
        if Web3.is_address(wallet):
            names |= {wallet, Web3.to_checksum_address(wallet)}
    if not names:
        return {}
    rows = session.scalars(
        select(ChainEvent)
        .where(
            ChainEvent.contract == "OperatorInstitutions",
            ChainEvent.name == "WalletServed",
            ChainEvent.args["wallet"].as_string().in_(sorted(names)),
        )
        .order_by(ChainEvent.block_number, ChainEvent.log_index)
    ).all()
    return {str(r.args["wallet"]).lower(): int(r.args["institution"]) for r in rows}


def operation_event_id(op_id: str, event_type: str, index: int = 0) -> str:
    """The id of an operation's ``index``-th event of ``event_type``: derived from the operation,
    not drawn, so that an outcome recorded again (the reconciler, after a power loss undid the
    deferred commit that recorded it; see ``Operations._record_outcome``) queues its events with
    the same ids, and a receiver that saw one already deduplicates it."""
    return str(uuid.uuid5(_OPERATION_EVENTS, f"{op_id}/{event_type}/{index}"))


_OPERATION_EVENTS = uuid.UUID("6f1d3c9e-5b7a-4e2f-9a41-2c8d0e7b3f15")  # the namespace of those ids


def from_operation(session: Session, op: Operation) -> None:
    """The events of an operation that just confirmed (``op`` is in ``session``, not committed).
    A payload it cannot build is logged and skipped, so a webhook does not keep an operation
    pending (a database error fails the caller's transaction: the reconciler finishes it again).
    Each event's id derives from the operation (:func:`operation_event_id`)."""
    try:
        events = (op.result or {}).get("events", [])
        base = {"operation_id": op.id, "tx_hash": op.tx_hash, "block_number": op.block_number}
        if op.kind == "code.pay":
            _code_paid(session, op, events, base)
        if op.kind == "refunds.refund":
            for i, e in enumerate(events):
                if e.get("name") == "Refunded":
                    args, req = e["args"], op.request
                    payload = {
                        "payment_kind": req.get("payment_kind"),
                        "payment": req.get("payment"),
                        "code_id": req.get("code"),
                        "refund_id": req.get("refund"),
                        "merchant": args["merchant"],
                        "payer": args["payer"],
                        "amount_fen": int(args["amount"]),
                        "cash_fen": int(args["cash"]),
                        "voucher_fen": int(args["voucher"]),
                        "refunded_total_fen": int(args["refundedTotal"]),
                        **base,
                    }
                    parties = [args["merchant"], args["payer"]]
                    emit(
                        session,
                        "payment.refunded",
                        payload,
                        parties,
                        operation_event_id(op.id, "payment.refunded", i),
                    )
        if op.kind == "voucher.close":
            for i, e in enumerate(events):
                if e.get("name") == "BudgetReturned":
                    args = e["args"]
                    payload = {
                        "programme_id": int(args["id"]),
                        "issuer": args["issuer"],
                        "returned_budget_fen": int(args["amount"]),
                        **base,
                    }
                    event_id = operation_event_id(op.id, "voucher.programme_closed", i)
                    emit(session, "voucher.programme_closed", payload, [args["issuer"]], event_id)
        for i, e in enumerate(events):
            name, args = e.get("name"), e.get("args", {})
            if name not in ("CardBlocked", "CardReportedLost"):
                continue
            card = session.get(GatewayCard, args["card"])
            holder = card.holder if card is not None else None
            payload = {
                "card": args["card"],
                "holder": holder,
                "reason": "shortfall" if name == "CardBlocked" else "reported-lost",
                **({"shortfall_fen": int(args["shortfall"])} if name == "CardBlocked" else {}),
                **base,
            }
            parties = [args["card"], holder or ""]
            emit(session, "card.blocked", payload, parties, operation_event_id(op.id, "card.blocked", i))
    except Exception:
        log.exception("webhook events of operation %s not written", op.id)


def _code_paid(session: Session, op: Operation, events: list[dict[str, Any]], base: dict[str, Any]) -> None:
    req = op.request
    if req.get("form") == "card":  # the settlement decides: only a settled card payment paid the bill
        p = req.get("payment", {})
        settled = any(
            e.get("name") == "PaymentSettled"
            and e["args"].get("card") == p.get("card")
            and e["args"].get("counter") == p.get("counter")
            for e in events
        )
        if not settled:
            return
    code = session.get(PaymentCode, req["code"])
    payload = {
        "code_id": req["code"],
        "merchant": req["merchant"],
        "payer": req.get("payer"),
        "amount_fen": req.get("amount_fen"),
        "form": req.get("form"),
        "reference": code.reference if code is not None else None,
        **base,
    }
    parties = [req["merchant"], req.get("payer") or ""]
    emit(session, "payment_code.paid", payload, parties, operation_event_id(op.id, "payment_code.paid"))


VERDICT_KEY = "webhooks.reconciliation.verdict"


def note_verdict(db: Database, report: dict[str, Any]) -> None:
    """Remember a reconciliation's verdict; emit ``reconciliation.verdict_changed`` when it differs
    from the last one (none yet counts as ``clean``). Both in one transaction."""
    verdict = str(report["verdict"])
    with db.session() as s:
        row = s.get(Meta, VERDICT_KEY, with_for_update=True)
        previous = row.value if row is not None else "clean"
        if verdict == previous:
            if row is None:
                s.add(Meta(key=VERDICT_KEY, value=verdict))
                s.commit()
            return
        if row is None:
            s.add(Meta(key=VERDICT_KEY, value=verdict))
        else:
            row.value = verdict
        discrepancies = report.get("discrepancies", [])
        payload = {
            "verdict": verdict,
            "previous": previous,
            "discrepancies": len(discrepancies),
            "kinds": sorted({str(d.get("kind")) for d in discrepancies})[:50],
            "to_block": report.get("to_block"),
        }
        emit(s, "reconciliation.verdict_changed", payload)
        s.commit()


# -- delivering -------------------------------------------------------------------------------


def body_of(delivery: WebhookDelivery) -> bytes:
    """The bytes every attempt of ``delivery`` sends (the same each time; the signature's
    timestamp changes)."""
    doc = {
        "id": delivery.event_id,
        "type": delivery.event_type,
        "created_at": delivery.created_at.astimezone(UTC).isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def backoff_s(settings: Settings, attempts: int) -> float:
    """The wait after the ``attempts``-th failed attempt: doubling from ``webhook_backoff_s``, capped."""
    return float(min(settings.webhook_backoff_max_s, settings.webhook_backoff_s * 2 ** max(0, attempts - 1)))


class Deliverer:
    """Sends due deliveries, one at a time, in a daemon thread of the operator service. Several
    processes may run one: a delivery is taken by compare-and-set on its ``claim`` and its due
    time pushed past the attempt, so one attempt is made by one worker."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False, trust_env=False)

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="xcpay-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.webhook_timeout_s + 5)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self._http.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.run_once()
            except Exception as exc:  # the database may be away for a moment; try again next round
                log.warning("webhook round failed: %s", exc)
                sent = 0
            if not sent:
                self._stop.wait(self.settings.webhook_poll_s)

    def run_once(self) -> int:
        """Attempt every due delivery once; returns how many attempts were made."""
        with self.db.session() as s:
            due = s.execute(
                select(WebhookDelivery.id, WebhookDelivery.claim)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.due_ms <= now_ms())
                .order_by(WebhookDelivery.due_ms, WebhookDelivery.id)
                .limit(_FETCH)
            ).all()
        made = 0
        for delivery_id, claim in due:
            if self._stop.is_set():
                break
            if self._take(delivery_id, claim):
                self._attempt(delivery_id)
                made += 1
        return made

    def _take(self, delivery_id: int, claim: int) -> bool:
        lease = now_ms() + int(self.settings.webhook_timeout_s * 1000) + _LEASE_MS
        with self.db.session() as s:
            taken = cast(
                CursorResult[Any],
                s.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery_id,
                        WebhookDelivery.claim == claim,
                        WebhookDelivery.status == "pending",
                    )
                    .values(claim=claim + 1, due_ms=lease)
                ),
            ).rowcount  # a DML statement's result
            s.commit()
        return bool(taken)

    def _attempt(self, delivery_id: int) -> None:
        with self.db.session() as s:
            delivery = s.get(WebhookDelivery, delivery_id)
            assert delivery is not None
            endpoint = s.get(WebhookEndpoint, delivery.endpoint_id)
            assert endpoint is not None
            key = s.get(ApiKey, endpoint.created_by)
            body = body_of(delivery)
        refusal = self._refusal(endpoint, key)
        if refusal is not None:  # nothing is sent, and sending later would not change it
            self._record(delivery_id, None, refusal, 0, final=True)
            return
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "xcpay-webhooks/1",
            SIGNATURE_HEADER: signature(unseal(self.settings, endpoint.secret), stamp, body),
            "X-Xcpay-Event": delivery.event_type,
            "X-Xcpay-Event-Id": delivery.event_id,
            "X-Xcpay-Delivery": str(delivery.id),
        }
        started = time.monotonic()
        code: int | None = None
        error: str | None = None
        try:
            answer = self._http.post(endpoint.url, content=body, headers=headers)
            code = answer.status_code
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except Exception as exc:
            # Also a URL httpx will not send (InvalidURL): a failed attempt that backs off and
            # ends ``failed``, never a delivery retried forever with an error logged each round.
            error = f"{type(exc).__name__}: {exc}"[:500]
        self._record(delivery_id, code, error, int((time.monotonic() - started) * 1000))

    def _refusal(self, endpoint: WebhookEndpoint, key: ApiKey | None) -> str | None:
        if not endpoint.active:
            return "the endpoint was removed"
        if key is None or key.revoked or (key.expires_at is not None and key.expires_at <= utcnow()):
            return "the key that registered the endpoint is revoked or expired"
        host = urlsplit(endpoint.url).hostname or ""
        if not host_allowed(self.settings, host):
            return f"{host} is no longer in XCPAY_WEBHOOK_ALLOWED_HOSTS"
        return None

    def _record(
        self, delivery_id: int, code: int | None, error: str | None, ms: int, *, final: bool = False
    ) -> None:
        with self.db.session() as s:
            row = s.get(WebhookDelivery, delivery_id)
            assert row is not None
            s.add(WebhookAttempt(delivery_id=delivery_id, status_code=code, error=error, duration_ms=ms))
            row.attempts += 1
            if error is None:
                row.status, row.delivered_at, row.last_error = "delivered", utcnow(), None
            else:
                row.last_error = error
                if final or row.attempts >= self.settings.webhook_max_attempts:
                    row.status = "failed"
                else:
                    row.due_ms = now_ms() + int(backoff_s(self.settings, row.attempts) * 1000)
            s.commit()


def replay(db: Database, delivery_id: int) -> WebhookDelivery:
    """Queue ``delivery`` again (delivered or failed): the same event id and body, due now, with
    a fresh count of attempts; its earlier attempts stay listed."""
    with db.session() as s:
        row = s.get(WebhookDelivery, delivery_id)
        assert row is not None
        if row.status == "pending":
            raise Problem(
                409, "delivery-pending", "This delivery is still being attempted", "replay it once it ends"
            )
        row.status, row.attempts, row.due_ms, row.claim = "pending", 0, now_ms(), row.claim + 1
        s.commit()
        return row


def fail_pending(session: Session, endpoint_id: int, why: str) -> None:
    """An endpoint removed: its pending deliveries end ``failed`` (replayable if it comes back)."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .values(status="failed", last_error=why)
    )


def as_of(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
