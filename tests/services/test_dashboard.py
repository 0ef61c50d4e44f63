"""The operator's live dashboard: its access rules over HTTP, its figures against the API, and the
page in a real headless Chromium (Debian's ``chromium``, driven by Playwright): it loads with no
console errors, shows the API's numbers, draws its chart and refreshes when the chain moves."""

from __future__ import annotations

import io
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from services.common import humanize, i18n
from services.common.keys import hash_key
from services.common.models import ApiKey
from services.operator import signin
from services.operator.models import DashboardSignIn
from tests.services.conftest import Api
from tests.services.test_operator_api import assert_problem

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium at /usr/bin/chromium: install Debian's package (apt-get install -y chromium)",
)
DAY = 86_400
GROCERY, RESTAURANT, GYM = 5411, 5812, 7997


def yuan(fen: int) -> str:
    """As the page writes amounts: ¥1,234.56."""
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


@dataclass
class Activity:
    alice: str
    grocery: str
    restaurant: str
    gym: str
    package_id: int
    batch: str
    collective_id: int
    paid_to: dict[int, int]  # category -> fen paid to merchants of it
    voucher_spent: dict[int, int]  # category -> fen of vouchers spent (empty without the contract)


def _ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def activity(api: Api) -> Activity:
    """Wallets, issuance, merchant payments, a prepaid package, a paid payroll and a collective."""
    grocery = api.new_wallet(kind="merchant", tier=2, category=GROCERY, name="Grocer")
    restaurant = api.new_wallet(kind="merchant", tier=2, category=RESTAURANT, name="Canteen")
    gym = api.new_wallet(kind="merchant", tier=2, category=GYM, name="Gym")
    alice = api.new_wallet(tier=3, name="alice")
    _ok(api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 5_000_00}))
    _ok(api.post("operator", "/v1/transfers", {"from": alice, "to": grocery, "amount_fen": 123_45}))
    _ok(api.post("operator", "/v1/transfers", {"from": alice, "to": restaurant, "amount_fen": 67_80}))
    _ok(api.post("operator", "/v1/transfers", {"from": alice, "to": grocery, "amount_fen": 10_00}))

    _ok(api.post("regulator", "/v1/prepaid/merchants", {"merchant": gym, "supervised_bps": 10_000}))
    expires = datetime.fromtimestamp(time.time() + 30 * DAY, UTC).isoformat()
    package = {
        "consumer": alice,
        "merchant": gym,
        "sessions": 10,
        "unit_price_fen": 100_00,
        "expires_at": expires,
        "cancellation_fee_fen": 0,
    }
    r = _ok(api.post("operator", "/v1/prepaid/packages", package), 201)
    (event,) = [e for e in r["result"]["events"] if e["name"] == "PackagePrepaid"]
    package_id = int(event["args"]["id"])
    _ok(api.post("operator", f"/v1/prepaid/packages/{package_id}/consume", {"sessions": 3}))

    employer = api.new_wallet(kind="institution", tier=1, name="Town clinic")
    _ok(api.post("operator", "/v1/issuance", {"to": employer, "amount_fen": 100_000_00}))
    checker_wallet = api.new_wallet(tier=2, name="finance officer")
    key = _ok(api.admin.post("/v1/api-keys", json={"role": "checker", "wallet": checker_wallet}), 201)["key"]
    officer = {"account": checker_wallet, "role": "checker"}
    _ok(api.post("operator", f"/v1/disbursements/payers/{employer}/officers", officer))
    workers = [api.new_wallet(tier=2, name=f"nurse {i}") for i in range(2)]
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    batch = {
        "reference": f"dash-{uuid.uuid4().hex[:8]}",
        "payer": employer,
        "purpose": "salary",
        "ends_at": datetime.fromtimestamp(now + 30 * DAY, UTC).isoformat(),
        "unit": "fen",
        "rows": [{"recipient": w, "amount": 2_500_00 + i} for i, w in enumerate(workers)],
    }
    ref = _ok(api.post("operator", "/v1/disbursements", batch), 201)["reference"]
    headers = {"X-API-Key": key, "Idempotency-Key": str(uuid.uuid4())}
    _ok(api.admin.post(f"/v1/disbursements/{ref}/approve", headers=headers))
    _ok(api.operator.post(f"/v1/disbursements/{ref}/execute", json={"push": "all"}), 202)
    deadline = time.monotonic() + 60
    while api.operator.get(f"/v1/disbursements/{ref}").json()["status"] == "executing":
        assert time.monotonic() < deadline, "the batch did not finish"
        time.sleep(0.1)

    officers = [api.new_wallet(tier=2, name=n) for n in ("chair", "member")]
    collective = {
        "name": f"Qingshui {uuid.uuid4().hex[:6]}",
        "officers": [{"account": o, "role": "committee"} for o in officers],
        "tiers": [{"max_amount_fen": 1_000_000_00, "committee": 1}],
        "proposal_lifetime_s": 30 * DAY,
        "year": 2025,
        "lines": [{"name": "roads", "budget_fen": 80_000_00}, {"name": "welfare", "budget_fen": 9_000_00}],
    }
    cid = int(_ok(api.post("regulator", "/v1/collectives", collective), 201)["collective_id"])
    paid_to = {GROCERY: 133_45, RESTAURANT: 67_80, GYM: 3 * 100_00}  # the gym: 3 sessions released
    voucher_spent = {}
    if "VoucherProgrammes" in api.app.state.ctx.manifest.contracts:
        voucher_spent = spend_a_voucher(api, alice, grocery)
        paid_to[GROCERY] += voucher_spent[GROCERY]  # the programme paid the grocer in digital cash
    return Activity(alice, grocery, restaurant, gym, package_id, ref, cid, paid_to, voucher_spent)


