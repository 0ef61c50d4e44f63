"""The closed-loop park over HTTP (黄桥未来工场, issue 23), on both databases: a park set up from
one declarative file (idempotent, 422 naming the bad field), payroll to its staff through the
disburse family, lunch at the canteen and a shop through payment codes, a purchase outside the
park, a fee paid to the park; the report's totals checked against the chain's balances."""

from __future__ import annotations

import copy
import time
import uuid
from datetime import UTC, datetime

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
    for period in ("0000-01", "9999-12", "2026-13"):  # not a month the park can bill
        bad = api.post("operator", f"/v1/parks/{spec['id']}/fees", {**fee, "period": period})
        assert bad.status_code == 422, (period, bad.text)
    none = api.post("operator", f"/v1/parks/{spec['id']}/fees", {**fee, "tenant": "bolt"})
    assert none.status_code == 409 and problem_type(none) == "park-no-fee-mandate"
    bolt_payer = park["payers"]["bolt"][0]
    r = api.post("operator", "/v1/transfers", {"from": bolt_payer, "to": park["fees"], "amount_fen": 300_00})
    assert r.status_code == 200, r.text  # bolt pays its water bill by transfer

    r = api.auditor.get(f"/v1/parks/{spec['id']}/report")
    assert r.status_code == 200, r.text
    rep = r.json()
    # free money: the wages, and what the staff paid the park's merchants from their own cash
    # (a0's ¥10 cash share of the ¥60 bill counts, the ¥50 of welfare does not)
    assert rep["paid_in"] == {"fen": 8000_00, "yuan": "8000.00"}
    assert rep["spent_inside"]["fen"] == 15_50 + 12_00 + 30_00 + 18_00 + 10_00
    assert rep["retention_ratio"] == round(85_50 / 8000_00, 4)
    # earmarked money apart: granted to 3 staff, ¥50 spent at the park's shop, none returned yet
    assert {k: v for k, v in rep["earmarked"].items() if k != "programme"} == {
        "granted": {"fen": 150_00, "yuan": "150.00"},
        "spent_inside": {"fen": 50_00, "yuan": "50.00"},
        "unspent": {"fen": 100_00, "yuan": "100.00"},
        "returned": {"fen": 0, "yuan": "0.00"},
        "expired": False,
        "spend_ratio": round(50_00 / 150_00, 4),
        "other_spent_inside": {"fen": 0, "yuan": "0.00"},
    }
    assert rep["earmarked"]["programme"] == pid
    assert rep["fee_income"] == {"fen": 8300_00, "yuan": "8300.00"}
    tenants = {t["tenant"]: t for t in rep["by_tenant"]}
    assert tenants["acme"]["spent_inside"]["fen"] == 67_50 and tenants["bolt"]["spent_inside"]["fen"] == 18_00
    assert (tenants["acme"]["earmarked_granted"]["fen"], tenants["acme"]["earmarked_spent"]["fen"]) == (
        100_00,
        50_00,
    )
    assert (tenants["bolt"]["earmarked_granted"]["fen"], tenants["bolt"]["earmarked_spent"]["fen"]) == (
        50_00,
        0,
    )
    assert tenants["acme"]["fees_paid"]["fen"] == 8000_00 and tenants["bolt"]["fees_paid"]["fen"] == 300_00
    assert {c["category"]: c["spent_inside"]["fen"] for c in rep["by_category"]} == {5411: 40_00, 5812: 45_50}
    assert {c["category"]: c["earmarked_spent"]["fen"] for c in rep["by_category"]} == {5411: 50_00, 5812: 0}
    assert (rep["card_taps"], rep["door_entries"], rep["activity"]) == (0, 0, [])

    # Against the chain: the staff's wallets were empty before, so what they hold (cash and
    # vouchers) is what was paid in (free and earmarked) less what they spent, inside the park
    # (the report) and outside it (¥100); the programme's books are the earmarked section; the
    # merchants' and the fee wallet's balances are exactly the report's takings and fee income.
    held = sum(balance(api, w) for w in (a0, a1, b0))
    programme = api.app.state.ctx.vouchers.programme(pid)
    vouchers_left = sum(api.app.state.ctx.vouchers.balance(pid, w) for w in (a0, a1, b0))
    earmarked = rep["earmarked"]
    assert vouchers_left == earmarked["unspent"]["fen"] == programme.outstanding
    assert (programme.granted, programme.spent) == (
        earmarked["granted"]["fen"],
        earmarked["spent_inside"]["fen"],
    )
    assert held == rep["paid_in"]["fen"] - rep["spent_inside"]["fen"] - 100_00
    takings = {m["merchant"]: m["takings_from_staff"]["fen"] for m in rep["by_merchant"]}
    assert balance(api, park["canteen"]) == takings["canteen"]
    assert balance(api, park["shop"]) == takings["shop"]
    assert balance(api, park["fees"]) == rep["fee_income"]["fen"]

    page = api.auditor.get(f"/v1/parks/{spec['id']}/report", params={"format": "html", "lang": "zh"})
    assert page.status_code == 200 and page.headers["content-language"] == "zh-CN"
    assert "自由资金园区留存率" in page.text and "1.07%" in page.text and "¥85.50（8550 分）" in page.text
    assert "专款专用资金（员工福利券）" in page.text and "¥150.00（15000 分）" in page.text
    page = api.auditor.get(
        f"/v1/parks/{spec['id']}/report", params={"format": "html"}, headers={"Accept-Language": "en"}
    )
    assert "Retention ratio of free money" in page.text and "¥8,000.00 (800000 fen)" in page.text
    assert "Earmarked money (welfare vouchers)" in page.text and "33.33%" in page.text


