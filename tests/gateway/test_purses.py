"""Earmarked purses on cards through the gateway: a programme, funding a card's purse from the
programme's custodial funder, an offline payment at a care merchant spending it before cash,
reading it, expiring it; the refusals as problem+json (both databases)."""

from __future__ import annotations

import uuid

from chain import devtools
from chain.clients.token import Kind
from services.gateway.families.hardwallet.schemas import CANTEEN_MCC, CARE_MCC
from tests.gateway.conftest import Gateway

DAY = 86_400


def programme(gw: Gateway, funder: str, **terms: object) -> int:
    pid = uuid.uuid4().int % 2**31 + 1
    body = {
        "programme": pid,
        "funder": funder,
        "per_card_cap_fen": 500_00,
        "expires_at": gw.now() + 30 * DAY,
        "categories": [CARE_MCC],
        **terms,
    }
    r = gw.post("operator", "/v1/purse-programmes", body)
    assert r.status_code == 201, r.text
    return pid


def funder(gw: Gateway) -> str:
    f = gw.wallet(Kind.INSTITUTION, 1)
    gw.mint(f, 10_000_00)
    return f


class TestPurses:
    def test_a_care_payment_spends_the_elderly_purse_before_cash(self, gateway: Gateway) -> None:
        gw = gateway
        f = funder(gw)
        pid = programme(gw, f)
        card, _ = gw.card(load=100_00)
        key = str(uuid.uuid4())
        body = {"programme": pid, "amount_fen": 300_00}
        for _ in range(2):  # the same idempotency key: funded once
            r = gw.post("operator", f"/v1/cards/{card.address}/purses", body, key=key)
            assert r.status_code == 200, r.text
        r = gw.get("auditor", f"/v1/cards/{card.address}/purses")
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["cash_reserve_fen"] == 100_00
        assert [(p["programme"], p["balance_fen"], p["funded_fen"]) for p in got["purses"]] == [
            (pid, 300_00, 300_00)
        ]
        card.credit(300_00)  # the card's own offline balance counts its purse
        care = gw.merchant(CARE_MCC)
        _, terminal = gw.terminal(care)
        payment = card.sign_payment(care, 320_00, gw.now())
        r = gw.post(terminal, "/v1/offline-payments", {"payments": [payment.to_json()]})
        assert r.status_code == 200 and r.json()["results"][0]["outcome"] == "settled", r.text
        got = gw.get("operator", f"/v1/cards/{card.address}/purses").json()
        assert got["cash_reserve_fen"] == 80_00
        assert [(p["balance_fen"], p["spent_fen"]) for p in got["purses"]] == [(0, 300_00)]
        prog = gw.get("regulator" if "regulator" in gw.clients else "auditor", f"/v1/purse-programmes/{pid}")
        assert prog.status_code == 200, prog.text
        assert (prog.json()["funded_fen"], prog.json()["spent_fen"], prog.json()["held_fen"]) == (
            300_00,
            300_00,
            0,
        )
        assert gw.ctx.cash.balance_of(care) == 320_00

    def test_a_canteen_payment_leaves_the_elderly_purse_alone_and_expiry_returns_it(
        self, gateway: Gateway
    ) -> None:
        gw = gateway
        f = funder(gw)
        pid = programme(gw, f)
        card, _ = gw.card(load=100_00)
        r = gw.post("operator", f"/v1/cards/{card.address}/purses", {"programme": pid, "amount_fen": 50_00})
        assert r.status_code == 200, r.text
        canteen = gw.merchant(CANTEEN_MCC)
        _, terminal = gw.terminal(canteen)
        r = gw.post(
            terminal, "/v1/offline-payments", {"payments": [card.sign_payment(canteen, 20_00).to_json()]}
        )
        assert r.status_code == 200 and r.json()["results"][0]["outcome"] == "settled", r.text
        got = gw.get("operator", f"/v1/cards/{card.address}/purses").json()
        assert (got["cash_reserve_fen"], got["purses"][0]["balance_fen"]) == (80_00, 50_00)
        r = gw.post("operator", f"/v1/cards/{card.address}/purses/{pid}/expire")
        assert r.status_code == 409 and r.json()["type"].endswith("purse-not-expired"), r.text
        before = gw.ctx.cash.balance_of(f)
        devtools.increase_time(gw.w3, 31 * DAY)
        r = gw.post("operator", f"/v1/cards/{card.address}/purses/{pid}/expire")
        assert r.status_code == 200, r.text
        assert gw.ctx.cash.balance_of(f) == before + 50_00
        assert gw.get("operator", f"/v1/cards/{card.address}/purses").json()["purses"] == []
        got = gw.get("operator", f"/v1/purse-programmes/{pid}").json()
        assert (got["funded_fen"], got["expired_fen"], got["held_fen"]) == (50_00, 50_00, 0)

    def test_refusals_are_specific_problems(self, gateway: Gateway) -> None:
        gw = gateway
        f = funder(gw)
        pid = programme(gw, f, per_card_cap_fen=10_00)
        card, _ = gw.card()
        cases = [
            ({"programme": 987_654, "amount_fen": 1}, 404, "purse-programme-not-found"),
            ({"programme": pid, "amount_fen": 10_01}, 422, "purse-cap-exceeded"),
            ({"programme": pid, "amount_fen": 0}, 422, "invalid-request"),
        ]
        for body, status, slug in cases:
            r = gw.post("operator", f"/v1/cards/{card.address}/purses", body)
            assert r.status_code == status and r.json()["type"].endswith(slug), r.text
            assert r.headers["content-type"].startswith("application/problem+json")
        # A funder whose key the service does not hold cannot be drawn from here.
        outsider = gw.wallet(Kind.INSTITUTION, 1)
        with gw.ctx.db.session() as s:
            from services.common.models import Wallet

            row = s.get(Wallet, outsider)
            assert row is not None
            row.custody, row.keystore = "self", None
            s.commit()
        other = programme(gw, outsider)
        r = gw.post("operator", f"/v1/cards/{card.address}/purses", {"programme": other, "amount_fen": 1})
        assert r.status_code == 422 and r.json()["type"].endswith("not-custodial"), r.text
        r = gw.post(
            "operator",
            "/v1/purse-programmes",
            {
                "programme": pid,
                "funder": f,
                "per_card_cap_fen": 1,
                "expires_at": gw.now() + DAY,
                "categories": [1],
            },
        )
        assert r.status_code == 409 and r.json()["type"].endswith("purse-programme-exists"), r.text
        bad = {"programme": pid + 1, "funder": f, "per_card_cap_fen": 1, "expires_at": 1, "categories": []}
        assert gw.post("operator", "/v1/purse-programmes", bad).status_code == 422
        r = gw.get("operator", "/v1/purse-programmes/987654")
        assert r.status_code == 404 and r.json()["type"].endswith("purse-programme-not-found")
        r = gw.get("operator", f"/v1/cards/{'0x' + 'ab' * 20}/purses")
        assert r.status_code == 404 and r.json()["type"].endswith("card-not-found")