def spend_a_voucher(api: Api, holder: str, merchant: str) -> dict[int, int]:
    """No voucher routes yet: an institution creates a programme through the chain client with its
    custodial key, grants ``holder`` 50 yuan, and ``holder`` spends 80.00 of it at ``merchant``."""
    from chain.clients.vouchers import Grant, Mode, Terms, VoucherClient, programme_name

    ctx = api.app.state.ctx
    issuer = api.new_wallet(kind="institution", tier=1, name="Commerce bureau")
    _ok(api.post("operator", "/v1/issuance", {"to": issuer, "amount_fen": 1_000_00}))
    vouchers = VoucherClient(ctx.w3, ctx.manifest, ctx.tx)
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    terms = Terms(programme_name("spring vouchers"), Mode.GRANT_LIST, now, now + 30 * DAY, 1_000_00, 500_00)
    pid, _ = vouchers.create(ctx.custodial(issuer), terms, [GROCERY, RESTAURANT])
    vouchers.grant(ctx.custodial(issuer), pid, [Grant(holder, 500_00)])
    vouchers.spend(ctx.custodial(holder), pid, merchant, 80_00)
    return {GROCERY: 80_00}


def data(api: Api, role: str = "auditor") -> dict[str, Any]:
    return _ok(api.clients[role].get("/dashboard/data"))


# -- HTTP --------------------------------------------------------------------------------------


class TestAccess:
    def test_the_page_is_public_and_carries_no_data(self, api: Api, activity: Activity) -> None:
        r = api.anonymous.get("/dashboard")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert r.headers["cache-control"] == "no-store"
        supply = data(api)["token"]["supply_fen"]
        for secret in (activity.grocery, activity.batch, str(supply), yuan(supply)):
            assert secret not in r.text

    def test_the_static_files_are_served_and_nothing_else(self, api: Api) -> None:
        for name, marker in (
            ("chart.js", "Chart"),
            ("dashboard.js", "xcpayDashboard"),
            ("dashboard.css", "{"),
        ):
            r = api.anonymous.get(f"/dashboard/static/{name}")
            assert r.status_code == 200 and marker in r.text, name
        assert (
            api.anonymous.get("/dashboard/static/chart.js")
            .headers["content-type"]
            .startswith("text/javascript")
        )
        for name in ("index.html", "..%2Fdashboard.py", "../../routes/dashboard.py", "package.json"):
            assert api.anonymous.get(f"/dashboard/static/{name}").status_code == 404, name

    def test_the_data_needs_a_reading_key(self, api: Api) -> None:
        assert_problem(api.anonymous.get("/dashboard/data"), 401, "missing-api-key")
        bad = api.anonymous.get("/dashboard/data", headers={"X-API-Key": "xcp_not_a_key"})
        assert_problem(bad, 401, "invalid-api-key")
        for role in ("merchant", "checker", "admin"):
            assert_problem(api.clients[role].get("/dashboard/data"), 403, "forbidden-role")
        for role in ("auditor", "operator", "regulator"):
            assert api.clients[role].get("/dashboard/data").status_code == 200, role

    def test_the_data_route_is_in_the_openapi_document_and_the_page_is_not(self, api: Api) -> None:
        paths = api.anonymous.get("/openapi.json").json()["paths"]
        assert "/dashboard/data" in paths and "/dashboard" not in paths