def test_only_readers_read_the_report(api: Api, park: dict) -> None:
    r = api.merchant.get(f"/v1/parks/{park['spec']['id']}/report")
    assert r.status_code == 403 and problem_type(r) == "forbidden-role"
    r = api.merchant.post("/v1/parks", json=park["spec"])
    assert r.status_code == 403 and problem_type(r) == "forbidden-role"


def _small_park(api: Api, tag: str, staff: int = 2) -> dict:
    """A park of fresh wallets (a wallet belongs to one park): one tenant, ``staff`` staff, a canteen."""
    payer = api.new_wallet(kind="institution", tier=1, name="small tenant")
    canteen = api.new_wallet(kind="merchant", tier=2, category=5812, name="small canteen")
    fees = api.new_wallet(kind="merchant", tier=2, category=6513, name="small property office")
    return {
        "id": f"small-{tag}",
        "name": "小园区",
        "area": "黄桥街道",
        "fee_wallet": fees,
        "tenants": [{"id": "t1", "name": "T1", "payer": payer, "staff": _staff(api, tag, staff, "small")}],
        "merchants": [{"id": "canteen", "name": "食堂", "wallet": canteen, "category": 5812}],
    }


def test_a_park_names_its_own_merchants_terminals_and_existing_door_points(api: Api) -> None:
    """The gateway's terminals and door points live in the shared database (the gateway writes
    them); rows written here as the gateway would (any key row stands for theirs). A terminal of
    a merchant outside the park is refused; the park's own terminal and a known door point pass."""
    from services.common.models import AccessPoint, GatewayTerminal

    ctx = api.app.state.ctx
    tag = uuid.uuid4().hex[:6]
    spec = _small_park(api, tag, staff=1)
    canteen = spec["merchants"][0]["wallet"]
    outsider = api.new_wallet(kind="merchant", tier=2, category=5812, name="outside canteen")
    rows = []
    for merchant in (canteen, outsider):
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
    r = api.operator.post("/v1/parks", json={**spec, "terminals": [f"T-{tag}-0", f"T-{tag}-1"]})
    assert r.status_code == 422 and problem_type(r) == "park-terminal-not-a-park-merchant", r.text
    assert "terminals.1" in r.json()["detail"]
    r = api.operator.post(
        "/v1/parks", json={**spec, "terminals": [f"T-{tag}-0"], "door_points": [f"D-{tag}"]}
    )
    assert r.status_code == 201, r.text
    assert (r.json()["terminals"], r.json()["door_points"], r.json()["welfare_programme"]) == (1, 1, None)


