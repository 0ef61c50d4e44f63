"""Two tiers on the hard-wallet gateway (red team rt3), over HTTP on both databases: an operator
key bound to institution #2 reads and acts on its own institution's customers' cards, terminals,
mandates, pre-authorisations, uploads, access points and programmes (200/201), and gets 403
``institution-scope`` for institution #1's (listings leave them out), with nothing changed by a
refused write. The platform's keys (the operator key bound to no institution, the auditor) read
both. Institution #2 is authorised on chain as the regulator and the admin do it
(``authorise_institution``) and registers its customers through the central bank's book with its
own key, as the operator service does for a key bound to it. The route table is in the README
("Two-tier operation")."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chain.accounts import INSTITUTION_DEV_ACCOUNTS, dev_account
from chain.clients.tiers import authorise_institution
from chain.clients.token import Kind
from services.common.keys import Role, create_key
from services.gateway.families.hardwallet.schemas import CARE_MCC
from tests.gateway.conftest import OPERATOR, Gateway
from tests.services.test_operator_api import assert_problem
from wallets.hardwallet import HardWallet

ADMIN, CENTRAL_BANK = dev_account(0), dev_account(2)
BANK_B = dev_account(INSTITUTION_DEV_ACCOUNTS[0])
SCOPE = "institution-scope"
DAY = 86_400
PLATFORM = ("operator", "auditor")  # the gateway fixture's keys, bound to no institution


@dataclass
class Side:
    """One institution's customers and what its key set up for them through the gateway."""

    who: str  # the role name of the key that set it up in ``gateway.clients``
    holder: str
    merchant: str
    org: str
    card: HardWallet
    load_op: str  # the operation of the card's load
    terminal_id: str
    terminal: httpx.Client
    mandate: int
    preauth: int
    upload: int
    paid_counter: int  # the counter of the card payment in ``upload``
    point: str
    device_programme: int
    purse_programme: int


@dataclass
class World:
    mine: Side  # institution #2's, through its key ``bank_b``
    theirs: Side  # institution #1's, through the unbound operator key


def _wallet(
    gw: Gateway, institution: int, kind: Kind = Kind.PERSONAL, tier: int = 3, category: int = 0
) -> str:
    """A custodial wallet served by ``institution`` (#1: the fixture's way; #2: its own key
    registers it through the central bank's book)."""
    if institution == 1:
        return gw.wallet(kind, tier, category)
    ctx = gw.ctx
    address = gw.wallet(
        kind, tier, category, register=lambda a, k, t, c, i: ctx.institutions.register(BANK_B, a, k, t, c, i)
    )
    assert ctx.institutions.served_by(address) == institution
    return address


