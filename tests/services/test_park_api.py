"""The closed-loop park over HTTP (黄桥未来工场, issue 23), on both databases: a park set up from
one declarative file (idempotent, 422 naming the bad field), payroll to its staff through the
disburse family, lunch at the canteen and a shop through payment codes, a purchase outside the
park, a fee paid to the park; the report's totals checked against the chain's balances."""

from __future__ import annotations

import copy
import time
import uuid

import httpx
import pytest
from eth_account import Account

from tests.services.conftest import Api
from tests.services.test_disbursement_api import Payroll, approve, create, execute_and_wait
from tests.services.test_payment_codes_api import balance, client_for


def problem_type(r: httpx.Response) -> str:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    return str(r.json()["type"]).removeprefix("urn:xcpay:problem:")


def _staff(api: Api, tag: str, n: int, prefix: str) -> list[str]:
    out = []
    for i in range(n):
        body = {
            "kind": "personal",
            "tier": 2,
            "display_name": f"{prefix} {i}",
            "identity": f"{prefix}-{i}-{tag}",
        }
        r = api.post("operator", "/v1/wallets", body)
        assert r.status_code == 201, r.text
        out.append(r.json()["request"]["address"])
    return out


def _employer(api: Api) -> tuple[str, httpx.Client]:
    employer = api.new_wallet(kind="institution", tier=1, name="tenant company")
    assert (
        api.post("operator", "/v1/issuance", {"to": employer, "amount_fen": 1_000_000_00}).status_code == 200
    )
    checker_wallet = api.new_wallet(tier=2, name="tenant finance officer")
    checker = client_for(api, "checker", checker_wallet)
    r = api.post(
        "operator",
        f"/v1/disbursements/payers/{employer}/officers",
        {"account": checker_wallet, "role": "checker"},
    )
    assert r.status_code == 200, r.text
    return employer, checker


@pytest.fixture(scope="module")
def park(api: Api) -> dict:
    tag = uuid.uuid4().hex[:6]
    (a_payer, a_checker), (b_payer, b_checker) = _employer(api), _employer(api)
    canteen = api.new_wallet(kind="merchant", tier=2, category=5812, name="园区食堂")
    shop = api.new_wallet(kind="merchant", tier=2, category=5411, name="园区便利店")
    fees = api.new_wallet(kind="merchant", tier=2, category=6513, name="园区物业")
    a_staff, b_staff = _staff(api, tag, 2, "acme"), _staff(api, tag, 1, "bolt")
    union = api.new_wallet(kind="institution", tier=1, name="park trade union")
    assert api.post("operator", "/v1/issuance", {"to": union, "amount_fen": 1_000_00}).status_code == 200
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    spec = {
        "id": f"hq-{tag}",
        "name": "黄桥未来工场",
        "area": "黄桥街道",
        "fee_wallet": fees,
        "tenants": [
            {"id": "acme", "name": "Acme 精密", "payer": a_payer, "staff": a_staff},
            {"id": "bolt", "name": "Bolt 电子", "payer": b_payer, "staff": b_staff},
        ],
        "merchants": [
            {"id": "canteen", "name": "园区食堂", "wallet": canteen, "category": 5812},
            {"id": "shop", "name": "园区便利店", "wallet": shop, "category": 5411},
        ],
        "fee_mandates": [
            {"tenant": "acme", "cap_fen": 10_000_00, "expires_at": int(time.time()) + 400 * 86_400},
        ],
        "welfare": {
            "issuer": union,
            "name": "园区员工福利券",
            "budget_fen": 3 * 50_00,
            "per_staff_fen": 50_00,
            "starts_at": now - 60,
            "expires_at": now + 30 * 86_400,
        },
    }
    return {
        "spec": spec,
        "tag": tag,
        "payers": {"acme": (a_payer, a_checker), "bolt": (b_payer, b_checker)},
        "staff": {"acme": a_staff, "bolt": b_staff},
        "canteen": canteen,
        "shop": shop,
        "fees": fees,
        "union": union,
    }