def _stored_park_rows(api: Api, park_id: str) -> tuple[int, int]:
    from sqlalchemy import func, select

    from services.operator.families.park.models import Park, ParkWallet

    with api.app.state.ctx.db.session() as s:
        parks = s.scalar(select(func.count()).select_from(Park).where(Park.id == park_id))
        claims = s.scalar(select(func.count()).select_from(ParkWallet).where(ParkWallet.park_id == park_id))
    return int(parks or 0), int(claims or 0)


@pytest.mark.parametrize("place", ["payer", "staff", "merchant"])
def test_a_wallet_of_one_park_is_refused_to_another(api: Api, place: str) -> None:
    """A red team put one wallet in two parks and both reports counted it: now the second park
    is refused whole (409 ``park-wallet-taken`` naming the wallet and the other park)."""
    tag = uuid.uuid4().hex[:6]
    first = _small_park(api, f"{tag}a")
    assert api.operator.post("/v1/parks", json=first).status_code == 201
    second = _small_park(api, f"{tag}b")
    shared, field = {
        "payer": (first["tenants"][0]["payer"], "tenants.0.payer"),
        "staff": (first["tenants"][0]["staff"][1], "tenants.0.staff.1"),
        "merchant": (first["merchants"][0]["wallet"], "merchants.0.wallet"),
    }[place]
    if place == "payer":
        second["tenants"][0]["payer"] = shared
    elif place == "staff":
        second["tenants"][0]["staff"][1] = shared
    else:
        second["merchants"][0]["wallet"] = shared
    r = api.operator.post("/v1/parks", json=second)
    assert r.status_code == 409 and problem_type(r) == "park-wallet-taken", r.text
    body = r.json()
    assert (body["wallet"], body["park"], body["field"]) == (shared, first["id"], field)
    assert shared in body["detail"] and first["id"] in body["detail"]
    assert problem_type(api.auditor.get(f"/v1/parks/{second['id']}")) == "park-not-found"
    assert _stored_park_rows(api, second["id"]) == (0, 0)  # nothing of the second park stored
    assert _stored_park_rows(api, first["id"]) == (1, 4)  # payer, 2 staff, canteen


