"""A card blocked at the gateway is a webhook: the gateway writes the event into the shared
database with the settlement's (or the report's) operation, and the operator's worker, reading the
same database, delivers it to a real local receiver."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from chain.clients.hardwallet import Payment, sign_payment
from services.common import webhooks
from services.common.keys import Role, create_key
from services.common.models import WebhookEndpoint
from tests.gateway.conftest import Gateway
from tests.gateway.test_offline_payments import LOADED, Shop, outcomes, upload
from tests.receiver import Receiver, verify


@pytest.fixture
def hooked(gateway: Gateway) -> Iterator[tuple[Receiver, str, webhooks.Deliverer]]:
    """A receiver, an operator key's endpoint for card.blocked (registered in the shared database,
    as the operator's route does), and the operator's delivery worker on that database."""
    receiver = Receiver().start()
    settings = gateway.ctx.settings
    secret = webhooks.new_secret()
    with gateway.ctx.db.session() as s:
        key, _ = create_key(s, Role.OPERATOR, "webhooks")
        s.flush()
        s.add(
            WebhookEndpoint(
                url=receiver.url,
                events=["card.blocked"],
                secret=webhooks.seal(settings, secret),
                created_by=key.id,
                active=True,
            )
        )
        s.commit()
    deliverer = webhooks.Deliverer(gateway.ctx.db, settings)
    yield receiver, secret, deliverer
    deliverer.close()
    receiver.stop()
    with gateway.ctx.db.session() as s:  # later tests of the module register nothing
        for row in s.query(WebhookEndpoint).all():
            row.active = False
        s.commit()


def delivered(hooked: tuple[Receiver, str, webhooks.Deliverer]) -> list[dict[str, Any]]:
    receiver, secret, deliverer = hooked
    deliverer.run_once()
    for headers, body in receiver.got:
        assert verify(secret, headers["x-xcpay-signature"], body)
    return [json.loads(body) for _, body in receiver.got]


def test_a_card_blocked_for_a_shortfall_is_delivered(gateway: Gateway, hooked: Any) -> None:
    key = secrets.token_bytes(32)
    shop = Shop(gateway, private_key=key)
    a = shop.pay(gateway, 80_000)
    b = sign_payment(
        key, Payment(shop.card.address, shop.merchant, 50_000, 2, gateway.now()), shop.card.domain
    )
    assert outcomes(upload(gateway, shop.terminal, a, b)) == [("settled", None), ("shortfall", None)]
    [event] = delivered(hooked)
    assert event["type"] == "card.blocked"
    data = event["data"]
    assert (data["card"], data["holder"], data["reason"]) == (shop.card.address, shop.holder, "shortfall")
    assert data["shortfall_fen"] == 80_000 + 50_000 - LOADED and data["tx_hash"].startswith("0x")


def test_a_card_reported_lost_is_delivered(gateway: Gateway, hooked: Any) -> None:
    card, holder = gateway.card(load=1_000)
    assert gateway.post("operator", f"/v1/cards/{card.address}/report-lost").status_code == 200
    [event] = delivered(hooked)
    assert (event["type"], event["data"]["card"], event["data"]["holder"]) == (
        "card.blocked",
        card.address,
        holder,
    )
    assert event["data"]["reason"] == "reported-lost"
