"""Webhook endpoints, their deliveries and attempts, and replays (services/common/webhooks.py).

A key reads and manages only the endpoints it registered (another key's: 403 ``not-yours``; a
missing one: 404), and their deliveries. The operator, the regulator and the auditor subscribe to
every event; a merchant key only to events naming its wallet. The secret is in the creation's
answer and nowhere else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Path, status
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.common import webhooks
from services.common.audit import record
from services.common.deps import CtxDep, require
from services.common.keys import Role
from services.common.models import ApiKey, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from services.common.paging import Page, Paging, paginate
from services.common.problems import Problem, problem_response
from services.common.schemas import Strict

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

FULL_ROLES = (Role.OPERATOR, Role.REGULATOR, Role.AUDITOR)  # every event
WebhookKey = Annotated[ApiKey, Depends(require(*FULL_ROLES, Role.MERCHANT))]
EndpointId = Annotated[int, Path(ge=1, lt=2**31)]
DeliveryId = Annotated[int, Path(ge=1, lt=2**31)]
EventType = Literal[
    "payment_code.paid",
    "payment.refunded",
    "disbursement.finished",
    "disbursement.exception",
    "voucher.programme_closed",
    "card.blocked",
    "reconciliation.verdict_changed",
]
assert set(get_args(EventType)) == set(webhooks.EVENTS)  # one list of events: webhooks.EVENTS
MAX_ENDPOINTS_PER_KEY = 20


class EndpointIn(Strict):
    url: str = Field(max_length=2000, examples=["https://erp.example.org/xcpay/hooks"])
    events: list[EventType] = Field(min_length=1, max_length=len(webhooks.EVENTS))
    description: str = Field(default="", max_length=200)


class EndpointOut(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str
    wallet: str | None = Field(description="a wallet-scoped endpoint receives only this wallet's events")
    active: bool
    created_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="the HMAC key of the signatures; shown here once, never again")


class AttemptOut(BaseModel):
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: int
    endpoint_id: int
    event_id: str = Field(description="the same for every endpoint and every attempt: deduplicate by it")
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int = Field(description="attempts since it was queued or last replayed")
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
    attempt_log: list[AttemptOut] = Field(description="every attempt, replays included, oldest first")


# -- reading -----------------------------------------------------------------------------------


def _endpoint(s: Session, key: ApiKey, endpoint_id: int) -> WebhookEndpoint:
    row = s.get(WebhookEndpoint, endpoint_id)
    if row is None:
        raise Problem(404, "webhook-not-found", "Webhook endpoint not found", f"no endpoint {endpoint_id}")
    if row.created_by != key.id:
        raise Problem(403, "not-yours", "A key reads only the webhook endpoints it registered")
    return row


def _delivery(s: Session, key: ApiKey, delivery_id: int) -> WebhookDelivery:
    row = s.get(WebhookDelivery, delivery_id)
    if row is None:
        raise Problem(404, "delivery-not-found", "Webhook delivery not found", f"no delivery {delivery_id}")
    _endpoint(s, key, row.endpoint_id)
    return row


def _endpoint_out(row: WebhookEndpoint) -> EndpointOut:
    return EndpointOut.model_validate(row, from_attributes=True)


def _deliveries_out(s: Session, rows: list[WebhookDelivery]) -> list[DeliveryOut]:
    attempts: dict[int, list[AttemptOut]] = {r.id: [] for r in rows}
    if rows:
        for a in s.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.id)
        ):
            attempts[a.delivery_id].append(AttemptOut.model_validate(a, from_attributes=True))
    return [
        DeliveryOut(
            id=r.id,
            endpoint_id=r.endpoint_id,
            event_id=r.event_id,
            event_type=r.event_type,
            status=r.status,  # type: ignore[arg-type]
            attempts=r.attempts,
            next_attempt_at=webhooks.as_of(r.due_ms) if r.status == "pending" else None,
            last_error=r.last_error,
            created_at=r.created_at,
            delivered_at=r.delivered_at,
            payload=r.payload,
            attempt_log=attempts[r.id],
        )
        for r in rows
    ]


# -- routes ------------------------------------------------------------------------------------


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={409: problem_response(f"too-many-webhooks: a key registers at most {MAX_ENDPOINTS_PER_KEY}")},
)
def create_webhook(body: EndpointIn, ctx: CtxDep, key: WebhookKey) -> EndpointCreated:
    """Register an endpoint for some event types. The answer carries the signing secret, once.
    The URL is http or https, without credentials, on a host the service allows
    (``XCPAY_WEBHOOK_ALLOWED_HOSTS``)."""
    webhooks.check_url(ctx.settings, body.url)
    events = sorted(set(body.events))
    scoped = key.role not in FULL_ROLES
    if scoped and not set(events) <= webhooks.WALLET_EVENTS:
        raise Problem(
            403,
            "forbidden-event",
            "This key may not subscribe to these events",
            f"a {key.role} key receives only events of its wallet: {sorted(webhooks.WALLET_EVENTS)}",
        )
    secret = webhooks.new_secret()
    with ctx.db.session() as s:
        count = s.scalar(
            select(func.count(WebhookEndpoint.id)).where(
                WebhookEndpoint.created_by == key.id, WebhookEndpoint.active.is_(True)
            )
        )
        if (count or 0) >= MAX_ENDPOINTS_PER_KEY:
            raise Problem(409, "too-many-webhooks", "This key has registered the most endpoints it may")
        row = WebhookEndpoint(
            url=body.url,
            events=events,
            description=body.description,
            secret=webhooks.seal(ctx.settings, secret),
            created_by=key.id,
            wallet=key.wallet if scoped else None,
            active=True,
        )
        s.add(row)
        s.commit()
        out = EndpointCreated(**_endpoint_out(row).model_dump(), secret=secret)
    record(ctx.db, key, "webhook.create", f"endpoint {out.id} {out.url}", outcome="created")
    return out


@router.get("")
def list_webhooks(
    ctx: CtxDep, key: WebhookKey, paging: Paging, include_removed: bool = False
) -> Page[EndpointOut]:
    """The endpoints this key registered, oldest first."""
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.created_by == key.id)
    if not include_removed:
        stmt = stmt.where(WebhookEndpoint.active.is_(True))
    with ctx.db.session() as s:
        rows, after = paginate(s, stmt, WebhookEndpoint.id, paging, "webhooks")
        items = [_endpoint_out(r) for r in rows]
        return Page[EndpointOut](items=items, next_cursor=after, limit=paging.limit)


@router.get("/{endpoint_id}")
def get_webhook(endpoint_id: EndpointId, ctx: CtxDep, key: WebhookKey) -> EndpointOut:
    with ctx.db.session() as s:
        return _endpoint_out(_endpoint(s, key, endpoint_id))


@router.delete("/{endpoint_id}")
def remove_webhook(endpoint_id: EndpointId, ctx: CtxDep, key: WebhookKey) -> EndpointOut:
    """Stop sending to an endpoint: it receives no new event, and its pending deliveries end
    ``failed``. It and its deliveries stay listed (``include_removed``)."""
    with ctx.db.session() as s:
        row = _endpoint(s, key, endpoint_id)
        if row.active:
            row.active = False
            webhooks.fail_pending(s, row.id, "the endpoint was removed")
            s.commit()
        out = _endpoint_out(row)
    record(ctx.db, key, "webhook.remove", f"endpoint {endpoint_id}", outcome="removed")
    return out


@router.get("/{endpoint_id}/deliveries")
def list_deliveries(
    endpoint_id: EndpointId,
    ctx: CtxDep,
    key: WebhookKey,
    paging: Paging,
    status: Literal["pending", "delivered", "failed"] | None = None,
    event_type: EventType | None = None,
) -> Page[DeliveryOut]:
    """An endpoint's deliveries, oldest first, each with its attempts."""
    with ctx.db.session() as s:
        _endpoint(s, key, endpoint_id)
        stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        if status is not None:
            stmt = stmt.where(WebhookDelivery.status == status)
        if event_type is not None:
            stmt = stmt.where(WebhookDelivery.event_type == event_type)
        rows, after = paginate(s, stmt, WebhookDelivery.id, paging, f"webhook-deliveries:{endpoint_id}")
        return Page[DeliveryOut](items=_deliveries_out(s, rows), next_cursor=after, limit=paging.limit)