class TestFigures:
    def test_the_figures_equal_the_api_and_the_chain(self, api: Api, activity: Activity) -> None:
        d = data(api)
        report = _ok(api.auditor.get("/v1/audit/reconciliation"))
        # (no verdict here: the voucher spending is signed through the chain client, without operations)
        assert d["token"]["supply_fen"] == report["totals"]["supply_fen"]
        assert d["chain"]["latest_block"] == api.w3.eth.block_number
        assert d["blocks"][0]["number"] == d["chain"]["latest_block"] and len(d["blocks"]) == 8
        assert d["events"]["total"] == report["counts"]["indexed_events"]
        assert [e["block_number"] for e in d["events"]["latest"]] == sorted(
            (e["block_number"] for e in d["events"]["latest"]), reverse=True
        )

        package = _ok(api.auditor.get(f"/v1/prepaid/packages/{activity.package_id}"))
        prepaid = d["prepaid"]
        assert (prepaid["deposited_fen"], prepaid["released_fen"], prepaid["held_fen"]) == (
            package["deposited_fen"],
            package["released_fen"],
            package["held_fen"],
        )
        assert prepaid["held_fen"] == prepaid["escrow_balance_fen"] == 7 * 100_00
        assert (prepaid["packages"], prepaid["merchants"]) == (1, 1)

        batch = _ok(api.auditor.get(f"/v1/disbursements/{activity.batch}"))
        (shown,) = [b for b in d["disbursements"]["latest"] if b["reference"] == activity.batch]
        assert (shown["rows_done"], shown["rows_total"], shown["status"]) == (2, 2, batch["status"])
        assert shown["chain"]["paid_fen"] == batch["chain"]["paid_fen"] == 5_000_01
        assert shown["chain"]["exceptions_fen"] == batch["chain"]["exceptions_fen"] == 0
        assert d["disbursements"]["paid_fen"] == 5_000_01 and d["disbursements"]["batches"] == 1

        (collective,) = d["collectives"]["latest"]
        assert collective["id"] == activity.collective_id and collective["year"] == 2025
        lines = [(ln["name"], ln["budget_fen"], ln["spent_fen"]) for ln in collective["lines"]]
        assert lines == [("roads", 80_000_00, 0), ("welfare", 9_000_00, 0)]

    def test_spending_by_category_counts_what_merchants_were_paid(self, api: Api, activity: Activity) -> None:
        s = data(api)["spending_by_category"]
        shown = dict(zip(s["categories"], s["merchant_payments_fen"], strict=True))
        assert shown == activity.paid_to
        assert s["labels"][s["categories"].index(GROCERY)] == "5411 grocery"
        vouchers = data(api)["vouchers"]
        if vouchers is None:  # no voucher contract in this deployment
            assert s["voucher_spent_fen"] is None
        else:
            assert "error" not in vouchers, vouchers
            spent = dict(zip(s["categories"], s["voucher_spent_fen"], strict=True))
            assert {c: v for c, v in spent.items() if v} == activity.voucher_spent
            by_category = vouchers["spent_by_category_fen"]  # every allowed category, 0 when unspent
            assert by_category == {str(GROCERY): 80_00, str(RESTAURANT): 0}
            (programme,) = vouchers["latest"]
            assert (programme["name"], programme["budget_fen"], programme["granted_fen"]) == (
                "spring vouchers",
                1_000_00,
                500_00,
            )
            assert programme["spent_fen"] == programme["granted_fen"] - programme["outstanding_fen"] == 80_00
            assert vouchers["held_fen"] == 1_000_00 - 80_00

    def test_the_latest_events_read_as_a_person_would(self, api: Api, activity: Activity) -> None:
        _ok(api.post("operator", "/v1/issuance", {"to": activity.alice, "amount_fen": 12_34}))
        _ok(
            api.post(
                "operator",
                "/v1/transfers",
                {"from": activity.alice, "to": activity.grocery, "amount_fen": 12_34},
            )
        )
        activity.paid_to[GROCERY] += 12_34  # the later tests see this payment too
        latest = data(api)["events"]["latest"]
        transfer = latest[0]
        # the issuance's own event (the two tiers' book records it beside, as InstitutionIssued)
        issuance = next(e for e in latest[1:] if e["contract"] == "DigitalCash")
        assert any(e["name"] == "InstitutionIssued" and e["amount_fen"] == 12_34 for e in latest[1:])
        block = api.w3.eth.get_block(transfer["block_number"])
        assert (transfer["kind"], transfer["amount_fen"], transfer["timestamp"]) == (
            "Transfer",
            12_34,
            int(block["timestamp"]),
        )
        assert [(p["role"], p["address"], p["name"]) for p in transfer["parties"]] == [
            ("from", activity.alice, "alice"),
            ("to", activity.grocery, "Grocer"),
        ]
        assert issuance["contract"] == "DigitalCash" and issuance["name"] in ("Transfer", "Issued")
        if issuance["name"] == "Transfer":
            assert issuance["kind"] == "Issued"  # from the zero address: an issuance, not a payment
        assert issuance["amount_fen"] == 12_34

    def test_optional_families_follow_the_manifest(self, api: Api) -> None:
        d = data(api)
        contracts = set(d["chain"]["contracts"])
        assert (d["vouchers"] is not None) == ("VoucherProgrammes" in contracts)
        assert (d["hardwallet"] is not None) == ("HardWalletSettlement" in contracts)
        for name in ("token", "blocks", "events", "prepaid", "disbursements", "collectives", "payment_codes"):
            assert d[name] is not None and "error" not in d[name], (name, d[name])
        if d["hardwallet"] is not None:
            assert "error" not in d["hardwallet"], d["hardwallet"]
            assert d["hardwallet"]["cards"] == 0 and d["hardwallet"]["settled_fen"] == 0