def test_a_park_is_set_up_from_its_file_once(api: Api, park: dict) -> None:
    spec = park["spec"]
    r = api.operator.post("/v1/parks", json=spec)
    assert r.status_code == 201, r.text
    assert (r.json()["tenants"], r.json()["staff"], r.json()["merchants"], r.json()["created"]) == (
        2,
        3,
        2,
        True,
    )
    mandate = r.json()["fee_mandates"]["acme"]
    ctx = api.app.state.ctx
    granted = ctx.quickpay.mandate(mandate)
    assert granted.per_payment_cap == 10_000_00 and granted.merchant == park["fees"]
    again = api.operator.post("/v1/parks", json=spec)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["fee_mandates"] == {"acme": mandate}  # no second mandate
    assert ctx.quickpay.contract.functions.mandateCount().call() == mandate
    pid = r.json()["welfare_programme"]
    assert again.json()["welfare_programme"] == pid  # one programme, granted once
    programme = ctx.vouchers.programme(pid)
    assert programme.granted == 3 * 50_00 and programme.issuer == park["union"]
    assert ctx.vouchers.contract.functions.programmeCount().call() == pid
    stored = api.auditor.get(f"/v1/parks/{spec['id']}").json()
    assert stored["fee_mandates"][0]["cap_fen"] == 10_000_00
    assert stored["welfare"]["per_staff_fen"] == 50_00
    assert {k: v for k, v in stored.items() if k not in ("fee_mandates", "welfare")} == {
        **{k: v for k, v in spec.items() if k not in ("fee_mandates", "welfare")},
        "terminals": [],
        "door_points": [],
    }
    other = copy.deepcopy(spec)
    other["name"] = "another park"
    r = api.operator.post("/v1/parks", json=other)
    assert r.status_code == 409 and problem_type(r) == "park-exists"
    assert api.auditor.get(f"/v1/parks/{spec['id']}").json()["name"] == "黄桥未来工场"
    assert problem_type(api.auditor.get("/v1/parks/no-such-park")) == "park-not-found"


@pytest.mark.parametrize(
    ("change", "status", "slug", "field"),
    [
        (lambda s: s["tenants"][1]["staff"].append("0x1234"), 422, "invalid-request", "tenants.1.staff.1"),
        (lambda s: s.update(colour="red"), 422, "invalid-request", "colour"),
        (lambda s: s["merchants"][0].update(category=0), 422, "invalid-request", "merchants.0.category"),
        (lambda s: s["tenants"][1].update(id="acme"), 422, "invalid-request", "tenants: ids repeat"),
        (
            lambda s: s["tenants"][1]["staff"].append(s["tenants"][0]["staff"][0]),
            422,
            "invalid-request",
            "tenants.1.staff.1: wallet",
        ),
        (
            lambda s: s["tenants"][0]["staff"].append(Account.create().address),
            422,
            "park-wallet-not-registered",
            "tenants.0.staff.2",
        ),
        (
            lambda s: s.update(fee_wallet=s["tenants"][0]["staff"].pop()),
            422,
            "park-wallet-wrong-kind",
            "fee_wallet: a personal wallet",
        ),
        (
            lambda s: s["merchants"][1].update(category=5812),
            422,
            "park-merchant-category-mismatch",
            "merchants.1",
        ),
        (lambda s: s.update(terminals=["T-nothere"]), 422, "park-terminal-not-found", "terminals.0"),
        (lambda s: s.update(door_points=["D-nothere"]), 422, "park-door-not-found", "door_points.0"),
        (lambda s: s["welfare"].update(budget_fen=100_00), 422, "invalid-request", "welfare.budget_fen"),
        (
            lambda s: s["welfare"].update(issuer=s["merchants"][0]["wallet"]),
            422,
            "park-wallet-wrong-kind",
            "welfare.issuer",
        ),
        (
            lambda s: s["fee_mandates"][0].update(tenant="nobody"),
            422,
            "invalid-request",
            "fee_mandates.0.tenant",
        ),
        (
            lambda s: s["fee_mandates"][0].update(expires_at=1_000_000),
            422,
            "park-mandate-expired",
            "fee_mandates.0.expires_at",
        ),
    ],
)
def test_a_bad_park_file_is_refused_naming_the_field(
    api: Api, park: dict, change, status: int, slug: str, field: str
) -> None:
    spec = copy.deepcopy(park["spec"])
    spec["id"] = f"bad-{uuid.uuid4().hex[:8]}"
    spec["welfare"]["budget_fen"] = 10 * 50_00  # room for one more staff member
    change(spec)
    r = api.operator.post("/v1/parks", json=spec)
    assert r.status_code == status and problem_type(r) == slug, r.text
    assert field in r.json()["detail"], r.json()["detail"]
    assert problem_type(api.auditor.get(f"/v1/parks/{spec['id']}")) == "park-not-found"