@router.get("/deliveries/{delivery_id}")
def get_delivery(delivery_id: DeliveryId, ctx: CtxDep, key: WebhookKey) -> DeliveryOut:
    with ctx.db.session() as s:
        return _deliveries_out(s, [_delivery(s, key, delivery_id)])[0]


@router.post(
    "/deliveries/{delivery_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: problem_response("delivery-pending: it is still being attempted")},
)
def replay_delivery(delivery_id: DeliveryId, ctx: CtxDep, key: WebhookKey) -> DeliveryOut:
    """Send a delivered or failed delivery again: the same event id and body, a new signature,
    due now and with a fresh count of attempts (its endpoint must still be registered)."""
    with ctx.db.session() as s:
        row = _delivery(s, key, delivery_id)
        endpoint = s.get(WebhookEndpoint, row.endpoint_id)
        if endpoint is not None and not endpoint.active:
            raise Problem(
                409, "webhook-removed", "The delivery's endpoint was removed", f"endpoint {endpoint.id}"
            )
    webhooks.replay(ctx.db, delivery_id)
    record(ctx.db, key, "webhook.replay", f"delivery {delivery_id}", outcome="queued")
    with ctx.db.session() as s:
        return _deliveries_out(s, [_delivery(s, key, delivery_id)])[0]