def test_two_parks_posted_at_once_cannot_both_take_a_wallet(api: Api) -> None:
    import threading

    tag = uuid.uuid4().hex[:6]
    one, two = _small_park(api, f"{tag}a"), _small_park(api, f"{tag}b")
    two["tenants"][0]["staff"].append(one["tenants"][0]["staff"][0])  # both name this staff wallet
    answers: list[httpx.Response] = []
    go = threading.Barrier(2)

    def post(spec: dict) -> None:
        go.wait()
        answers.append(api.operator.post("/v1/parks", json=spec))

    threads = [threading.Thread(target=post, args=(spec,)) for spec in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    loser = next(r for r in answers if r.status_code == 409)
    assert problem_type(loser) == "park-wallet-taken", loser.text
    winner = one if answers[0 if answers[0].status_code == 201 else 1].json()["id"] == one["id"] else two
    other = two if winner is one else one
    assert _stored_park_rows(api, other["id"]) == (0, 0)
    assert _stored_park_rows(api, winner["id"])[0] == 1


def test_a_frozen_held_or_retired_wallet_is_refused_naming_its_field(api: Api) -> None:
    tag = uuid.uuid4().hex[:6]
    spec = _small_park(api, tag)
    staff0, staff1 = spec["tenants"][0]["staff"]
    canteen = spec["merchants"][0]["wallet"]
    assert api.post("regulator", "/v1/regulator/freeze", {"address": canteen}).status_code == 200
    r = api.operator.post("/v1/parks", json=spec)
    assert r.status_code == 409 and problem_type(r) == "park-wallet-frozen", r.text
    assert (r.json()["field"], r.json()["wallet"]) == ("merchants.0.wallet", canteen)
    assert "merchants.0.wallet" in r.json()["detail"] and canteen in r.json()["detail"]
    assert api.post("regulator", "/v1/regulator/unfreeze", {"address": canteen}).status_code == 200

    assert api.post("operator", "/v1/issuance", {"to": staff1, "amount_fen": 500}).status_code == 200
    held = api.post(
        "regulator",
        "/v1/regulator/holds",
        {"wallet": staff1, "amount_fen": 300, "reason": "judicial freeze", "case_number": f"(2026)苏{tag}"},
    )
    assert held.status_code == 201, held.text
    r = api.operator.post("/v1/parks", json=spec)
    assert r.status_code == 409 and problem_type(r) == "park-wallet-held", r.text
    assert (r.json()["field"], r.json()["wallet"], r.json()["held_fen"]) == ("tenants.0.staff.1", staff1, 300)
    assert api.post("regulator", f"/v1/regulator/holds/{held.json()['hold_id']}/lift").status_code == 200

    r = api.post("operator", f"/v1/wallets/{staff0}/recovery", {"evidence": "face check at counter 3"})
    assert r.status_code == 201, r.text
    approved = api.post("regulator", f"/v1/regulator/recoveries/{r.json()['recovery_id']}/approve")
    assert approved.status_code == 200, approved.text
    r = api.operator.post("/v1/parks", json=spec)
    assert r.status_code == 410 and problem_type(r) == "wallet-retired", r.text
    assert "tenants.0.staff.0" in r.json()["detail"] and staff0 in r.json()["detail"]
    assert _stored_park_rows(api, spec["id"]) == (0, 0)


def test_card_taps_and_door_access_per_day_and_tenant_match_the_chain(api: Api) -> None:
    """Staff of two tenants tap their cards at the park canteen's terminal and pass its gate;
    the report counts the taps (against the chain's settlements and balances) and the door's
    decisions (against the gateway's log), per Beijing day and tenant."""
    from eth_account import Account as Acct
    from sqlalchemy import select

    from chain.clients.hardwallet import Payment, sign_payment
    from services.common.operations import perform
    from services.common.refunds import beijing_day
    from services.gateway.families.hardwallet.models import AccessDecision
    from services.gateway.families.hardwallet.schemas import (
        AccessIn,
        AccessPointIn,
        GrantIn,
        SignedPaymentIn,
        TerminalIn,
    )
    from services.gateway.families.hardwallet.service import access, offline_payments
    from services.gateway.families.hardwallet.service.terminals import register_terminal
    from services.operator.families.refunds.spotcheck import robot_key
    from wallets.hardwallet import access_digest

    ctx, ops = api.app.state.ctx, api.app.state.ops
    key = robot_key(ctx)  # any operator key row stands for the gateway's
    tag = uuid.uuid4().hex[:6]
    spec = _small_park(api, tag, staff=1)
    (w1,) = spec["tenants"][0]["staff"]
    other_payer = api.new_wallet(kind="institution", tier=1, name="second tenant")
    (w2,) = _staff(api, tag, 1, "second")
    spec["tenants"].append({"id": "t2", "name": "T2", "payer": other_payer, "staff": [w2]})
    canteen = spec["merchants"][0]["wallet"]
    terminal = register_terminal(ctx, key, TerminalIn(merchant=canteen, location="small canteen"))
    door = access.create_point(ctx, key, AccessPointIn(name="gate", location="north"))
    access.add_grant(ctx, key, door.id, GrantIn(holder=w1))  # w2 is not on the gate's list
    spec.update(terminals=[terminal.id], door_points=[door.id])
    assert api.operator.post("/v1/parks", json=spec).status_code == 201

    cards = {}
    for w in (w1, w2):
        assert api.post("operator", "/v1/issuance", {"to": w, "amount_fen": 100_00}).status_code == 200
        card = Acct.create()
        body = {"card": card.address, "holder": w, "form": "card", "serial": f"park-{tag}"}
        perform(ops, "spotcheck.card.register", key, f"park-test:{tag}:{w}:reg", body, target=card.address)
        body = {"card": card.address, "holder": w, "amount_fen": 50_00}
        perform(ops, "spotcheck.card.load", key, f"park-test:{tag}:{w}:load", body, target=card.address)
        cards[w] = card
    from services.common.models import GatewayTerminal

    with ctx.db.session() as s:
        at = s.get(GatewayTerminal, terminal.id)
    now = int(api.w3.eth.get_block("latest")["timestamp"])  # the chain's: after the cards' registration
    taps = [(w1, 12_00, 1), (w1, 8_00, 2), (w2, 15_00, 1)]
    signed = [
        SignedPaymentIn.model_validate(
            sign_payment(
                bytes(cards[w].key), Payment(cards[w].address, canteen, fen, n, now), ctx.hardwallet.domain
            ).to_json()
        ).model_dump()
        for w, fen, n in taps
    ]
    out = offline_payments.upload(ctx, ops, key, at, f"park-test:{tag}:upload", signed, "spotcheck.settle")
    assert out.status == "confirmed" and [r.outcome for r in out.results] == ["settled"] * 3

    def knock(w: str) -> None:
        challenge = access.new_challenge(ctx, access.point(ctx, door.id), 30)
        digest = access_digest(
            cards[w].address, bytes.fromhex(challenge.challenge[2:]), ctx.hardwallet.domain
        )
        sig = Acct.unsafe_sign_hash(digest, cards[w].key).signature.hex()
        body = AccessIn(
            card=cards[w].address, challenge=challenge.challenge, signature="0x" + sig.removeprefix("0x")
        )
        access.decide(ctx, access.point(ctx, door.id), body)

    for w in (w1, w1, w2):
        knock(w)

    rep = api.auditor.get(f"/v1/parks/{spec['id']}/report").json()
    # against the chain: the cards' settled totals, the canteen's balance (it had nothing before)
    assert ctx.hardwallet.card(cards[w1].address).settled == 20_00
    assert ctx.hardwallet.card(cards[w2].address).settled == 15_00
    assert balance(api, canteen) == rep["card_tap_fen"]["fen"] == 35_00 and rep["card_taps"] == 3
    assert rep["spent_inside"]["fen"] == 35_00  # the staff's own cash, loaded on their cards
    settled = ctx.hardwallet.contract.events.PaymentSettled().get_logs(
        from_block=api.w3.eth.get_transaction_receipt(out.tx_hash)["blockNumber"]
    )
    assert sorted(int(e["args"]["amount"]) for e in settled if e["args"]["merchant"] == canteen) == [
        8_00,
        12_00,
        15_00,
    ]
    # against the gateway's log: two entries of t1's staff, t2's staff denied once
    with ctx.db.session() as s:
        logged = s.scalars(select(AccessDecision).where(AccessDecision.access_point_id == door.id)).all()
    assert sorted(d.allowed for d in logged) == [False, True, True]
    assert (rep["door_entries"], rep["door_denied"]) == (2, 1)
    day = beijing_day(datetime.now(UTC))
    lines = {a["tenant"]: a for a in rep["activity"] if a["day"] == day}
    assert {
        t: (a["card_taps"], a["card_tap_fen"]["fen"], a["door_entries"], a["door_denied"])
        for t, a in lines.items()
    } == {
        "t1": (2, 20_00, 2, 0),
        "t2": (1, 15_00, 0, 1),
    }
    for lang, words in (
        ("zh", ("园区终端刷卡笔数", "门禁通行次数")),
        ("en", ("Card tap amount", "Door entries")),
    ):
        page = api.auditor.get(f"/v1/parks/{spec['id']}/report", params={"format": "html", "lang": lang})
        assert all(w in page.text for w in words) and '<dd id="card-taps">3</dd>' in page.text
        assert '<dd id="door-entries">2</dd>' in page.text
    # the spot-check robot probes the park's terminal (1 fen, refunded): not a tap (red team 8)
    run = api.operator.post("/v1/spot-checks/run")
    assert run.status_code == 200, run.text
    probed = [
        c
        for c in run.json()["checks"]
        if c["target_kind"] == "terminal" and c["target_id"] == str(terminal.id)
    ]
    assert [c["outcome"] for c in probed] == ["passed"], probed
    again = api.auditor.get(f"/v1/parks/{spec['id']}/report").json()
    assert (again["card_taps"], again["card_tap_fen"]["fen"]) == (3, 35_00)


def _other_institution_operator(api: Api) -> httpx.Client:
    """An operator key acting for institution #2 (none of the test's wallets is its customer)."""
    from services.common.keys import Role, create_key

    with api.app.state.ctx.db.session() as s:
        _, key = create_key(s, Role.OPERATOR, "institution 2 (test)", institution=2)
        s.commit()
    return httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=60)


