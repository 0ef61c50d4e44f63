"""Two tiers, the reads (issue 24's gap, after red team 8): an operator key bound to institution #2
reads only the records of the customers its institution serves, over HTTP on both databases. Each
scoped route is read by that key for one of institution #1's customers (403 ``institution-scope``,
or a listing without it) and for one of its own (200); the platform's keys (the operator key bound
to no institution, the auditor, the regulator) read both. The route table is in the README's
"Two-tier operation" section."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from chain.accounts import INSTITUTION_DEV_ACCOUNTS, dev_account
from tests.services.conftest import Api
from tests.services.test_operator_api import assert_problem

BANK_B = dev_account(INSTITUTION_DEV_ACCOUNTS[0])
SCOPE = "institution-scope"


@dataclass
class Side:
    """One institution's customers, registered by its own key: a resident, a merchant and an
    institution wallet (a payer, an issuer), the latter two holding cash."""

    client: str  # the role name of the key that registered them in ``api.clients``
    resident: str
    shop: str
    org: str


@dataclass
class World:
    mine: Side  # institution #2's, read by its key
    theirs: Side  # institution #1's
    tag: str


def _wallet(api: Api, role: str, kind: str, name: str, **extra: Any) -> str:
    body = {"kind": kind, "tier": 2 if kind != "institution" else 1, "display_name": name}
    body["identity"] = f"id-{uuid.uuid4()}"
    r = api.post(role, "/v1/wallets", {**body, **extra})
    assert r.status_code == 201, r.text
    return str(r.json()["request"]["address"])


def _side(api: Api, role: str, tag: str) -> Side:
    resident = _wallet(api, role, "personal", f"resident {tag} {role}")
    shop = _wallet(api, role, "merchant", f"shop {tag} {role}", merchant_category=7997)
    org = _wallet(api, role, "institution", f"office {tag} {role}")
    for wallet, fen in ((resident, 5_000_00), (org, 50_000_00)):
        r = api.post(role, "/v1/issuance", {"to": wallet, "amount_fen": fen})
        assert r.status_code == 200, r.text
    return Side(role, resident, shop, org)


@pytest.fixture(scope="module")
def world(api: Api) -> World:
    """Institution #2 with a reserve and an operator key bound to it (``bank_b``), and each
    institution's customers registered by its own key."""
    ctx = api.app.state.ctx
    r = api.post("regulator", "/v1/institutions", {"signer": BANK_B.address, "name": "abc-xiangcheng"})
    assert r.status_code == 201, r.text
    r = api.post("regulator", "/v1/institutions/2/reserve/allocations", {"amount_fen": 1_000_000_00})
    assert r.status_code == 200, r.text
    r = api.admin.post("/v1/api-keys", json={"role": "operator", "label": "bank b", "institution": 2})
    assert r.status_code == 201, r.text
    api.clients["bank_b"] = httpx.Client(base_url=api.url, headers={"X-API-Key": r.json()["key"]}, timeout=60)
    tag = uuid.uuid4().hex[:6]
    world = World(mine=_side(api, "bank_b", tag), theirs=_side(api, "operator", tag), tag=tag)
    for wallet in (world.mine.resident, world.mine.shop, world.mine.org):
        assert ctx.institutions.served_by(wallet) == 2
    for wallet in (world.theirs.resident, world.theirs.shop, world.theirs.org):
        assert ctx.institutions.served_by(wallet) == 1
    return world


def refused(api: Api, path: str) -> dict[str, Any]:
    """Institution #2's key is refused ``path`` (403 ``institution-scope``); the platform's keys
    (the unbound operator key, the auditor, the regulator) read it. The problem document."""
    body = assert_problem(api.bank_b.get(path), 403, SCOPE)
    for role in ("operator", "auditor", "regulator"):
        r = api.clients[role].get(path)
        assert r.status_code == 200, (role, path, r.text)
    return body


def allowed(api: Api, path: str) -> httpx.Response:
    """Institution #2's key reads ``path`` (200), and so do the platform's keys."""
    r = api.bank_b.get(path)
    assert r.status_code == 200, (path, r.text)
    for role in ("operator", "auditor", "regulator"):
        assert api.clients[role].get(path).status_code == 200, (role, path)
    return r