def _pay_code(api: Api, merchant: str, payer: str, fen: int) -> None:
    code = client_for(api, "merchant", merchant).post(
        "/v1/payment-codes",
        json={"merchant": merchant, "amount_fen": fen, "reference": uuid.uuid4().hex[:12]},
    )
    assert code.status_code == 201, code.text
    r = api.post(
        "operator", f"/v1/payment-codes/{code.json()['id']}/pay", {"form": "custodial", "payer": payer}
    )
    assert r.status_code == 200, r.text


def _payroll(api: Api, park: dict, tenant: str, fen: int) -> None:
    payer, checker = park["payers"][tenant]
    p = Payroll(payer, "", checker, park["staff"][tenant], park["tag"])
    r = create(api, p, [{"recipient": w, "amount": fen} for w in park["staff"][tenant]])
    assert r.status_code == 201, r.text
    assert approve(api, p, r.json()["reference"]).status_code == 200
    assert execute_and_wait(api, r.json()["reference"])["status"] == "executed"


def test_the_report_says_how_much_of_the_wages_stayed_in_the_park(api: Api, park: dict) -> None:
    spec = park["spec"]
    if api.auditor.get(f"/v1/parks/{spec['id']}").status_code == 404:
        assert api.operator.post("/v1/parks", json=spec).status_code == 201
    _payroll(api, park, "acme", 3000_00)  # two staff, ¥3,000 each
    _payroll(api, park, "bolt", 2000_00)
    a0, a1 = park["staff"]["acme"]
    (b0,) = park["staff"]["bolt"]
    _pay_code(api, park["canteen"], a0, 15_50)  # lunch
    _pay_code(api, park["canteen"], a1, 12_00)
    _pay_code(api, park["shop"], a1, 30_00)
    _pay_code(api, park["canteen"], b0, 18_00)
    pid = api.operator.post("/v1/parks", json=spec).json()["welfare_programme"]
    spend = {"holder": a0, "merchant": park["shop"], "bill_fen": 60_00}
    r = api.post("operator", f"/v1/voucher-programs/{pid}/spend", spend)
    assert r.status_code == 200, r.text  # ¥50 of welfare and ¥10 of a0's own cash at the park's shop
    town_shop = api.new_wallet(kind="merchant", tier=2, category=5411, name="town shop")
    spend = {"holder": b0, "merchant": town_shop, "bill_fen": 10_00}
    r = api.post("operator", f"/v1/voucher-programs/{pid}/spend", spend)
    assert r.status_code == 422 and problem_type(r) == "merchant-not-listed"  # only inside the park
    outside = api.new_wallet(kind="merchant", tier=2, category=5812, name="town restaurant")
    _pay_code(api, outside, b0, 100_00)  # spent outside the park: not retained
    fee = {"tenant": "acme", "period": "2026-11", "kind": "rent", "amount_fen": 8000_00}
    r = api.post("operator", f"/v1/parks/{spec['id']}/fees", fee)
    assert r.status_code == 200 and r.json()["status"] == "confirmed", r.text  # the month's rent, pulled
    again = api.post("operator", f"/v1/parks/{spec['id']}/fees", fee)
    assert again.status_code == 409 and problem_type(again) == "duplicate-reference"
    over = api.post(
        "operator", f"/v1/parks/{spec['id']}/fees", {**fee, "period": "2026-12", "amount_fen": 10_000_01}
    )
    assert over.status_code == 422 and problem_type(over) == "over-payment-cap"
    none = api.post("operator", f"/v1/parks/{spec['id']}/fees", {**fee, "tenant": "bolt"})
    assert none.status_code == 409 and problem_type(none) == "park-no-fee-mandate"
    bolt_payer = park["payers"]["bolt"][0]
    r = api.post("operator", "/v1/transfers", {"from": bolt_payer, "to": park["fees"], "amount_fen": 300_00})
    assert r.status_code == 200, r.text  # bolt pays its water bill by transfer

    r = api.auditor.get(f"/v1/parks/{spec['id']}/report")
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["paid_in"] == {"fen": 8150_00, "yuan": "8150.00"}  # wages, and ¥50 welfare for 3
    assert rep["welfare_granted"]["fen"] == 150_00 and rep["welfare_spent"]["fen"] == 50_00
    assert rep["spent_inside"]["fen"] == 15_50 + 12_00 + 30_00 + 18_00 + 60_00
    assert rep["retention_ratio"] == round(135_50 / 8150_00, 4)
    assert rep["fee_income"] == {"fen": 8300_00, "yuan": "8300.00"}
    tenants = {t["tenant"]: t for t in rep["by_tenant"]}
    assert (
        tenants["acme"]["spent_inside"]["fen"] == 117_50 and tenants["bolt"]["spent_inside"]["fen"] == 18_00
    )
    assert tenants["acme"]["fees_paid"]["fen"] == 8000_00 and tenants["bolt"]["fees_paid"]["fen"] == 300_00
    assert {c["category"]: c["spent_inside"]["fen"] for c in rep["by_category"]} == {5411: 90_00, 5812: 45_50}

    # Against the chain: the staff's wallets were empty before, so what they hold is what was paid
    # in less what they spent, inside the park (the report) and outside it (¥100); the merchants'
    # and the fee wallet's balances are exactly the report's takings and fee income.
    held = sum(balance(api, w) for w in (a0, a1, b0))
    vouchers_left = sum(api.app.state.ctx.vouchers.balance(pid, w) for w in (a0, a1, b0))
    assert vouchers_left == rep["welfare_granted"]["fen"] - rep["welfare_spent"]["fen"] == 100_00
    assert held + vouchers_left == rep["paid_in"]["fen"] - rep["spent_inside"]["fen"] - 100_00
    takings = {m["merchant"]: m["takings_from_staff"]["fen"] for m in rep["by_merchant"]}
    assert balance(api, park["canteen"]) == takings["canteen"]
    assert balance(api, park["shop"]) == takings["shop"]
    assert balance(api, park["fees"]) == rep["fee_income"]["fen"]

    page = api.auditor.get(f"/v1/parks/{spec['id']}/report", params={"format": "html", "lang": "zh"})
    assert page.status_code == 200 and page.headers["content-language"] == "zh-CN"
    assert "园区留存率" in page.text and "1.66%" in page.text and "¥135.50（13550 分）" in page.text
    page = api.auditor.get(
        f"/v1/parks/{spec['id']}/report", params={"format": "html"}, headers={"Accept-Language": "en"}
    )
    assert "Retention ratio" in page.text and "¥8,150.00 (815000 fen)" in page.text


