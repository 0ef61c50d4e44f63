"""Quick-pay mandates through the gateway: grant, pull within caps, revoke."""

from __future__ import annotations

import uuid

from tests.gateway.conftest import Gateway

DAY = 86_400


class Mandate:
    """A custodial holder's mandate to a custodial merchant: 50 yuan a pull, 80 yuan a day."""

    def __init__(self, gw: Gateway) -> None:
        self.holder = gw.wallet()
        gw.mint(self.holder, 1_000_00)
        self.merchant = gw.merchant(category=4111)  # transit
        body = {
            "holder": self.holder,
            "merchant": self.merchant,
            "per_payment_cap_fen": 5_000,
            "daily_cap_fen": 8_000,
            "expires_at": gw.now() + 30 * DAY,
        }
        r = gw.post("operator", "/v1/mandates", body)
        assert r.status_code == 201, r.text
        self.id = r.json()["mandate_id"]
        self.gw = gw
        _, self.terminal = gw.terminal(self.merchant, "gate 3")

    def pull(self, amount: int, reference: str | None = None, who: object = None, key: str | None = None):  # type: ignore[no-untyped-def]
        body = {"amount_fen": amount, "reference": reference or str(uuid.uuid4())}
        return self.gw.post(who or self.terminal, f"/v1/mandates/{self.id}/pulls", body, key=key)  # type: ignore[arg-type]


def test_a_terminal_of_the_merchant_pulls_within_the_caps(gateway: Gateway) -> None:
    m = Mandate(gateway)
    assert m.pull(3_000).status_code == 200
    assert m.pull(4_000, who="operator").status_code == 200
    assert gateway.ctx.cash.balance_of(m.merchant) == 7_000
    info = gateway.get("auditor", f"/v1/mandates/{m.id}").json()
    assert (info["spent_today_fen"], info["total_pulled_fen"], info["revoked"]) == (7_000, 7_000, False)


def test_a_pull_over_the_per_payment_or_daily_cap_is_refused(gateway: Gateway) -> None:
    m = Mandate(gateway)
    r = m.pull(5_001)
    assert r.status_code == 422 and r.json()["type"].endswith("over-payment-cap")
    assert r.json()["error"]["args"]["cap"] == 5_000
    assert m.pull(5_000).status_code == 200
    r = m.pull(3_001)
    assert r.status_code == 422 and r.json()["type"].endswith("over-daily-cap")
    assert gateway.ctx.cash.balance_of(m.merchant) == 5_000


def test_an_order_reference_pays_once(gateway: Gateway) -> None:
    m = Mandate(gateway)
    idem = str(uuid.uuid4())
    first = m.pull(1_000, "order-42", key=idem)
    again = m.pull(1_000, "order-42", key=idem)  # the same request retried: the same answer
    assert first.status_code == again.status_code == 200 and first.json()["id"] == again.json()["id"]
    r = m.pull(1_000, "order-42")  # a new request for a paid order
    assert r.status_code == 409 and r.json()["type"].endswith("duplicate-reference")
    assert gateway.ctx.cash.balance_of(m.merchant) == 1_000


def test_no_pull_after_revocation(gateway: Gateway) -> None:
    m = Mandate(gateway)
    assert m.pull(1_000).status_code == 200
    assert gateway.post("operator", f"/v1/mandates/{m.id}/revoke").status_code == 200
    r = m.pull(1_000)
    assert r.status_code == 409 and r.json()["type"].endswith("mandate-revoked")
    assert gateway.get("operator", f"/v1/mandates/{m.id}").json()["revoked"]


def test_another_merchants_terminal_cannot_pull(gateway: Gateway) -> None:
    m = Mandate(gateway)
    _, other = gateway.terminal(gateway.merchant())
    r = m.pull(1_000, who=other)
    assert r.status_code == 403 and r.json()["type"].endswith("not-your-merchant")
    assert other.get(f"/v1/mandates/{m.id}").status_code == 403


def test_invalid_caps_and_unknown_mandates_are_refused(gateway: Gateway) -> None:
    holder, merchant = gateway.wallet(), gateway.merchant()
    body = {
        "holder": holder,
        "merchant": merchant,
        "per_payment_cap_fen": 9_000,
        "daily_cap_fen": 8_000,
        "expires_at": gateway.now() + DAY,
    }
    r = gateway.post("operator", "/v1/mandates", body)
    assert r.status_code == 422 and r.json()["type"].endswith("invalid-caps")
    assert gateway.get("operator", "/v1/mandates/999999").status_code == 404