# -- the page in Chromium ----------------------------------------------------------------------


@dataclass
class Browser:
    page: Any
    console_errors: list[str]
    lang: str = "en"

    def t(self, english: str) -> str:
        """What the page says for ``english`` in this tab's language."""
        return i18n.ui(english, i18n.ZH if self.lang == "zh-CN" else i18n.EN)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


@pytest.fixture(params=["en", "zh-CN"])
def lang(request: pytest.FixtureRequest) -> str:
    """The browser's language: every page test runs in English and in Chinese (Accept-Language)."""
    return str(request.param)


@pytest.fixture
def tab(chromium: Any, lang: str) -> Iterator[Browser]:
    context = chromium.new_context(viewport={"width": 1280, "height": 1600}, locale=lang)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    yield Browser(page, errors, lang)
    context.close()


# Functions, not expressions: the page's CSP forbids eval, which Playwright uses for expressions.
POLLED = "() => window.xcpayDashboard !== undefined && window.xcpayDashboard.polls >= 1"


def sign_in(tab: Browser, api: Api, role: str = "auditor") -> None:
    page = tab.page
    page.goto(f"{api.url}/dashboard")
    page.wait_for_selector("#login-form")
    page.fill("#api-key", api.clients[role].headers["X-API-Key"])
    page.click("#connect")
    page.wait_for_function(POLLED)


def fen_of(tab: Browser, selector: str) -> tuple[int, str]:
    el = tab.page.locator(selector)
    return int(el.get_attribute("data-fen") or "-1"), el.inner_text()


BEIJING_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")


def assert_events_readable(tab: Browser) -> None:
    """The latest events as the page rendered them: Beijing time, the kind by name in the tab's
    language, the parties by display name, the amount in yuan; no raw JSON."""
    page = tab.page
    shown = page.evaluate("() => window.xcpayDashboard.data.events.latest")
    labels = i18n.event_labels(i18n.ZH if tab.lang == "zh-CN" else i18n.EN)
    rows = page.locator("#events tr")
    assert rows.count() == len(shown) > 0
    for i, e in enumerate(shown):
        cells = rows.nth(i).locator("td")
        assert cells.nth(0).inner_text() == humanize.beijing(e["timestamp"]), e
        assert BEIJING_ISO.match(cells.nth(0).inner_text())
        assert cells.nth(1).inner_text() == labels.get(e["kind"], f"{e['contract']}.{e['name']}")
        if e["amount_fen"] is not None:
            assert cells.nth(3).get_attribute("data-fen") == str(e["amount_fen"])
            assert cells.nth(3).inner_text() == yuan(e["amount_fen"])
        for p in e["parties"]:
            if p["name"]:
                assert p["name"] in cells.nth(2).inner_text(), (p, cells.nth(2).inner_text())
    text = page.inner_text("#events")
    assert "{" not in text and '":' not in text, "raw JSON in the events table"