def listed(api: Api, role: str, path: str, field: str) -> set[Any]:
    r = api.clients[role].get(path)
    assert r.status_code == 200, (role, path, r.text)
    return {item[field] for item in r.json()["items"]}


class TestWallets:
    def test_a_wallets_record_balance_and_limits(self, api: Api, world: World) -> None:
        body = refused(api, f"/v1/wallets/{world.theirs.resident}")
        assert world.theirs.resident in body["detail"] and "institution 1" in body["detail"]
        r = allowed(api, f"/v1/wallets/{world.mine.resident}")
        assert r.json()["balance_fen"] == 5_000_00

    def test_the_listing_shows_only_its_institutions_wallets(self, api: Api, world: World) -> None:
        path = f"/v1/wallets?name={world.tag}"
        mine = {world.mine.resident, world.mine.shop, world.mine.org}
        theirs = {world.theirs.resident, world.theirs.shop, world.theirs.org}
        assert listed(api, "bank_b", path, "address") == mine
        assert listed(api, "operator", path, "address") == mine | theirs
        assert listed(api, "auditor", path, "address") == mine | theirs
        # a page is filled with its own wallets, whatever lies between them
        first = api.bank_b.get(f"{path}&limit=1").json()
        assert len(first["items"]) == 1 and first["next_cursor"]


class TestRegulatorRecords:
    def test_holds_on_a_wallet_and_one_hold(self, api: Api, world: World) -> None:
        holds = {}
        for side in (world.mine, world.theirs):
            body = {"wallet": side.resident, "amount_fen": 1_00, "reason": "inquiry", "case_number": "c-1"}
            r = api.post("regulator", "/v1/regulator/holds", body)
            assert r.status_code == 201, r.text
            holds[side.client] = r.json()["hold_id"]
        refused(api, f"/v1/regulator/holds?wallet={world.theirs.resident}")
        refused(api, f"/v1/regulator/holds/{holds['operator']}")
        assert allowed(api, f"/v1/regulator/holds?wallet={world.mine.resident}").json()["holds"]
        assert allowed(api, f"/v1/regulator/holds/{holds['bank_b']}").json()["wallet"] == world.mine.resident

    def test_a_court_order_and_a_recovery(self, api: Api, world: World) -> None:
        orders, recoveries = {}, {}
        for side in (world.mine, world.theirs):
            body = {"wallet": side.org, "amount_fen": 1_00, "reason": "judgment", "case_number": "c-2"}
            r = api.post("regulator", "/v1/regulator/holds", body)
            assert r.status_code == 201, r.text
            order = {
                "from": side.org,
                "to": side.shop,
                "amount_fen": 1_00,
                "case_number": "c-2",
                "hold_id": r.json()["hold_id"],
            }
            r = api.post("regulator", "/v1/regulator/court-orders", order)
            assert r.status_code == 201, r.text
            orders[side.client] = r.json()["order_id"]
            lost = _wallet(api, side.client, "personal", f"lost {world.tag}")
            r = api.post(side.client, f"/v1/wallets/{lost}/recovery", {"evidence": "face check, clerk 1"})
            assert r.status_code in (200, 201), r.text
            recoveries[side.client] = r.json()["recovery_id"]
        refused(api, f"/v1/regulator/court-orders/{orders['operator']}")
        allowed(api, f"/v1/regulator/court-orders/{orders['bank_b']}")
        refused(api, f"/v1/regulator/recoveries/{recoveries['operator']}")
        allowed(api, f"/v1/regulator/recoveries/{recoveries['bank_b']}")


