"""Earmarked purses on cards through the gateway: a programme, funding a card's purse from the
programme's custodial funder, an offline payment at a care merchant spending it before cash,
reading it, expiring it; the refusals as problem+json (both databases)."""

from __future__ import annotations

import uuid

import pytest

from chain import devtools
from chain.clients.token import Kind
from services.gateway.families.hardwallet.schemas import CANTEEN_MCC, CARE_MCC
from tests.gateway.conftest import Gateway
from wallets.hardwallet import HardWallet, InsufficientOfflineBalance

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


def sync_purse(gw: Gateway, card: HardWallet, programme: int, amount: int) -> None:
    """Credit ``card``'s purse of ``programme`` by a confirmed funding of ``amount``, with the
    programme's terms as the gateway answers them (what a card's issuer top-up carries)."""
    got = gw.get("operator", f"/v1/cards/{card.address}/purses").json()
    purse = next(p for p in got["purses"] if p["programme"] == programme)
    card.credit_purse(programme, amount, categories=purse["categories"], expires_at=purse["expires_at"])


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
        purse = got["purses"][0]
        card.credit_purse(pid, 300_00, categories=purse["categories"], expires_at=purse["expires_at"])
        care = gw.merchant(CARE_MCC)
        _, terminal = gw.terminal(care)
        payment = card.sign_payment(care, 320_00, gw.now(), category=CARE_MCC)
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
            terminal,
            "/v1/offline-payments",
            {"payments": [card.sign_payment(canteen, 20_00, gw.now()).to_json()]},
        )
        assert r.status_code == 200 and r.json()["results"][0]["outcome"] == "settled", r.text
        got = gw.get("operator", f"/v1/cards/{card.address}/purses").json()
        assert (got["cash_reserve_fen"], got["purses"][0]["balance_fen"]) == (80_00, 50_00)
        assert got["purses"][0]["expired"] is False
        r = gw.post("operator", f"/v1/cards/{card.address}/purses/{pid}/expire")
        assert r.status_code == 409 and r.json()["type"].endswith("purse-not-expired"), r.text
        before = gw.ctx.cash.balance_of(f)
        devtools.increase_time(gw.w3, 31 * DAY)
        got = gw.get("operator", f"/v1/cards/{card.address}/purses").json()
        assert got["purses"][0]["expired"] is True and got["as_of"] > got["purses"][0]["expires_at"]
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


class TestCardSync:
    """The card's offline state comes from the gateway: its cash and, per purse, programme,
    balance, categories and expiry, in spending order. Synchronised from it, the card refuses
    offline what cash plus the purses allowed at the terminal's category cannot cover, and after
    the uploads its own view equals the chain's, purse by purse."""

    def test_a_synced_card_pays_as_the_settlement_draws_and_refuses_beyond_its_cover(
        self, gateway: Gateway
    ) -> None:
        gw = gateway
        f = funder(gw)
        meals = programme(gw, f, categories=[CANTEEN_MCC])
        care = programme(gw, f, categories=[CARE_MCC, CANTEEN_MCC], expires_at=gw.now() + 10 * DAY)
        card, _ = gw.card(load=50_00)
        for pid, fen in ((meals, 40_00), (care, 100_00)):
            r = gw.post("operator", f"/v1/cards/{card.address}/purses", {"programme": pid, "amount_fen": fen})
            assert r.status_code == 200, r.text
        got = gw.get("operator", f"/v1/cards/{card.address}/purses").json()
        assert got["cash_reserve_fen"] == card.offline_balance == 50_00
        assert [(p["programme"], p["balance_fen"], p["categories"], p["expired"]) for p in got["purses"]] == [
            (meals, 40_00, [CANTEEN_MCC], False),
            (care, 100_00, [CARE_MCC, CANTEEN_MCC], False),
        ]
        for p in got["purses"]:  # the issuer's top-up of the card, from the gateway's answer
            card.credit_purse(
                p["programme"], p["balance_fen"], categories=p["categories"], expires_at=p["expires_at"]
            )
        terminals = {}
        for mcc in (CANTEEN_MCC, CARE_MCC, 5411):
            merchant = gw.merchant(mcc)
            tid, client = gw.terminal(merchant)
            category = gw.get("operator", f"/v1/terminals/{tid}").json()["category"]
            assert category == mcc
            terminals[mcc] = (merchant, client)
        uploads: dict[int, list[dict[str, object]]] = {mcc: [] for mcc in terminals}

        def pay(mcc: int, fen: int) -> None:
            merchant, _ = terminals[mcc]
            uploads[mcc].append(card.sign_payment(merchant, fen, gw.now(), category=mcc).to_json())

        pay(CANTEEN_MCC, 60_00)  # meals 40 + care 20 (it allows canteens too)
        pay(5411, 30_00)  # a grocery: cash only
        with pytest.raises(InsufficientOfflineBalance) as refused:
            pay(5411, 20_01)  # cash 20.00 left, no purse allowed here
        assert (refused.value.cash, refused.value.earmarked, card.counter) == (20_00, 0, 2)
        with pytest.raises(InsufficientOfflineBalance) as refused:
            pay(CARE_MCC, 100_01)  # care 80 + cash 20
        assert (refused.value.cash, refused.value.earmarked) == (20_00, 80_00)
        pay(CARE_MCC, 90_00)  # care 80 + cash 10
        for mcc, payments in uploads.items():
            r = gw.post(terminals[mcc][1], "/v1/offline-payments", {"payments": payments})
            assert r.status_code == 200, r.text
            assert [x["outcome"] for x in r.json()["results"]] == ["settled"] * len(payments), r.text
        got = gw.get("auditor", f"/v1/cards/{card.address}/purses").json()
        assert (
            (got["cash_reserve_fen"], [(p["programme"], p["balance_fen"]) for p in got["purses"]])
            == (
                card.offline_balance,
                [(p.programme, p.balance) for p in card.purses],
            )
            == (10_00, [(meals, 0), (care, 0)])
        )
        assert gw.get("operator", f"/v1/cards/{card.address}").json()["status"] == "active"