def _with_welfare(api: Api, spec: dict, **change: object) -> dict:
    """``spec`` with a welfare programme of a fresh union holding ¥1,000: ¥50 per staff member."""
    union = api.new_wallet(kind="institution", tier=1, name="small union")
    assert api.post("operator", "/v1/issuance", {"to": union, "amount_fen": 1_000_00}).status_code == 200
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    staff = len(spec["tenants"][0]["staff"])
    welfare = {
        "issuer": union,
        "name": "福利券",
        "budget_fen": staff * 50_00,
        "per_staff_fen": 50_00,
        "starts_at": now - 60,
        "expires_at": now + 30 * 86_400,
    }
    return {**spec, "welfare": {**welfare, **change}}


@pytest.mark.parametrize(
    "case",
    [
        "welfare-expired",
        "welfare-over-balance",
        "other-institution",
        "other-institution-mandate",
    ],
)
def test_a_refused_set_up_leaves_nothing_stored_or_claimed(api: Api, case: str) -> None:
    """A red team found refused set-ups stored, their wallets claimed for good (409
    ``park-wallet-taken`` ever after): a welfare period already over, a welfare budget above the
    issuer's cash, another institution's key (its fee mandate refused by the operations layer).
    Now each is refused before anything is stored: GET 404, and the wallets free for another park."""
    tag = uuid.uuid4().hex[:6]
    spec = _small_park(api, tag)
    client = api.operator
    mandate = [{"tenant": "t1", "cap_fen": 1_000_00, "expires_at": int(time.time()) + 86_400}]
    if case == "welfare-expired":
        now = int(api.w3.eth.get_block("latest")["timestamp"])
        bad, status, slug = (
            _with_welfare(api, spec, starts_at=now - 2 * 86_400, expires_at=now - 86_400),
            422,
            "invalid-period",
        )
    elif case == "welfare-over-balance":
        bad, status, slug = _with_welfare(api, spec, budget_fen=1_000_01), 422, "insufficient-balance"
    elif case == "other-institution":
        bad, status, slug = spec, 403, "institution-scope"
        client = _other_institution_operator(api)
    else:
        bad, status, slug = {**spec, "fee_mandates": mandate}, 403, "institution-scope"
        client = _other_institution_operator(api)
    r = client.post("/v1/parks", json=bad)
    assert r.status_code == status and problem_type(r) == slug, r.text
    assert problem_type(api.auditor.get(f"/v1/parks/{spec['id']}")) == "park-not-found"
    assert _stored_park_rows(api, spec["id"]) == (0, 0)
    again = {**spec, "id": f"again-{tag}"}  # the same payer, staff and canteen
    r = api.operator.post("/v1/parks", json=again)
    assert r.status_code == 201, r.text
    assert _stored_park_rows(api, again["id"]) == (1, 4)