@needs_chromium
class TestPage:
    def test_the_page_shows_the_apis_figures_without_console_errors(
        self, api: Api, activity: Activity, tab: Browser
    ) -> None:
        sign_in(tab, api)
        page = tab.page
        d = data(api)
        supply = d["token"]["supply_fen"]
        assert fen_of(tab, "#supply") == (supply, yuan(supply))
        assert page.inner_text("#wallets") == str(d["token"]["wallets"])
        assert page.inner_text("#chain-id") == str(d["chain"]["chain_id"])
        p = d["prepaid"]
        for name in ("deposited", "held", "released", "refunded"):
            assert fen_of(tab, f"#prepaid-{name}") == (p[f"{name}_fen"], yuan(p[f"{name}_fen"])), name
        assert page.inner_text("#prepaid-packages") == "1"
        assert fen_of(tab, "#disburse-paid") == (5_000_01, "¥5,000.01")
        row = page.locator(f'#batches tr[data-reference="{activity.batch}"]')
        assert row.locator("td").nth(3).inner_text().strip() == "2 / 2"
        assert int(row.locator("td").nth(5).get_attribute("data-fen") or "-1") == 5_000_01
        assert page.locator("#budget-lines tr").count() == 2
        assert "roads" in page.inner_text("#budget-lines")
        assert page.locator("#blocks tr").count() == 8
        assert page.locator("#events tr").count() == 15
        assert_events_readable(tab)
        assert page.get_attribute("html", "lang") == tab.lang
        assert page.inner_text("header h1") == tab.t("xcpay operator dashboard")
        assert page.inner_text("#prepaid-card h2") == tab.t("Prepaid escrow")
        assert page.is_visible("#voucher-card") == (d["vouchers"] is not None)
        assert page.is_visible("#hardwallet-card") == (d["hardwallet"] is not None)
        assert page.is_hidden("#section-errors") and page.is_hidden("#login")
        assert page.get_attribute("#status", "data-state") == "live"
        assert tab.console_errors == []

    def test_the_chart_is_drawn_from_the_spending_by_category(
        self, api: Api, activity: Activity, tab: Browser
    ) -> None:
        sign_in(tab, api)
        chart = tab.page.evaluate(
            """() => {
              const canvas = document.getElementById('category-chart');
              const chart = Chart.getChart(canvas);
              const {width, height} = canvas;
              const pixels = canvas.getContext('2d').getImageData(0, 0, width, height).data;
              let drawn = 0, blue = 0;
              for (let i = 0; i < pixels.length; i += 4) {
                if (pixels[i + 3] > 0) drawn++;
                if (pixels[i] === 0x3b && pixels[i + 1] === 0x7d && pixels[i + 2] === 0xd8) blue++;
              }
              return {
                exists: chart !== undefined && chart === window.xcpayDashboard.chart,
                labels: chart.data.labels,
                data: chart.data.datasets[0].data,
                vouchers: chart.data.datasets.length > 1 ? chart.data.datasets[1].data : null,
                width, height, drawn, blue,
              };
            }"""
        )
        assert chart["exists"] and chart["width"] > 100 and chart["height"] > 100
        assert chart["labels"] == [
            f"5411 {tab.t('grocery')}",
            f"5812 {tab.t('restaurant')}",
            f"7997 {tab.t('sport clubs')}",
        ]
        assert chart["data"] == [v / 100 for _, v in sorted(activity.paid_to.items())]
        assert chart["drawn"] > 1_000, "the canvas is blank"
        assert chart["blue"] > 200, "no bars of the merchant-payments colour"
        if activity.voucher_spent:
            assert chart["vouchers"] == [
                activity.voucher_spent.get(c, 0) / 100 for c in sorted(activity.paid_to)
            ]
        else:
            assert chart["vouchers"] is None
        assert tab.console_errors == []

    def test_the_page_refreshes_when_the_chain_moves(
        self, api: Api, activity: Activity, tab: Browser
    ) -> None:
        sign_in(tab, api)
        before = data(api)["token"]["supply_fen"]
        assert fen_of(tab, "#supply")[0] == before
        _ok(api.post("operator", "/v1/issuance", {"to": activity.alice, "amount_fen": 42_00}))
        pay = {"from": activity.alice, "to": activity.grocery, "amount_fen": 42_00}
        _ok(api.post("operator", "/v1/transfers", pay))
        activity.paid_to[GROCERY] += 42_00  # the later tests see this payment too
        after = data(api)["token"]["supply_fen"]
        assert after == before + 42_00
        tab.page.wait_for_function(
            "(fen) => document.getElementById('supply').dataset.fen === fen", arg=str(after), timeout=15_000
        )
        assert fen_of(tab, "#supply") == (after, yuan(after))
        shown = tab.page.evaluate("() => window.xcpayDashboard.chart.data.datasets[0].data")
        assert shown[0] == activity.paid_to[GROCERY] / 100  # the payment to the grocer is charted
        assert tab.console_errors == []

    def test_a_refused_key_is_forgotten_and_asked_for_again(self, api: Api, tab: Browser) -> None:
        page = tab.page
        page.goto(f"{api.url}/dashboard")
        page.fill("#api-key", api.clients["merchant"].headers["X-API-Key"])
        page.click("#connect")
        page.wait_for_selector("#login-error:not([hidden])")
        assert tab.t("The key was refused") in page.inner_text("#login-error")
        assert page.evaluate("() => sessionStorage.getItem('xcpay.dashboard.apiKey')") is None
        assert page.is_hidden("#board")
        # the only console error is the browser's note of the 403 response itself
        assert all("403" in e for e in tab.console_errors), tab.console_errors

    def test_the_key_survives_a_reload_in_the_same_tab_and_can_be_forgotten(
        self, api: Api, tab: Browser
    ) -> None:
        sign_in(tab, api)
        tab.page.reload()
        tab.page.wait_for_function(POLLED)
        assert tab.page.is_visible("#board")
        tab.page.click("#sign-out")
        assert tab.page.is_visible("#login") and tab.page.is_hidden("#board")
        assert tab.page.evaluate("() => sessionStorage.getItem('xcpay.dashboard.apiKey')") is None
        assert tab.console_errors == []


