"""The gateway's listings (issue 21): cards and terminals page by an opaque cursor in a stable
order by id, filter, and answer bad filters and cursors with 422 problems."""

from __future__ import annotations

from typing import Any

from tests.gateway.conftest import Gateway
from wallets.hardwallet import HardWallet


def walk(gw: Gateway, who: str, path: str, id_field: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {**params, "limit": 1, **({"cursor": cursor} if cursor else {})}
        r = gw.clients[who].get(path, params=q)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        assert len(r.json()["items"]) <= 1
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    ids = [i[id_field] for i in items]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    return items


def test_cards_are_listed_by_holder_form_and_status(gateway: Gateway) -> None:
    gw = gateway
    holder = gw.wallet()
    gw.mint(holder, 1_000_00)
    card = HardWallet.issue(gw.ctx.hardwallet.domain)
    r = gw.post("operator", "/v1/cards", {"card": card.address, "holder": holder, "form": "card"})
    assert r.status_code == 201, r.text
    assert r.json()["card"] == card.address and r.json()["holder"] == holder  # what was created, on top
    second, _ = gw.card(holder=holder)
    cards = walk(gw, "auditor", "/v1/cards", "card", holder=holder)
    assert sorted(c["card"] for c in cards) == sorted([card.address, second.address])
    assert all(c["status"] == "active" for c in cards)
    r = gw.post("operator", f"/v1/cards/{second.address}/report-lost", None)
    assert r.status_code == 200, r.text
    (lost,) = walk(gw, "operator", "/v1/cards", "card", holder=holder, status="lost")
    assert lost["card"] == second.address
    assert walk(gw, "operator", "/v1/cards", "card", holder=holder, form="wearable") == []
    for bad in ({"status": "melted"}, {"holder": "0x12"}, {"cursor": "%%%"}, {"limit": 0}):
        r = gw.clients["operator"].get("/v1/cards", params=bad)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), bad


def test_terminals_page_by_id_and_filter(gateway: Gateway) -> None:
    gw = gateway
    merchant = gw.merchant(5812)
    made = sorted(gw.terminal(merchant, f"till {i}")[0] for i in range(3))
    listed = walk(gw, "operator", "/v1/terminals", "id", merchant=merchant)
    assert [t["id"] for t in listed] == made and all(t["canteen"] for t in listed)
    for _ in range(2):  # a cards page with a next cursor, whichever tests ran before in this process
        gw.card()
    page = gw.clients["auditor"].get("/v1/cards", params={"limit": 1}).json()
    assert page["next_cursor"] is not None
    r = gw.clients["operator"].get("/v1/terminals", params={"cursor": page["next_cursor"]})
    assert r.status_code == 422 and r.json()["type"].endswith("invalid-cursor")  # a cards cursor


def test_a_doors_decisions_page_by_cursor_newest_first_and_a_foreign_cursor_is_422(
    gateway: Gateway,
) -> None:
    """Red team: the decision log took any string as a cursor (200, the same page). It pages as
    every listing does now, newest first, and refuses a cursor it did not issue."""
    from tests.gateway.test_access_and_cards import Door

    door = Door(gateway)
    card, holder = gateway.card()
    door.grant(holder=holder)
    for _ in range(3):
        assert door.present(card)["allowed"]
    reader = gateway.clients["auditor"]
    path = f"/v1/access-points/{door.id}/decisions"
    seen: list[int] = []
    cursor = None
    while True:
        r = reader.get(path, params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        seen += [d["id"] for d in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 3 and seen == sorted(seen, reverse=True)
    for bad in ("anything", "%%%"):
        r = reader.get(path, params={"cursor": bad})
        assert r.status_code == 422 and r.json()["type"].endswith("invalid-cursor"), r.text
    gateway.card()  # two cards at least: the cards listing has a next page
    cards_cursor = reader.get("/v1/cards", params={"limit": 1}).json()["next_cursor"]
    assert cards_cursor is not None
    r = reader.get(path, params={"cursor": cards_cursor})
    assert r.status_code == 422 and r.json()["type"].endswith("invalid-cursor"), r.text