def test_a_chain_step_refused_after_the_park_is_stored_releases_it(api: Api) -> None:
    """What the pre-checks cannot see (the chain's clock moves on between the check and the
    welfare programme's creation, after the fee mandate's grant mined a block): the chain refuses
    the programme (422 ``invalid-period``) after the park was stored, and the park is released:
    GET 404, no claims left, its wallets free for another park."""
    from chain import devtools

    devtools.increase_time(api.w3, 3_600)  # the chain ahead of the wall clock: its time decides
    tag = uuid.uuid4().hex[:6]
    spec = _small_park(api, tag)
    mandate = [{"tenant": "t1", "cap_fen": 1_000_00, "expires_at": int(time.time()) + 30 * 86_400}]
    welfare = _with_welfare(api, spec)["welfare"]
    latest = int(api.w3.eth.get_block("latest")["timestamp"])
    bad = {**spec, "fee_mandates": mandate, "welfare": {**welfare, "expires_at": latest + 1}}
    r = api.operator.post("/v1/parks", json=bad)
    assert r.status_code == 422 and problem_type(r) == "invalid-period", r.text
    assert problem_type(api.auditor.get(f"/v1/parks/{spec['id']}")) == "park-not-found"
    assert _stored_park_rows(api, spec["id"]) == (0, 0)
    again = {**spec, "id": f"again-{tag}"}
    r = api.operator.post("/v1/parks", json=again)
    assert r.status_code == 201, r.text
    assert _stored_park_rows(api, again["id"]) == (1, 4)