class TestPurseRefunds:
    """What a purse paid of a bill never comes back as the holder's cash: a refund returns it to
    the purse's funder (one funder: in proportion, as a voucher's share to its issuer); when purses
    of several funders paid, only the cash part is refundable."""

    def _pay(self, gw: Gateway, card: object, merchant: str, terminal: object, fen: int) -> None:
        payment = card.sign_payment(merchant, fen, gw.now(), category=CANTEEN_MCC)  # type: ignore[attr-defined]
        r = gw.post(terminal, "/v1/offline-payments", {"payments": [payment.to_json()]})  # type: ignore[arg-type]
        assert r.status_code == 200 and r.json()["results"][0]["outcome"] == "settled", r.text

    def test_the_purse_part_of_a_refund_goes_back_to_the_funder(self, gateway: Gateway) -> None:
        gw, cash = gateway, gateway.ctx.cash
        f = funder(gw)
        pid = programme(gw, f, categories=[CANTEEN_MCC])
        card, holder = gw.card(load=10_00)
        r = gw.post("operator", f"/v1/cards/{card.address}/purses", {"programme": pid, "amount_fen": 30_00})
        assert r.status_code == 200, r.text
        sync_purse(gw, card, pid, 30_00)
        canteen = gw.merchant(CANTEEN_MCC)
        _, terminal = gw.terminal(canteen)
        self._pay(gw, card, canteen, terminal, 25_00)  # all from the purse
        holder_before, funder_before = cash.balance_of(holder), cash.balance_of(f)
        r = gw.post(terminal, f"/v1/card-payments/{card.address}/1/refunds", {"amount_fen": 10_00})
        assert r.status_code == 201, r.text
        assert (r.json()["cash_fen"], r.json()["voucher_fen"]) == (0, 10_00)
        r = gw.post(terminal, f"/v1/card-payments/{card.address}/1/refunds", {"amount_fen": 15_00})
        assert r.status_code == 201, r.text
        assert (r.json()["cash_fen"], r.json()["voucher_fen"]) == (0, 15_00)
        assert cash.balance_of(holder) == holder_before
        assert cash.balance_of(f) == funder_before + 25_00

    def test_a_bill_paid_by_a_purse_and_cash_splits_its_refund(self, gateway: Gateway) -> None:
        gw, cash = gateway, gateway.ctx.cash
        f = funder(gw)
        pid = programme(gw, f, categories=[CANTEEN_MCC])
        card, holder = gw.card(load=10_00)
        gw.post("operator", f"/v1/cards/{card.address}/purses", {"programme": pid, "amount_fen": 30_00})
        sync_purse(gw, card, pid, 30_00)
        canteen = gw.merchant(CANTEEN_MCC)
        _, terminal = gw.terminal(canteen)
        self._pay(gw, card, canteen, terminal, 40_00)  # 30.00 purse + 10.00 cash
        holder_before, funder_before = cash.balance_of(holder), cash.balance_of(f)
        r = gw.post(terminal, f"/v1/card-payments/{card.address}/1/refunds", {"amount_fen": 40_00})
        assert r.status_code == 201, r.text
        assert (r.json()["cash_fen"], r.json()["voucher_fen"]) == (10_00, 30_00)
        assert cash.balance_of(holder) == holder_before + 10_00
        assert cash.balance_of(f) == funder_before + 30_00
        from services.operator.reconciliation import reconcile

        assert [d for d in reconcile(gw.ctx).discrepancies if d.kind == "purse-refundable-as-cash"] == []

    def test_purses_of_several_funders_leave_only_the_cash_part_refundable(self, gateway: Gateway) -> None:
        gw, cash = gateway, gateway.ctx.cash
        f1, f2 = funder(gw), funder(gw)
        p1 = programme(gw, f1, categories=[CANTEEN_MCC])
        p2 = programme(gw, f2, categories=[CANTEEN_MCC])
        card, holder = gw.card(load=10_00)
        for pid in (p1, p2):
            body = {"programme": pid, "amount_fen": 10_00}
            r = gw.post("operator", f"/v1/cards/{card.address}/purses", body)
            assert r.status_code == 200, r.text
            sync_purse(gw, card, pid, 10_00)
        canteen = gw.merchant(CANTEEN_MCC)
        _, terminal = gw.terminal(canteen)
        self._pay(gw, card, canteen, terminal, 25_00)  # 10.00 + 10.00 purses + 5.00 cash
        holder_before = cash.balance_of(holder)
        r = gw.post(terminal, f"/v1/card-payments/{card.address}/1/refunds", {"amount_fen": 5_01})
        assert r.status_code == 409 and r.json()["type"].endswith("refund-exceeds-payment"), r.text
        assert r.json()["paid_fen"] == 5_00
        r = gw.post(terminal, f"/v1/card-payments/{card.address}/1/refunds", {"amount_fen": 5_00})
        assert r.status_code == 201, r.text
        assert (r.json()["cash_fen"], r.json()["voucher_fen"]) == (5_00, 0)
        assert cash.balance_of(holder) == holder_before + 5_00