# -- sign-in links, the language switch, Chinese glyphs -------------------------------------------


def new_link_token(api: Api, ttl: timedelta = signin.LINK_TTL) -> str:
    with api.app.state.ctx.db.session() as s:
        return signin.create_link_token(s, label="test", ttl=ttl)


class TestSignInLink:
    def test_a_link_is_spent_by_its_first_use_and_stored_hashed(self, api: Api) -> None:
        token = new_link_token(api)
        with api.app.state.ctx.db.session() as s:
            (row,) = s.scalars(
                select(DashboardSignIn).where(DashboardSignIn.token_hash == hash_key(token))
            ).all()
            assert row.used_at is None and row.role == "auditor"
            stored = [str(getattr(row, c.name)) for c in DashboardSignIn.__table__.columns]
            assert not any(token in v for v in stored), "the token is stored in the clear"
        first = api.anonymous.get("/dashboard/login", params={"token": token})
        assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
        key = re.search(r'<meta name="xcpay-session" content="([^"]+)">', first.text)
        assert key is not None
        assert api.anonymous.get("/dashboard/data", headers={"X-API-Key": key.group(1)}).status_code == 200
        with api.app.state.ctx.db.session() as s:
            row = s.scalars(
                select(DashboardSignIn).where(DashboardSignIn.token_hash == hash_key(token))
            ).one()
            given = s.get(ApiKey, row.api_key_id)
            assert row.used_at is not None and given is not None and given.role == "auditor"
            assert given.expires_at is not None and given.expires_at <= row.used_at + signin.SESSION_TTL
        second = api.anonymous.get("/dashboard/login", params={"token": token})
        assert second.status_code == 410 and "used already or has expired" in second.text
        assert "xcpay-session" not in second.text
        zh = api.anonymous.get(
            "/dashboard/login", params={"token": token}, headers={"Accept-Language": "zh-CN"}
        )
        assert zh.status_code == 410 and "此登录链接已使用或已过期" in zh.text

    def test_an_expired_or_unknown_link_gives_no_key(self, api: Api) -> None:
        expired = new_link_token(api, ttl=timedelta(seconds=-1))
        for token in (expired, "xcl_" + "A" * 43, "", "x" * 500):
            r = api.anonymous.get("/dashboard/login", params={"token": token})
            assert r.status_code == 410 and "xcpay-session" not in r.text, token