def test_the_report_of_a_tenant_without_staff_is_zeros(api: Api) -> None:
    """A tenant may have no staff yet (a valid file): its report was a 500, now zeros."""
    spec = _small_park(api, uuid.uuid4().hex[:6], staff=0)
    assert api.operator.post("/v1/parks", json=spec).status_code == 201
    r = api.auditor.get(f"/v1/parks/{spec['id']}/report")
    assert r.status_code == 200, r.text
    (line,) = r.json()["by_tenant"]
    assert (line["tenant"], line["paid_in"]["fen"], line["earmarked_granted"]["fen"]) == ("t1", 0, 0)
    assert r.json()["retention_ratio"] is None
    page = api.auditor.get(f"/v1/parks/{spec['id']}/report", params={"format": "html", "lang": "en"})
    assert page.status_code == 200, page.text


def _code_payment(api: Api, merchant: str, body: dict, fen: int) -> tuple[str, int]:
    code = client_for(api, "merchant", merchant).post(
        "/v1/payment-codes",
        json={"merchant": merchant, "amount_fen": fen, "reference": uuid.uuid4().hex[:12]},
    )
    assert code.status_code == 201, code.text
    r = api.post("operator", f"/v1/payment-codes/{code.json()['id']}/pay", body)
    assert r.status_code == 200, r.text
    return code.json()["id"], int(r.json()["payments"][0]["id"])


