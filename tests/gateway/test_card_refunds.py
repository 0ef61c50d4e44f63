"""POST /v1/card-payments/{card}/{counter}/refunds: a merchant's terminal refunds (part of) a card
payment it settled, never more in total than was paid; the cash goes back to the card's holder."""

from __future__ import annotations

import uuid

import httpx

from tests.gateway.conftest import Gateway
from tests.gateway.test_offline_payments import Shop, upload
from tests.services.test_operator_api import assert_problem


def refund(
    gw: Gateway, who: str | httpx.Client, card: str, counter: int, fen: int, key: str | None = None
) -> httpx.Response:
    return gw.post(who, f"/v1/card-payments/{card}/{counter}/refunds", {"amount_fen": fen}, key=key)


def test_a_terminal_refunds_part_of_a_card_payment_then_the_rest_and_no_more(gateway: Gateway) -> None:
    shop = Shop(gateway)
    cash = gateway.ctx.cash
    answer = upload(gateway, shop.terminal, shop.pay(gateway, 2_500))
    assert answer["results"][0]["outcome"] == "settled"
    card = shop.card.address
    holder_before, merchant_before = cash.balance_of(shop.holder), cash.balance_of(shop.merchant)
    idem = str(uuid.uuid4())
    r = refund(gateway, shop.terminal2, card, 1, 1_000, idem)  # any terminal of the merchant
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["payment_kind"], body["payment"], body["payer"], body["cash_fen"], body["status"]) == (
        "card",
        f"{card}:1",
        shop.holder,
        1_000,
        "confirmed",
    )
    assert refund(gateway, shop.terminal2, card, 1, 1_000, idem).json()["id"] == body["id"]  # replayed
    assert cash.balance_of(shop.holder) == holder_before + 1_000
    assert cash.balance_of(shop.merchant) == merchant_before - 1_000
    r = refund(gateway, shop.terminal, card, 1, 1_501)
    assert_problem(r, 409, "refund-exceeds-payment")
    assert (r.json()["paid_fen"], r.json()["refunded_fen"]) == (2_500, 1_000)
    assert refund(gateway, "operator", card, 1, 1_500).status_code == 201
    assert cash.balance_of(shop.holder) == holder_before + 2_500
    assert_problem(refund(gateway, "operator", card, 1, 1), 409, "refund-exceeds-payment")


def test_another_merchants_terminal_finds_no_such_payment(gateway: Gateway) -> None:
    shop, other = Shop(gateway), Shop(gateway)
    upload(gateway, shop.terminal, shop.pay(gateway, 800))
    card = shop.card.address
    assert_problem(refund(gateway, other.terminal, card, 1, 100), 404, "card-payment-not-found")
    assert_problem(
        refund(gateway, shop.terminal, card, 2, 100), 404, "card-payment-not-found"
    )  # unused counter
    assert_problem(refund(gateway, "auditor", card, 1, 100), 403, "forbidden-role")


def test_the_days_statement_counts_each_terminal_and_agrees_with_the_chain(gateway: Gateway) -> None:
    from datetime import UTC, date, datetime

    from web3.logs import DISCARD

    from services.common.refunds import beijing_day
    from services.operator.families.refunds.statements import statement

    shop = Shop(gateway)
    start = gateway.ctx.cash.balance_of(shop.merchant)
    upload(gateway, shop.terminal, shop.pay(gateway, 1_200), shop.pay(gateway, 300))
    _, terminal3 = gateway.terminal(shop.merchant, "counter 3")
    upload(gateway, terminal3, shop.pay(gateway, 900))
    assert refund(gateway, shop.terminal, shop.card.address, 3, 400).status_code == 201
    st = statement(gateway.ctx, shop.merchant, date.fromisoformat(beijing_day(datetime.now(UTC))))
    lines = {(ln.id, ln.payments, ln.paid_fen, ln.refunds, ln.refunded_fen, ln.net_fen) for ln in st.lines}
    terminal3_id = next(ln.id for ln in st.lines if ln.id != shop.terminal_id)
    assert lines == {(shop.terminal_id, 2, 1_500, 0, 0, 1_500), (terminal3_id, 1, 900, 1, 400, 500)}
    assert (st.totals.net_fen, st.totals.net_yuan) == (2_000, "20.00")
    assert gateway.ctx.cash.balance_of(shop.merchant) - start == st.totals.net_fen
    token = gateway.ctx.cash.cash
    moved = 0
    for h in st.transactions:
        receipt = gateway.w3.eth.get_transaction_receipt(h)
        for log in token.events.Transfer().process_receipt(receipt, errors=DISCARD):
            moved += log["args"]["value"] * (
                (log["args"]["to"] == shop.merchant) - (log["args"]["from"] == shop.merchant)
            )
    assert moved == st.totals.net_fen