class TestOperations:
    def test_one_operation_and_the_listing(self, api: Api, world: World) -> None:
        ops = {}
        for role in ("bank_b", "operator"):
            side = world.mine if role == "bank_b" else world.theirs
            r = api.post(role, "/v1/issuance", {"to": side.resident, "amount_fen": 1})
            assert r.status_code == 200, r.text
            ops[role] = r.json()["id"]
        body = assert_problem(api.bank_b.get(f"/v1/operations/{ops['operator']}"), 403, SCOPE)
        assert ops["operator"] in body["detail"]
        for role in ("operator", "auditor", "regulator"):
            assert api.clients[role].get(f"/v1/operations/{ops['operator']}").status_code == 200
        allowed(api, f"/v1/operations/{ops['bank_b']}")
        seen: set[str] = set()
        cursor = None
        while True:
            page = api.bank_b.get(
                "/v1/operations", params={"limit": 100, **({"cursor": cursor} if cursor else {})}
            )
            assert page.status_code == 200, page.text
            seen |= {op["id"] for op in page.json()["items"]}
            cursor = page.json()["next_cursor"]
            if not cursor:
                break
        assert ops["bank_b"] in seen and ops["operator"] not in seen
        assert api.bank_b.get(f"/v1/operations/{ops['bank_b']}").json()["kind"] == "cash.issue"
        everyone = listed(api, "auditor", "/v1/operations?kind=cash.issue&limit=200", "id")
        assert {ops["bank_b"], ops["operator"]} <= everyone


class TestDashboard:
    def test_the_dashboard_data_is_the_platforms(self, api: Api, world: World) -> None:
        body = assert_problem(api.bank_b.get("/dashboard/data"), 403, SCOPE)
        assert "institution 2" in body["detail"]
        for role in ("operator", "auditor", "regulator"):
            assert api.clients[role].get("/dashboard/data").status_code == 200, role
        # in Chinese too (the title by slug)
        r = api.bank_b.get("/dashboard/data", headers={"Accept-Language": "zh-CN"})
        assert r.status_code == 403 and r.headers["content-language"] == "zh-CN", r.text


class TestPlatformData:
    def test_institutions_reserves_and_its_own_statement_stay_readable(self, api: Api, world: World) -> None:
        r = api.bank_b.get("/v1/institutions")
        assert r.status_code == 200 and len(r.json()["items"]) >= 2, r.text
        assert api.bank_b.get("/v1/institutions/2/statement").status_code == 200
        assert_problem(api.bank_b.get("/v1/institutions/1/statement"), 403, SCOPE)
        assert api.bank_b.get("/healthz").status_code == 200


def _in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