def _created(r: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


def _card(gw: Gateway, who: str, holder: str, load: int = 0) -> tuple[HardWallet, str | None]:
    card = HardWallet.issue(gw.ctx.hardwallet.domain)
    _created(gw.post(who, "/v1/cards", {"card": card.address, "holder": holder, "form": "card"}))
    if not load:
        return card, None
    op = _created(gw.post(who, f"/v1/cards/{card.address}/loads", {"amount_fen": load}), 200)
    card.credit(load)
    return card, str(op["id"])


def _preauth(gw: Gateway, side: Side, amount: int = 5_00) -> int:
    signed = side.card.sign_preauth(side.merchant, amount, gw.ctx.devices.domain)
    return int(_created(gw.post(side.terminal, "/v1/devices/preauths", signed.to_json()))["id"])


def _mint(gw: Gateway, institution: int, to: str, amount: int) -> None:
    """Cash for ``to``, issued by the institution that serves it (the token refuses another's)."""
    gw.ctx.cash.mint(OPERATOR if institution == 1 else BANK_B, to, amount)


def _side(gw: Gateway, who: str, institution: int) -> Side:
    holder = _wallet(gw, institution)
    _mint(gw, institution, holder, 1_000_00)
    merchant = _wallet(gw, institution, Kind.MERCHANT, 2, CARE_MCC)
    org = _wallet(gw, institution, Kind.INSTITUTION, 4)
    _mint(gw, institution, org, 100_00)
    card, load_op = _card(gw, who, holder, 300_00)
    assert load_op is not None
    term = _created(gw.post(who, "/v1/terminals", {"merchant": merchant, "location": "counter"}))
    terminal = gw.client(term["key"])
    mandate = _created(
        gw.post(
            who,
            "/v1/mandates",
            {
                "holder": holder,
                "merchant": merchant,
                "per_payment_cap_fen": 50_00,
                "daily_cap_fen": 80_00,
                "expires_at": gw.now() + 30 * DAY,
            },
        )
    )["mandate_id"]
    payment = card.sign_payment(merchant, 1_00, gw.now())
    upload = _created(gw.post(terminal, "/v1/offline-payments", {"payments": [payment.to_json()]}), 200)
    point = _created(gw.post(who, "/v1/access-points", {"name": f"gate of {who}"}))["id"]
    _created(gw.post(who, f"/v1/access-points/{point}/grants", {"holder": holder}))
    device_programme = _created(
        gw.post(who, "/v1/devices/programmes", {"sponsor": org, "merchant": merchant, "daily_cap_fen": 5_00})
    )["programme_id"]
    purse_programme = uuid.uuid4().int % 2**31 + 1
    body = {
        "programme": purse_programme,
        "funder": org,
        "per_card_cap_fen": 50_00,
        "expires_at": gw.now() + 30 * DAY,
        "categories": [CARE_MCC],
    }
    _created(gw.post(who, "/v1/purse-programmes", body))
    side = Side(
        who,
        holder,
        merchant,
        org,
        card,
        load_op,
        term["id"],
        terminal,
        int(mandate),
        0,
        int(upload["id"]),
        int(payment.to_json()["counter"]),
        point,
        int(device_programme),
        purse_programme,
    )
    side.preauth = _preauth(gw, side)
    return side


@pytest.fixture(scope="module")
def world(gateway: Gateway) -> World:
    """Institution #2 authorised on chain, an operator key bound to it (``bank_b``), and each
    institution's customers set up through the gateway by its own key."""
    ctx = gateway.ctx
    assert authorise_institution(ctx.institutions, ADMIN, CENTRAL_BANK, BANK_B.address, "bank b") == 2
    ctx.institutions.allocate(CENTRAL_BANK, 2, 1_000_000_00)
    with ctx.db.session() as s:
        _, key = create_key(s, Role.OPERATOR, "bank b", institution=2)
        s.commit()
    gateway.clients["bank_b"] = gateway.client(key)
    return World(mine=_side(gateway, "bank_b", 2), theirs=_side(gateway, "operator", 1))


def refused(gw: Gateway, path: str, platform: tuple[str, ...] = PLATFORM) -> dict[str, Any]:
    """Institution #2's key is refused ``path`` (403 ``institution-scope``); the platform's keys
    (those of ``platform``: the route's readers) read it. The problem document."""
    body = assert_problem(gw.get("bank_b", path), 403, SCOPE)
    for role in platform:
        r = gw.get(role, path)
        assert r.status_code == 200, (role, path, r.text)
    return body


def allowed(gw: Gateway, path: str, platform: tuple[str, ...] = PLATFORM) -> httpx.Response:
    """Institution #2's key reads ``path`` (200), and so do the platform's keys."""
    r = gw.get("bank_b", path)
    assert r.status_code == 200, (path, r.text)
    for role in platform:
        assert gw.get(role, path).status_code == 200, (role, path)
    return r


def listed(gw: Gateway, who: str, path: str, field: str) -> set[Any]:
    r = gw.get(who, path)
    assert r.status_code == 200, (who, path, r.text)
    return {item[field] for item in r.json()["items"]}


def served(gw: Gateway, wallet: str) -> int:
    return gw.ctx.institutions.served_by(wallet)


class TestReads:
    def test_an_operation(self, gateway: Gateway, world: World) -> None:
        body = refused(gateway, f"/v1/operations/{world.theirs.load_op}")
        assert "institution 2" in body["detail"]
        assert allowed(gateway, f"/v1/operations/{world.mine.load_op}").json()["status"] == "confirmed"

    def test_a_card_and_its_purses(self, gateway: Gateway, world: World) -> None:
        body = refused(gateway, f"/v1/cards/{world.theirs.card.address}")
        assert world.theirs.holder in body["detail"] and "institution 1" in body["detail"]
        assert allowed(gateway, f"/v1/cards/{world.mine.card.address}").json()["holder"] == world.mine.holder
        refused(gateway, f"/v1/cards/{world.theirs.card.address}/purses")
        allowed(gateway, f"/v1/cards/{world.mine.card.address}/purses")

    def test_the_card_listing_shows_only_its_institutions_cards(self, gateway: Gateway, world: World) -> None:
        mine, theirs = world.mine.card.address, world.theirs.card.address
        cards = listed(gateway, "bank_b", "/v1/cards?limit=200", "card")
        assert mine in cards and theirs not in cards
        assert all(
            served(gateway, c["holder"]) == 2 for c in gateway.get("bank_b", "/v1/cards").json()["items"]
        )
        assert listed(gateway, "bank_b", f"/v1/cards?holder={world.theirs.holder}", "card") == set()
        assert listed(gateway, "bank_b", f"/v1/cards?holder={world.mine.holder}", "card") == {mine}
        for role in PLATFORM:
            assert {mine, theirs} <= listed(gateway, role, "/v1/cards?limit=200", "card")

    def test_a_mandate(self, gateway: Gateway, world: World) -> None:
        refused(gateway, f"/v1/mandates/{world.theirs.mandate}")
        assert allowed(gateway, f"/v1/mandates/{world.mine.mandate}").json()["holder"] == world.mine.holder

    def test_terminals(self, gateway: Gateway, world: World) -> None:
        refused(gateway, f"/v1/terminals/{world.theirs.terminal_id}", ("operator",))  # its readers
        allowed(gateway, f"/v1/terminals/{world.mine.terminal_id}", ("operator",))
        ids = listed(gateway, "bank_b", "/v1/terminals?limit=200", "id")
        assert world.mine.terminal_id in ids and world.theirs.terminal_id not in ids
        theirs = f"/v1/terminals?merchant={world.theirs.merchant}"
        assert listed(gateway, "bank_b", theirs, "id") == set()
        assert listed(gateway, "operator", theirs, "id") == {world.theirs.terminal_id}

    def test_an_offline_upload(self, gateway: Gateway, world: World) -> None:
        refused(gateway, f"/v1/offline-payments/{world.theirs.upload}")
        allowed(gateway, f"/v1/offline-payments/{world.mine.upload}")

    def test_a_preauthorisation(self, gateway: Gateway, world: World) -> None:
        refused(gateway, f"/v1/devices/preauths/{world.theirs.preauth}")
        allowed(gateway, f"/v1/devices/preauths/{world.mine.preauth}")

    def test_programmes(self, gateway: Gateway, world: World) -> None:
        refused(gateway, f"/v1/devices/programmes/{world.theirs.device_programme}")
        allowed(gateway, f"/v1/devices/programmes/{world.mine.device_programme}")
        refused(gateway, f"/v1/purse-programmes/{world.theirs.purse_programme}")
        allowed(gateway, f"/v1/purse-programmes/{world.mine.purse_programme}")

    def test_an_access_point_and_its_log(self, gateway: Gateway, world: World) -> None:
        body = refused(gateway, f"/v1/access-points/{world.theirs.point}", ("operator",))  # its reader
        assert world.theirs.point in body["detail"]
        r = allowed(gateway, f"/v1/access-points/{world.mine.point}", ("operator",))
        assert [g["holder"] for g in r.json()["grants"]] == [world.mine.holder]
        refused(gateway, f"/v1/access-points/{world.theirs.point}/decisions")
        allowed(gateway, f"/v1/access-points/{world.mine.point}/decisions")


class TestWrites:
    def test_issuing_a_card_to_another_institutions_customer(self, gateway: Gateway, world: World) -> None:
        card = HardWallet.issue(gateway.ctx.hardwallet.domain)
        body = {"card": card.address, "holder": world.theirs.holder, "form": "card"}
        assert_problem(gateway.post("bank_b", "/v1/cards", body), 403, SCOPE)
        assert gateway.get("operator", f"/v1/cards/{card.address}").status_code != 200  # not issued
        mine, _ = _card(gateway, "bank_b", world.mine.holder)  # its own customer: 201
        assert gateway.get("bank_b", f"/v1/cards/{mine.address}").json()["status"] == "active"

    def test_reporting_another_institutions_card_lost(self, gateway: Gateway, world: World) -> None:
        card, _ = _card(gateway, "operator", world.theirs.holder)
        assert_problem(gateway.post("bank_b", f"/v1/cards/{card.address}/report-lost"), 403, SCOPE)
        assert gateway.get("operator", f"/v1/cards/{card.address}").json()["status"] == "active"
        mine, _ = _card(gateway, "bank_b", world.mine.holder)
        r = gateway.post("bank_b", f"/v1/cards/{mine.address}/report-lost")
        assert r.status_code == 200, r.text
        assert gateway.get("bank_b", f"/v1/cards/{mine.address}").json()["status"] == "lost"

    def test_revoking_another_institutions_terminal(self, gateway: Gateway, world: World) -> None:
        theirs = _created(
            gateway.post(
                "operator", "/v1/terminals", {"merchant": world.theirs.merchant, "location": "spare"}
            )
        )
        assert_problem(gateway.post("bank_b", f"/v1/terminals/{theirs['id']}/revoke"), 403, SCOPE)
        assert gateway.get("operator", f"/v1/terminals/{theirs['id']}").json()["revoked"] is False
        mine = _created(
            gateway.post("bank_b", "/v1/terminals", {"merchant": world.mine.merchant, "location": "spare"})
        )
        r = gateway.post("bank_b", f"/v1/terminals/{mine['id']}/revoke")
        assert r.status_code == 200 and r.json()["revoked"] is True, r.text

    def test_releasing_another_institutions_hold(self, gateway: Gateway, world: World) -> None:
        theirs = _preauth(gateway, world.theirs)
        before = gateway.ctx.cash.balance_of(world.theirs.holder)
        assert_problem(gateway.post("bank_b", f"/v1/devices/preauths/{theirs}/release"), 403, SCOPE)
        assert gateway.get("operator", f"/v1/devices/preauths/{theirs}").json()["status"] == "open"
        assert gateway.ctx.cash.balance_of(world.theirs.holder) == before
        mine = _preauth(gateway, world.mine)
        r = gateway.post("bank_b", f"/v1/devices/preauths/{mine}/release")
        assert r.status_code == 200 and r.json()["status"] == "released", r.text

    def test_granting_at_another_institutions_access_point(self, gateway: Gateway, world: World) -> None:
        path = f"/v1/access-points/{world.theirs.point}"
        before = gateway.get("operator", path).json()["grants"]
        assert_problem(gateway.post("bank_b", f"{path}/grants", {"holder": world.mine.holder}), 403, SCOPE)
        assert_problem(gateway.post("bank_b", f"{path}/grants", {"form": "sim"}), 403, SCOPE)
        grant = before[0]["id"]
        r = gateway.clients["bank_b"].delete(f"{path}/grants/{grant}")
        assert_problem(r, 403, SCOPE)
        assert gateway.get("operator", path).json()["grants"] == before
        r = gateway.post("bank_b", f"/v1/access-points/{world.mine.point}/grants", {"form": "sim"})
        assert r.status_code == 201 and {g["form"] for g in r.json()["grants"]} == {None, "sim"}, r.text

    def test_a_device_programme_of_another_institutions_sponsor(self, gateway: Gateway, world: World) -> None:
        body = {"sponsor": world.theirs.org, "merchant": world.mine.merchant, "daily_cap_fen": 5_00}
        r = gateway.post("bank_b", "/v1/devices/programmes", body)
        assert world.theirs.org in assert_problem(r, 403, SCOPE)["detail"]
        before = gateway.get("operator", f"/v1/devices/programmes/{world.theirs.device_programme}").json()
        r = gateway.post("bank_b", f"/v1/devices/programmes/{world.theirs.device_programme}/close")
        assert_problem(r, 403, SCOPE)
        r = gateway.post(
            "bank_b", f"/v1/devices/programmes/{world.theirs.device_programme}/fund", {"amount_fen": 1}
        )
        assert_problem(r, 403, SCOPE)
        after = gateway.get("operator", f"/v1/devices/programmes/{world.theirs.device_programme}").json()
        assert after == before and after["closed"] is False
        body = {**body, "sponsor": world.mine.org}
        assert gateway.post("bank_b", "/v1/devices/programmes", body).status_code == 201

    def test_a_purse_programme_of_another_institutions_funder(self, gateway: Gateway, world: World) -> None:
        pid = uuid.uuid4().int % 2**31 + 1
        body = {
            "programme": pid,
            "funder": world.theirs.org,
            "per_card_cap_fen": 50_00,
            "expires_at": gateway.now() + 30 * DAY,
            "categories": [CARE_MCC],
        }
        assert_problem(gateway.post("bank_b", "/v1/purse-programmes", body), 403, SCOPE)
        assert gateway.get("operator", f"/v1/purse-programmes/{pid}").status_code == 404
        r = gateway.post("bank_b", "/v1/purse-programmes", {**body, "funder": world.mine.org})
        assert r.status_code == 201, r.text

    def test_refunding_another_institutions_card_payment(self, gateway: Gateway, world: World) -> None:
        """A refund is signed by the merchant's custodial key: the custodial signatures' own check
        (services/common/operations.py) refuses institution #2's key on institution #1's merchant."""
        theirs = world.theirs
        before = gateway.ctx.cash.balance_of(theirs.merchant)
        path = f"/v1/card-payments/{theirs.card.address}/{theirs.paid_counter}/refunds"
        assert_problem(gateway.post("bank_b", path, {"amount_fen": 50}), 403, SCOPE)
        assert gateway.ctx.cash.balance_of(theirs.merchant) == before
        mine = world.mine
        path = f"/v1/card-payments/{mine.card.address}/{mine.paid_counter}/refunds"
        r = gateway.post("bank_b", path, {"amount_fen": 50})
        assert r.status_code == 201, r.text

    def test_custodial_signatures_for_another_institutions_customer(
        self, gateway: Gateway, world: World
    ) -> None:
        """Loads, mandates and purse funding are signed with a customer's custodial key: the
        custodial signatures' check refuses institution #2's key for institution #1's customer."""
        theirs, mine = world.theirs, world.mine
        balance = gateway.ctx.cash.balance_of(theirs.holder)
        r = gateway.post("bank_b", f"/v1/cards/{theirs.card.address}/loads", {"amount_fen": 1_00})
        assert_problem(r, 403, SCOPE)
        body = {
            "holder": theirs.holder,
            "merchant": mine.merchant,
            "per_payment_cap_fen": 1_00,
            "daily_cap_fen": 1_00,
            "expires_at": gateway.now() + DAY,
        }
        assert_problem(gateway.post("bank_b", "/v1/mandates", body), 403, SCOPE)
        r = gateway.post(
            "bank_b", f"/v1/mandates/{theirs.mandate}/pulls", {"amount_fen": 1_00, "reference": "x"}
        )
        assert_problem(r, 403, SCOPE)
        assert_problem(gateway.post("bank_b", f"/v1/mandates/{theirs.mandate}/revoke"), 403, SCOPE)
        assert gateway.get("operator", f"/v1/mandates/{theirs.mandate}").json()["revoked"] is False
        r = gateway.post(
            "bank_b",
            f"/v1/cards/{mine.card.address}/purses",
            {"programme": theirs.purse_programme, "amount_fen": 1_00},
        )
        assert_problem(r, 403, SCOPE)
        assert gateway.ctx.cash.balance_of(theirs.holder) == balance
        r = gateway.post("bank_b", f"/v1/mandates/{mine.mandate}/revoke")
        assert (
            r.status_code == 200 and gateway.get("bank_b", f"/v1/mandates/{mine.mandate}").json()["revoked"]
        )
