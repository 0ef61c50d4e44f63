"""Find what you created (issue 21): every listing of the operator API pages by an opaque cursor in
a stable order by id, filters, and shows a key only what its single reads would; every create
names what it created at the top level of its answer."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.services.conftest import Api
from tests.services.test_collective_api import Village, create, propose, village  # noqa: F401
from tests.services.test_operator_api import assert_problem


def walk(
    client: httpx.Client, path: str, id_field: str, limit: int = 2, **params: Any
) -> list[dict[str, Any]]:
    """Every item of a listing, page by page: no item twice, ids ascending, every page within limit."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        q = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = client.get(path, params=q)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["limit"] == limit and len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [i[id_field] for i in items]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), ids
    return items


def _in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def test_wallets_page_filter_and_are_found_by_identity(api: Api) -> None:
    tag = uuid.uuid4().hex[:8]
    made = {}
    for i, kind in enumerate(("personal", "personal", "merchant", "personal", "institution")):
        body: dict[str, Any] = {
            "kind": kind,
            "tier": 2 if kind != "personal" else 3,
            "display_name": f"Listed {tag} №{i}",
            "identity": f"list-{tag}-{i}",
        }
        if kind == "merchant":
            body["merchant_category"] = 5411
        r = api.post("operator", "/v1/wallets", body)
        assert r.status_code == 201, r.text
        # the new wallet's address at the top level, and where it always was
        assert r.json()["address"] == r.json()["request"]["address"]
        made[i] = r.json()["address"]
    everyone = walk(api.operator, "/v1/wallets", "address", limit=3)
    assert set(made.values()) <= {w["address"] for w in everyone}
    mine = walk(api.auditor, "/v1/wallets", "address", name=f"listed {tag}")  # any case, a part
    assert sorted(w["address"] for w in mine) == sorted(made.values())
    personal = walk(api.regulator, "/v1/wallets", "address", name=tag, kind="personal", tier=3)
    assert sorted(w["address"] for w in personal) == sorted(made[i] for i in (0, 1, 3))
    # lookup by identity: hashed as at registration, never stored
    (found,) = walk(api.operator, "/v1/wallets", "address", identity=f"list-{tag}-2")
    assert found["address"] == made[2] and found["kind"] == "merchant" and found["merchant_category"] == 5411
    assert walk(api.operator, "/v1/wallets", "address", identity=f"list-{tag}-nobody") == []
    # frozen is the chain's state now
    assert api.post("regulator", "/v1/regulator/freeze", {"address": made[1]}).status_code == 200
    frozen = walk(api.operator, "/v1/wallets", "address", name=tag, frozen="true")
    assert [w["address"] for w in frozen] == [made[1]] and frozen[0]["frozen"] is True
    thawed = walk(api.operator, "/v1/wallets", "address", name=tag, frozen="false")
    assert made[1] not in {w["address"] for w in thawed} and len(thawed) == 4
    # a name with LIKE's wildcards matches them literally
    assert walk(api.operator, "/v1/wallets", "address", name="%") == []


def test_a_bound_key_lists_only_its_own_wallet(api: Api) -> None:
    listed = walk(api.merchant, "/v1/wallets", "address")
    me = api.merchant.get("/v1/wallets", params={"limit": 1}).json()["items"]
    assert len(listed) == 1 and listed == me
    assert api.merchant.get(f"/v1/wallets/{listed[0]['address']}").status_code == 200
    assert walk(api.merchant, "/v1/wallets", "address", kind="personal") == []


@pytest.mark.parametrize(
    ("path", "params", "slug"),
    [
        ("/v1/wallets", {"cursor": "not a cursor"}, "invalid-cursor"),
        (
            "/v1/wallets",
            {"cursor": base64.urlsafe_b64encode(b'{"l":"wallets","a":7}').decode()},
            "invalid-cursor",
        ),
        ("/v1/wallets", {"cursor": base64.urlsafe_b64encode(b"[1,2]").decode()}, "invalid-cursor"),
        (
            "/v1/operations",
            {"cursor": base64.urlsafe_b64encode(b'{"l":"wallets","a":"0x"}').decode()},
            "invalid-cursor",
        ),
        ("/v1/wallets", {"limit": 0}, "invalid-request"),
        ("/v1/wallets", {"limit": 201}, "invalid-request"),
        ("/v1/wallets", {"kind": "robot"}, "invalid-request"),
        ("/v1/wallets", {"frozen": "perhaps"}, "invalid-request"),
        ("/v1/disbursements", {"status": "lost"}, "invalid-request"),
        ("/v1/disbursements", {"payer": "0x1234"}, "invalid-request"),
        ("/v1/payment-codes", {"status": "sleeping"}, "invalid-request"),
        ("/v1/operations", {"status": "done"}, "invalid-request"),
        ("/v1/voucher-programs", {"status": "asleep"}, "invalid-request"),
        ("/v1/prepaid/packages", {"consumer": "nobody"}, "invalid-request"),
        ("/v1/collectives", {"frozen": "2"}, "invalid-request"),
    ],
)
def test_bad_filters_and_cursors_are_422_problems(
    api: Api, path: str, params: dict[str, Any], slug: str
) -> None:
    assert_problem(api.operator.get(path, params=params), 422, slug)