class TestFamilies:
    def test_prepaid_packages(self, api: Api, world: World) -> None:
        packages = {}
        for side in (world.mine, world.theirs):
            r = api.post(
                "regulator", "/v1/prepaid/merchants", {"merchant": side.shop, "supervised_bps": 10_000}
            )
            assert r.status_code == 200, r.text
            body = {
                "consumer": side.resident,
                "merchant": side.shop,
                "sessions": 2,
                "unit_price_fen": 10_00,
                "expires_at": _in_days(30),
            }
            r = api.post(side.client, "/v1/prepaid/packages", body)
            assert r.status_code == 201, r.text
            (event,) = [e for e in r.json()["result"]["events"] if e["name"] == "PackagePrepaid"]
            packages[side.client] = int(event["args"]["id"])
        refused(api, f"/v1/prepaid/packages/{packages['operator']}")
        allowed(api, f"/v1/prepaid/packages/{packages['bank_b']}")
        refused(api, f"/v1/prepaid/merchants/{world.theirs.shop}/packages")
        allowed(api, f"/v1/prepaid/merchants/{world.mine.shop}/packages")
        both = set(packages.values())
        assert listed(api, "bank_b", "/v1/prepaid/packages?limit=200", "id") & both == {packages["bank_b"]}
        assert listed(api, "operator", "/v1/prepaid/packages?limit=200", "id") & both == both
        path = f"/v1/prepaid/packages?consumer={world.theirs.resident}"
        assert listed(api, "bank_b", path, "id") == set()
        assert listed(api, "auditor", path, "id") == {packages["operator"]}

    def test_disbursement_batches_and_their_exports(self, api: Api, world: World) -> None:
        refs = {}
        for side in (world.mine, world.theirs):
            ref = f"pay-{side.client.replace('_', '-')}-{world.tag}"
            body = {
                "reference": ref,
                "payer": side.org,
                "purpose": "salary",
                "mode": "explicit",
                "ends_at": _in_days(30),
                "unit": "fen",
                "rows": [{"recipient": side.resident, "amount": 1_00}],
            }
            r = api.post(side.client, "/v1/disbursements", body)
            assert r.status_code in (200, 201, 202), r.text
            refs[side.client] = ref
        for suffix in ("", "/exceptions", "/exceptions?format=csv", "/rows/0"):
            refused(api, f"/v1/disbursements/{refs['operator']}{suffix}")
            allowed(api, f"/v1/disbursements/{refs['bank_b']}{suffix}")
        both = set(refs.values())
        assert listed(api, "bank_b", "/v1/disbursements?limit=200", "reference") & both == {refs["bank_b"]}
        assert listed(api, "regulator", "/v1/disbursements?limit=200", "reference") & both == both

    def test_voucher_programmes_reports_and_holdings(self, api: Api, world: World) -> None:
        programmes = _programme_per_side(api, world, f"vouchers {world.tag}", "grants")
        theirs, mine = programmes["operator"], programmes["bank_b"]
        for path in ("", "?format=csv", f"/holders/{world.theirs.resident}"):
            refused(api, f"/v1/voucher-programs/{theirs}{path}")
        for path in ("", "?format=csv", f"/holders/{world.mine.resident}"):
            allowed(api, f"/v1/voucher-programs/{mine}{path}")
        both = set(programmes.values())
        path = f"/v1/voucher-programs?name={world.tag}"
        assert listed(api, "bank_b", path, "id") == {mine}
        assert listed(api, "auditor", path, "id") == both

    def test_a_voucher_campaigns_tree_and_grants(self, api: Api, world: World) -> None:
        programmes = _programme_per_side(api, world, f"campaign {world.tag}", "campaign")
        for path in ("/campaign/tree", "/campaign/0"):
            refused(api, f"/v1/voucher-programs/{programmes['operator']}{path}")
            allowed(api, f"/v1/voucher-programs/{programmes['bank_b']}{path}")

    def test_collectives_and_their_proposals(self, api: Api, world: World) -> None:
        ids = {}
        for side in (world.mine, world.theirs):
            body = {
                "name": f"village {world.tag} {side.client}",
                "officers": [
                    {"account": side.resident, "role": "committee"},
                    {"account": _wallet(api, side.client, "personal", "b"), "role": "committee"},
                    {"account": _wallet(api, side.client, "personal", "t"), "role": "treasurer"},
                ],
                "tiers": [{"max_amount_fen": 5_000_00, "committee": 2}],
                "proposal_lifetime_s": 30 * 86_400,
                "year": 2025,
                "lines": [{"name": "roads", "budget_fen": 80_000_00}],
            }
            r = api.post("regulator", "/v1/collectives", body)
            assert r.status_code == 201, r.text
            ids[side.client] = int(r.json()["collective_id"])
        for path in ("", "/proposals"):
            refused(api, f"/v1/collectives/{ids['operator']}{path}")
            allowed(api, f"/v1/collectives/{ids['bank_b']}{path}")
        path = f"/v1/collectives?name={world.tag}"
        assert listed(api, "bank_b", path, "id") == {ids["bank_b"]}
        assert listed(api, "regulator", path, "id") == set(ids.values())

    def test_payment_codes(self, api: Api, world: World) -> None:
        codes = {}
        for side in (world.mine, world.theirs):
            r = api.post(side.client, "/v1/payment-codes", {"merchant": side.shop, "amount_fen": 1_00})
            assert r.status_code == 201, r.text
            codes[side.client] = r.json()["id"]
        for suffix in ("", ".svg", ".png"):
            refused(api, f"/v1/payment-codes/{codes['operator']}{suffix}")
            allowed(api, f"/v1/payment-codes/{codes['bank_b']}{suffix}")
        both = set(codes.values())
        assert listed(api, "bank_b", "/v1/payment-codes?limit=200", "id") & both == {codes["bank_b"]}
        assert listed(api, "operator", "/v1/payment-codes?limit=200", "id") & both == both
        assert listed(api, "bank_b", f"/v1/payment-codes?merchant={world.theirs.shop}", "id") == set()

    def test_billers_accounts_and_settlement_files(self, api: Api, world: World) -> None:
        billers = {}
        for side in (world.mine, world.theirs):
            wallet = _wallet(api, side.client, "merchant", "water", merchant_category=4900)
            biller = f"water-{side.client.replace('_', '-')}-{world.tag}"
            body = {
                "id": biller,
                "name": "water",
                "kind": "water",
                "wallet": wallet,
                "account_pattern": r"XCW\d{8}",
                "mandate_cap_fen": 300_00,
                "debit_day": 1,
            }
            r = api.clients[side.client].post("/v1/billers", json=body)
            assert r.status_code == 201, r.text
            billers[side.client] = biller
        day = datetime.now(UTC).date().isoformat()
        for side in ("operator", "bank_b"):
            check = refused if side == "operator" else allowed
            check(api, f"/v1/billers/{billers[side]}/accounts/XCW00000001/bills")
            check(api, f"/v1/billers/{billers[side]}/settlements/{day}.csv")
            # the biller's profile is directory data: any institution's key reads it
            allowed(api, f"/v1/billers/{billers[side]}")