def test_only_readers_read_the_report(api: Api, park: dict) -> None:
    r = api.merchant.get(f"/v1/parks/{park['spec']['id']}/report")
    assert r.status_code == 403 and problem_type(r) == "forbidden-role"
    r = api.merchant.post("/v1/parks", json=park["spec"])
    assert r.status_code == 403 and problem_type(r) == "forbidden-role"


def test_a_park_names_its_own_merchants_terminals_and_existing_door_points(api: Api, park: dict) -> None:
    """The gateway's terminals and door points live in the shared database (the gateway writes
    them); rows written here as the gateway would (any key row stands for theirs). A terminal of
    a merchant outside the park is refused; the park's own terminal and a known door point pass."""
    from services.common.models import AccessPoint, GatewayTerminal

    ctx = api.app.state.ctx
    outsider = api.new_wallet(kind="merchant", tier=2, category=5812, name="outside canteen")
    tag = uuid.uuid4().hex[:6]
    rows = []
    for merchant in (park["canteen"], outsider):
        key = api.admin.post("/v1/api-keys", json={"role": "merchant", "wallet": merchant}).json()["id"]
        rows.append(
            GatewayTerminal(
                id=f"T-{tag}-{len(rows)}", merchant=merchant, category=5812, location="x", api_key_id=key
            )
        )
    door_key = api.admin.post("/v1/api-keys", json={"role": "auditor"}).json()["id"]
    with ctx.db.session() as s:
        s.add_all([*rows, AccessPoint(id=f"D-{tag}", name="gate", api_key_id=door_key)])
        s.commit()
    spec = copy.deepcopy(park["spec"])
    spec.pop("welfare")
    spec.pop("fee_mandates")
    spec["id"] = f"gates-{tag}"
    r = api.operator.post("/v1/parks", json={**spec, "terminals": [f"T-{tag}-0", f"T-{tag}-1"]})
    assert r.status_code == 422 and problem_type(r) == "park-terminal-not-a-park-merchant", r.text
    assert "terminals.1" in r.json()["detail"]
    r = api.operator.post(
        "/v1/parks", json={**spec, "terminals": [f"T-{tag}-0"], "door_points": [f"D-{tag}"]}
    )
    assert r.status_code == 201, r.text
    assert (r.json()["terminals"], r.json()["door_points"], r.json()["welfare_programme"]) == (1, 1, None)