def test_a_cursor_of_one_listing_is_refused_by_another(api: Api) -> None:
    page = api.operator.get("/v1/wallets", params={"limit": 1}).json()
    assert page["next_cursor"] is not None
    assert_problem(
        api.operator.get("/v1/operations", params={"cursor": page["next_cursor"]}), 422, "invalid-cursor"
    )
    doc = json.loads(base64.urlsafe_b64decode(page["next_cursor"] + "=="))
    assert doc["l"] == "wallets"


def test_api_keys_page_and_filter_by_wallet(api: Api) -> None:
    keys = walk(api.admin, "/v1/api-keys", "id", limit=2)
    assert {"admin", "operator", "merchant"} <= {k["role"] for k in keys}
    merchant = next(k for k in keys if k["role"] == "merchant")
    (only,) = walk(api.admin, "/v1/api-keys", "id", wallet=merchant["wallet"])
    assert only["id"] == merchant["id"] and "key" not in only
    assert_problem(api.operator.get("/v1/api-keys"), 403, "forbidden-role")


def test_operations_page_filter_and_stay_the_keys_own(api: Api) -> None:
    idem = f"find-me-{uuid.uuid4()}"
    body = {"kind": "personal", "tier": 3, "display_name": "by key", "identity": f"k-{uuid.uuid4()}"}
    op = api.post("operator", "/v1/wallets", body, key=idem).json()
    (found,) = walk(api.operator, "/v1/operations", "id", key=idem)
    assert found["id"] == op["id"] and found["status"] == "confirmed"
    registered = walk(
        api.auditor, "/v1/operations", "id", limit=50, kind="wallet.register", status="confirmed"
    )
    assert op["id"] in {o["id"] for o in registered}
    assert all(o["kind"] == "wallet.register" for o in registered)
    # a merchant key sees its own requests only: none of the operator's
    assert walk(api.merchant, "/v1/operations", "id", key=idem) == []
    assert walk(api.merchant, "/v1/operations", "id", kind="wallet.register") == []


def _batch(api: Api, payer: str, worker: str, ref: str, purpose: str = "salary") -> None:
    ends = datetime.fromtimestamp(api.w3.eth.get_block("latest")["timestamp"] + 30 * 86_400, UTC)
    body = {
        "reference": ref,
        "payer": payer,
        "purpose": purpose,
        "ends_at": ends.isoformat(),
        "unit": "fen",
        "rows": [{"recipient": worker, "amount": 100}],
    }
    r = api.post("operator", "/v1/disbursements", body)
    assert r.status_code == 201, r.text


def test_batches_page_filter_and_a_checker_sees_its_payers_only(api: Api) -> None:
    tag = uuid.uuid4().hex[:6]
    payers = [api.new_wallet(kind="institution", tier=1, name=f"payer {i}") for i in range(2)]
    worker = api.new_wallet(tier=2, name="worker")
    refs = [f"list-{tag}-{i}" for i in range(3)]
    _batch(api, payers[0], worker, refs[0])
    _batch(api, payers[0], worker, refs[1], purpose="bonus")
    _batch(api, payers[1], worker, refs[2])
    first = walk(api.operator, "/v1/disbursements", "reference", payer=payers[0])
    assert [b["reference"] for b in first] == refs[:2] and first[0]["status"] == "ready"
    bonus = walk(api.auditor, "/v1/disbursements", "reference", payer=payers[0], purpose="bonus")
    assert [b["reference"] for b in bonus] == [refs[1]]
    ready = walk(api.regulator, "/v1/disbursements", "reference", limit=5, status="ready")
    assert set(refs) <= {b["reference"] for b in ready}
    # the checker key is an officer of payer 1 only: it lists that payer's batches alone
    checker_wallet = (
        api.clients["checker"].get("/v1/wallets", params={"limit": 1}).json()["items"][0]["address"]
    )
    role = {"account": checker_wallet, "role": "checker"}
    r = api.post("operator", f"/v1/disbursements/payers/{payers[1]}/officers", role)
    assert r.status_code == 200, r.text
    seen = walk(api.checker, "/v1/disbursements", "reference", limit=3)
    assert refs[2] in {b["reference"] for b in seen}
    assert not {refs[0], refs[1]} & {b["reference"] for b in seen}
    assert walk(api.checker, "/v1/disbursements", "reference", payer=payers[0]) == []
    assert_problem(api.merchant.get("/v1/disbursements"), 403, "forbidden-role")