def _refund(api: Api, code: str, payment: int, fen: int) -> dict:
    r = api.post("operator", f"/v1/payment-codes/{code}/payments/{payment}/refunds", {"amount_fen": fen})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_the_report_nets_out_refunds_of_payments_inside_the_park(api: Api) -> None:
    """A red team's refunded lunches and welfare bills stayed in the report (retention inflated):
    a refund's cash share comes off the staff's spending and the merchant's takings, its voucher
    share off the welfare spent; checked against the balances."""
    spec = _with_welfare(api, _small_park(api, uuid.uuid4().hex[:6]))
    r = api.operator.post("/v1/parks", json=spec)
    assert r.status_code == 201, r.text
    pid = r.json()["welfare_programme"]
    payer, (s0, s1) = spec["tenants"][0]["payer"], spec["tenants"][0]["staff"]
    canteen = spec["merchants"][0]["wallet"]
    assert api.post("operator", "/v1/issuance", {"to": payer, "amount_fen": 2000_00}).status_code == 200
    for worker in (s0, s1):
        r = api.post("operator", "/v1/transfers", {"from": payer, "to": worker, "amount_fen": 1000_00})
        assert r.status_code == 200, r.text
    code, paid = _code_payment(api, canteen, {"form": "custodial", "payer": s0}, 100_00)
    lunch = _refund(api, code, paid, 60_00)  # part of a lunch
    assert (lunch["cash_fen"], lunch["voucher_fen"]) == (60_00, 0)
    code, paid = _code_payment(api, canteen, {"form": "voucher", "payer": s1, "programme_id": pid}, 60_00)
    bill = _refund(api, code, paid, 30_00)  # half a ¥60 bill, ¥50 of it welfare
    assert bill["cash_fen"] + bill["voucher_fen"] == 30_00 and bill["voucher_fen"] > 0

    rep = api.auditor.get(f"/v1/parks/{spec['id']}/report").json()
    cash_spent = 100_00 - 60_00 + 10_00 - bill["cash_fen"]
    assert rep["paid_in"]["fen"] == 2000_00 and rep["spent_inside"]["fen"] == cash_spent
    assert rep["retention_ratio"] == round(cash_spent / 2000_00, 4)
    assert balance(api, s0) + balance(api, s1) == rep["paid_in"]["fen"] - rep["spent_inside"]["fen"]
    (shop,) = rep["by_merchant"]
    assert shop["spent_inside"]["fen"] == cash_spent
    assert shop["earmarked_spent"]["fen"] == 50_00 - bill["voucher_fen"]
    assert balance(api, canteen) == shop["takings_from_staff"]["fen"] == 70_00
    ctx = api.app.state.ctx
    programme = ctx.vouchers.programme(pid)
    earmarked = rep["earmarked"]
    assert (
        earmarked["spent_inside"]["fen"]
        == programme.spent - bill["voucher_fen"]
        == 50_00 - bill["voucher_fen"]
    )
    assert earmarked["returned"]["fen"] == bill["voucher_fen"]  # back with the union
    assert earmarked["unspent"]["fen"] == programme.outstanding == ctx.vouchers.balance(pid, s0) == 50_00
    assert earmarked["other_spent_inside"]["fen"] == 0
    (line,) = rep["by_tenant"]
    assert line["earmarked_spent"]["fen"] == 50_00 - bill["voucher_fen"]


def test_another_institutions_key_reads_none_of_the_parks_statements_refunds_or_robot(api: Api) -> None:
    """Red team 8 MEDIUM-4: institution 2's operator key read institution 1's park file and report,
    a park merchant's statement and refunds, and ran the spot-check robot. Each is a 403
    ``institution-scope`` now (listing refunds needs a merchant of its own: 422); the platform's
    keys (the unbound operator key, the auditor) still read all."""
    from services.common.refunds import beijing_day

    tag = uuid.uuid4().hex[:6]
    spec = _small_park(api, tag)
    assert api.operator.post("/v1/parks", json=spec).status_code == 201
    canteen = spec["merchants"][0]["wallet"]
    day = beijing_day(datetime.now(UTC))
    other = _other_institution_operator(api)
    reads = [
        f"/v1/parks/{spec['id']}",
        f"/v1/parks/{spec['id']}/report",
        f"/v1/merchants/{canteen}/statements/{day}",
        f"/v1/refunds?merchant={canteen}",
        f"/v1/spot-checks/{day}",
    ]
    for path in reads:
        r = other.get(path)
        assert r.status_code == 403 and problem_type(r) == "institution-scope", (path, r.text)
        assert api.auditor.get(path).status_code == 200, path
        assert api.operator.get(path).status_code == 200, path
    r = other.get("/v1/refunds")
    assert r.status_code == 422 and problem_type(r) == "merchant-required", r.text
    r = other.post("/v1/spot-checks/run")
    assert r.status_code == 403 and problem_type(r) == "institution-scope", r.text