@needs_chromium
class TestSignInAndLanguage:
    def test_the_link_signs_the_tab_in_and_a_second_use_is_refused(self, api: Api, tab: Browser) -> None:
        token = new_link_token(api)
        page = tab.page
        page.goto(f"{api.url}/dashboard/login?token={token}")
        page.wait_for_function(POLLED)
        assert page.is_visible("#board") and page.is_hidden("#login")
        assert page.url == f"{api.url}/dashboard"  # the spent link is gone from the address bar
        assert page.locator('meta[name="xcpay-session"]').count() == 0
        assert (page.evaluate("() => sessionStorage.getItem('xcpay.dashboard.apiKey')") or "").startswith(
            "xcp_"
        )
        other = page.context.new_page()
        response = other.goto(f"{api.url}/dashboard/login?token={token}")
        assert response is not None and response.status == 410
        assert other.inner_text("#link-refused h1") == tab.t(
            "This sign-in link was used already or has expired"
        )
        other.close()
        assert all("410" in e for e in tab.console_errors), tab.console_errors

    def test_the_switch_changes_the_language_and_is_remembered(self, api: Api, tab: Browser) -> None:
        page = tab.page
        page.goto(f"{api.url}/dashboard")
        assert page.get_attribute("html", "lang") == tab.lang
        other = "en" if tab.lang == "zh-CN" else "zh"
        page.click(f"#lang-{other}")
        page.wait_for_load_state()
        chosen = "zh-CN" if other == "zh" else "en"
        assert page.get_attribute("html", "lang") == chosen
        page.goto(f"{api.url}/dashboard")  # no ?lang: the choice is remembered over Accept-Language
        assert page.get_attribute("html", "lang") == chosen
        assert page.get_attribute(f"#lang-{other}", "aria-current") == "true"
        words = i18n.ui("Latest events", chosen)
        assert words in page.inner_text("main", timeout=1_000) or words in page.content()
        assert tab.console_errors == []


# Every character distinct, so that boxes (one .notdef glyph for all) cannot pass for them.
CHINESE = "预付资金监管代发工消费红包硬钱"
NO_GLYPH = "\U000e01ef\U0010fffd"  # code points no font draws: the box the page shows for a missing glyph


@needs_chromium
def test_chinese_text_renders_with_a_cjk_font_not_boxes(api: Api, chromium: Any) -> None:
    """A screenshot check: each character of a Chinese string, drawn in the page's own font stack,
    is a distinct glyph with ink, unlike the box drawn for code points no font has; and the font
    that drew them is a CJK one (Noto Sans CJK in CI: Debian's fonts-noto-cjk). Without a CJK font
    every character is the same .notdef box, the box of ``NO_GLYPH``, and this fails."""
    context = chromium.new_context(viewport={"width": 900, "height": 400}, locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{api.url}/dashboard?lang=zh")
        page.evaluate(
            """([chars, missing]) => {
              const box = document.createElement('div');
              box.id = 'glyphs';
              for (const c of [...chars, ...missing]) {
                const span = document.createElement('span');
                span.className = 'glyph';
                span.style.cssText = 'display:inline-block;font-size:40px;line-height:48px;padding:2px;'
                  + 'background:#fff;color:#000';
                span.textContent = c;
                box.appendChild(span);
              }
              document.body.prepend(box);
            }""",
            [list(CHINESE), list(NO_GLYPH)],
        )
        spans = page.locator("#glyphs .glyph")
        shots = [spans.nth(i).screenshot() for i in range(spans.count())]
        chinese, boxes = shots[: len(CHINESE)], shots[len(CHINESE) :]

        def ink(png: bytes) -> int:
            image = Image.open(io.BytesIO(png)).convert("L")
            return sum(1 for v in image.tobytes() if v < 128)

        assert len(set(CHINESE)) == len(CHINESE)
        assert all(ink(s) > 40 for s in chinese), "a character drew (almost) nothing"
        assert len(set(chinese)) == len(CHINESE), "some characters drew the same glyph: boxes?"
        assert not set(chinese) & set(boxes), "a character drew the box of a missing glyph"
        cdp = context.new_cdp_session(page)
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument")["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "#glyphs"})["nodeId"]
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
        cjk = [f for f in fonts if "CJK" in f["familyName"] or "Han" in f["familyName"]]
        assert cjk and sum(f["glyphCount"] for f in cjk) >= len(CHINESE), fonts
    finally:
        context.close()