def test_payment_codes_page_filter_and_a_merchant_key_sees_its_own(api: Api) -> None:
    mine = api.merchant.get("/v1/wallets", params={"limit": 1}).json()["items"][0]["address"]
    other = api.new_wallet(kind="merchant", tier=2, category=5812, name="other stall")
    ref = f"bill-{uuid.uuid4().hex[:8]}"
    codes = []
    for merchant, body in ((mine, {}), (mine, {"amount_fen": 500, "reference": ref}), (other, {})):
        r = api.operator.post("/v1/payment-codes", json={"merchant": merchant, **body})
        assert r.status_code == 201, r.text
        codes.append(r.json()["id"])
    by_ref = walk(api.auditor, "/v1/payment-codes", "id", reference=ref)
    assert [c["id"] for c in by_ref] == [codes[1]] and by_ref[0]["status"] == "active"
    theirs = walk(api.operator, "/v1/payment-codes", "id", merchant=other)
    assert [c["id"] for c in theirs] == [codes[2]]
    assert codes[1] in {
        c["id"] for c in walk(api.operator, "/v1/payment-codes", "id", limit=20, status="active")
    }
    assert walk(api.operator, "/v1/payment-codes", "id", reference=ref, status="paid") == []
    own = walk(api.merchant, "/v1/payment-codes", "id")
    assert {codes[0], codes[1]} <= {c["id"] for c in own} and all(c["merchant"] == mine for c in own)
    assert_problem(
        api.merchant.get("/v1/payment-codes", params={"merchant": other}), 403, "not-your-merchant"
    )
    assert_problem(api.checker.get("/v1/payment-codes"), 403, "forbidden-role")


def test_programmes_are_listed_with_their_names_as_text(api: Api) -> None:
    issuer = api.new_wallet(kind="institution", tier=1, name="commerce office")
    assert api.post("operator", "/v1/issuance", {"to": issuer, "amount_fen": 1_000_000}).status_code == 200
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    name = f"春季消费券 {uuid.uuid4().hex[:4]}"
    body = {
        "issuer": issuer,
        "name": name,
        "mode": "grant-list",
        "budget_fen": 100_000,
        "per_person_cap_fen": 1_000,
        "starts_at": datetime.fromtimestamp(now - 60, UTC).isoformat(),
        "expires_at": datetime.fromtimestamp(now + 30 * 86_400, UTC).isoformat(),
        "categories": [5411],
    }
    r = api.post("operator", "/v1/voucher-programs", body)
    assert r.status_code == 201, r.text
    created = r.json()
    (event,) = [e for e in created["result"]["events"] if e["name"] == "ProgrammeCreated"]
    assert created["programme_id"] == int(event["args"]["id"]) and created["name"] == name
    (listed,) = walk(api.regulator, "/v1/voucher-programs", "id", issuer=issuer)
    assert listed["id"] == created["programme_id"] and listed["name"] == name and listed["status"] == "open"
    assert listed["budget_fen"] == 100_000
    assert [p["id"] for p in walk(api.auditor, "/v1/voucher-programs", "id", name=name[-4:])] == [
        listed["id"]
    ]
    assert walk(api.operator, "/v1/voucher-programs", "id", issuer=issuer, status="closed") == []
    assert_problem(api.merchant.get("/v1/voucher-programs"), 403, "forbidden-role")