class TestWebhooks:
    def test_an_institutions_endpoint_is_sent_only_its_customers_events(self, api: Api, world: World) -> None:
        """The push side of the same rule: an endpoint registered by institution #2's key is queued
        the events naming one of its customers only (its deliveries, payloads included, are what
        ``GET /v1/webhooks/{id}/deliveries`` answers); the platform's endpoint gets both."""
        endpoints = {}
        for role in ("bank_b", "operator"):
            r = api.clients[role].post(
                "/v1/webhooks", json={"url": "http://127.0.0.1:38999/hook", "events": ["payment_code.paid"]}
            )
            assert r.status_code == 201, r.text
            endpoints[role] = r.json()["id"]
        paid = {}
        for side in (world.mine, world.theirs):
            r = api.post(side.client, "/v1/payment-codes", {"merchant": side.shop, "amount_fen": 2_00})
            assert r.status_code == 201, r.text
            code = r.json()["id"]
            r = api.post(
                side.client, f"/v1/payment-codes/{code}/pay", {"form": "custodial", "payer": side.resident}
            )
            assert r.status_code in (200, 201), r.text
            paid[side.client] = code

        def codes(role: str) -> set[str]:
            r = api.clients[role].get(f"/v1/webhooks/{endpoints[role]}/deliveries")
            assert r.status_code == 200, r.text
            return {d["payload"]["code_id"] for d in r.json()["items"]}

        assert codes("bank_b") == {paid["bank_b"]}
        assert codes("operator") == {paid["bank_b"], paid["operator"]}


def _programme_per_side(api: Api, world: World, name: str, grant: str) -> dict[str, int]:
    """A voucher programme ``name`` of each side's issuer, granting 1 yuan to the side's resident
    by ``grant`` (``grants``: a list, ``campaign``: a Merkle campaign); the ids by side's client."""
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    programmes = {}
    for side in (world.mine, world.theirs):
        body = {
            "issuer": side.org,
            "name": name,
            "mode": "grant-list",
            "budget_fen": 10_00,
            "per_person_cap_fen": 5_00,
            "starts_at": datetime.fromtimestamp(now - 60, UTC).isoformat(),
            "expires_at": datetime.fromtimestamp(now + 30 * 86_400, UTC).isoformat(),
            "categories": [7997],
        }
        r = api.post(side.client, "/v1/voucher-programs", body)
        assert r.status_code == 201, r.text
        (event,) = [e for e in r.json()["result"]["events"] if e["name"] == "ProgrammeCreated"]
        programmes[side.client] = pid = int(event["args"]["id"])
        rows = {"unit": "fen", "rows": [{"recipient": side.resident, "amount": 1_00}]}
        r = api.post(side.client, f"/v1/voucher-programs/{pid}/{grant}", rows)
        assert r.status_code in ((200, 201) if grant == "grants" else (201,)), r.text
    return programmes