def test_packages_are_listed_and_a_merchant_key_sees_its_own(api: Api) -> None:
    mine = api.merchant.get("/v1/wallets", params={"limit": 1}).json()["items"][0]["address"]
    other = api.new_wallet(kind="merchant", tier=2, category=7997, name="gym")
    for shop in (mine, other):
        r = api.post("regulator", "/v1/prepaid/merchants", {"merchant": shop, "supervised_bps": 5_000})
        assert r.status_code in (200, 409), r.text
    consumer = api.new_wallet(tier=3, name="consumer")
    assert api.post("operator", "/v1/issuance", {"to": consumer, "amount_fen": 100_000}).status_code == 200
    ids = []
    for shop in (mine, other):
        body = {
            "consumer": consumer,
            "merchant": shop,
            "sessions": 2,
            "unit_price_fen": 1_000,
            "expires_at": _in_days(30),
        }
        r = api.post("operator", "/v1/prepaid/packages", body)
        assert r.status_code == 201, r.text
        assert r.json()["package_id"] is not None
        ids.append(r.json()["package_id"])
    listed = walk(api.operator, "/v1/prepaid/packages", "id", consumer=consumer)
    assert [p["id"] for p in listed] == ids and listed[0]["status"] == "open"
    assert [
        p["id"] for p in walk(api.auditor, "/v1/prepaid/packages", "id", consumer=consumer, merchant=other)
    ] == [ids[1]]
    assert walk(api.operator, "/v1/prepaid/packages", "id", consumer=consumer, status="refunded") == []
    own = walk(api.merchant, "/v1/prepaid/packages", "id", consumer=consumer)
    assert [p["id"] for p in own] == [ids[0]]
    r = api.merchant.get("/v1/prepaid/packages", params={"merchant": other})
    assert_problem(r, 403, "not-your-package")


def test_one_merchants_package_is_found_by_the_database_among_many_others(api: Api) -> None:
    """The merchant and consumer filters are the database's: a merchant's one package after 11 of
    another merchant's comes back on the first page of 1 (filtered in Python, the listing looked at
    10 events a page and answered an empty page with a cursor)."""
    crowded = api.new_wallet(kind="merchant", tier=2, category=7997, name="busy gym")
    quiet = api.new_wallet(kind="merchant", tier=2, category=7997, name="quiet gym")
    for shop in (crowded, quiet):
        r = api.post("regulator", "/v1/prepaid/merchants", {"merchant": shop, "supervised_bps": 5_000})
        assert r.status_code == 200, r.text
    consumer = api.new_wallet(tier=3, name="regular")
    assert api.post("operator", "/v1/issuance", {"to": consumer, "amount_fen": 100_000}).status_code == 200
    ids = []
    for shop in [crowded] * 11 + [quiet]:
        body = {
            "consumer": consumer,
            "merchant": shop,
            "sessions": 1,
            "unit_price_fen": 100,
            "expires_at": _in_days(30),
        }
        r = api.post("operator", "/v1/prepaid/packages", body)
        assert r.status_code == 201, r.text
        ids.append(r.json()["package_id"])
    r = api.auditor.get("/v1/prepaid/packages", params={"merchant": quiet, "limit": 1})
    assert r.status_code == 200, r.text
    assert [p["id"] for p in r.json()["items"]] == [ids[-1]] and r.json()["next_cursor"] is None
    both = {"merchant": crowded, "consumer": consumer}
    assert [p["id"] for p in walk(api.auditor, "/v1/prepaid/packages", "id", limit=4, **both)] == ids[:-1]
    assert walk(api.auditor, "/v1/prepaid/packages", "id", merchant=quiet, consumer=crowded) == []


def test_collectives_and_proposals_page_and_an_officer_sees_its_own(api: Api, village: Village) -> None:  # noqa: F811
    cids = [create(api, village) for _ in range(2)]
    listed = walk(api.auditor, "/v1/collectives", "id", officer=village.alice)
    assert [c["id"] for c in listed][-2:] == cids and listed[-1]["name"].startswith("Qingshui village")
    assert all(c["frozen"] is False for c in listed)
    assert walk(api.regulator, "/v1/collectives", "id", officer=village.dave) == []
    # an officer key: its own collectives only (dave is an officer of none of these)
    seen = {c["id"] for c in walk(village.keys["dave"], "/v1/collectives", "id", limit=5)}
    assert not seen & set(cids)
    assert set(cids) <= {c["id"] for c in walk(village.keys["alice"], "/v1/collectives", "id", limit=5)}
    # proposals: paged by id; totals count every proposal whatever the page
    pids = [propose(village, cids[0], 100 + i) for i in range(3)]
    proposals: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = api.auditor.get(f"/v1/collectives/{cids[0]}/proposals", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["proposals"]) <= 2 and sum(t["proposals"] for t in page["totals"]) == 3
        proposals += page["proposals"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [p["id"] for p in proposals] == pids
    r = api.auditor.get(f"/v1/collectives/{cids[0]}/proposals", params={"state": "executed"})
    assert r.status_code == 200 and r.json()["proposals"] == []
    assert_problem(
        api.auditor.get(f"/v1/collectives/{cids[0]}/proposals", params={"state": "lost"}),
        422,
        "invalid-request",
    )
    assert_problem(api.merchant.get("/v1/collectives"), 403, "forbidden-role")
