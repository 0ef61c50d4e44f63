"""`make demo`: a scripted day in Xiangcheng district, played over HTTP only against a private stack
(a local anvil node, the contracts, the operator service on SQLite), narrated in yuan.

People, merchants and institutions are registered across tiers and given cash; a gym takes prepaid
packages under supervision, closes, and its customers are refunded; a gig platform pays its workers
by batch with maker-checker approval; residents pay the canteen's payment code, one from a
custodial wallet and one with their own signed transaction; the district runs a voucher campaign
(the rest returns at expiry); a union member pays lunch with a signed welfare voucher; a village
collective approves and pays a road repair; elderly residents pay offline with cards; a gig worker
signs in to their own channel, sees the wage, revokes a quick-pay mandate, reports a lost card and,
after losing the phone, gets a new wallet (operator's recovery, regulator's approval) holding the
same balance; and the auditor's reconciliation gives its verdict.
Every step checks what the system answered and what the balances became, and the demo stops with
exit 1 at the first surprise. The demo moves the chain's clock once, to the end of the
voucher campaign.

    .venv/bin/python scripts/demo.py [--scale small|full] [--lang en|zh]

``DEMO_LANG=zh`` (or ``--lang zh``) narrates in Chinese, in the glossary's terms
(services/common/i18n.py), and asks the services for their answers in zh-CN; English by default.

``full``: 1,000 gig workers, a 10,000-winner voucher campaign of which 100 claim and spend today;
``small`` (what ``make test`` runs): 20 workers, 200 winners, 8 spenders.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from eth_account import Account  # noqa: E402

from chain import devtools  # noqa: E402
from chain.accounts import INSTITUTION_DEV_ACCOUNTS, dev_account  # noqa: E402
from chain.backends import http  # noqa: E402
from chain.clients.devices import DeviceDomain  # noqa: E402
from chain.clients.hardwallet import CardForm, PaymentDomain  # noqa: E402
from chain.clients.token import CashClient  # noqa: E402
from chain.clients.vouchers import VoucherClient  # noqa: E402
from chain.manifest import Manifest  # noqa: E402
from chain.processes import free_port  # noqa: E402
from scripts.stack import (  # noqa: E402
    database,
    deploy,
    gateway_service,
    local_node,
    operator_service,
    service_env,
    tail_of,
)
from services.common import humanize  # noqa: E402
from wallets.hardwallet import HardWallet  # noqa: E402

ADMIN_KEY = "xcp_demo_admin_" + uuid.uuid4().hex
# Opens the hard-wallet simulator's export door, on purpose, for the cloned-card chapter.
DEMO_ISSUER_SECRET = b"xcpay demo issuer: clones on purpose"
# workers paid by batch; voucher campaign winners (leaves) and how many of them claim and spend today.
SCALES = {
    "small": {"workers": 20, "winners": 200, "spenders": 8},
    "full": {"workers": 1_000, "winners": 10_000, "spenders": 100},
}


class DemoFailure(RuntimeError):
    """The system did something the script did not expect."""


def yuan(fen: int) -> str:
    return humanize.yuan(fen)


class Demo:
    def __init__(self, url: str, rpc: str, manifest: Path, gateway: str, lang: str = "en") -> None:
        self.lang = lang  # "en" or "zh": the narration's language and the answers' (Accept-Language)
        self.url = url
        self.gateway = gateway
        self.rpc = rpc
        self.manifest = manifest
        self.admin = httpx.Client(base_url=url, headers={"X-API-Key": ADMIN_KEY}, timeout=300)
        self.keys: dict[str, httpx.Client] = {}
        self.names: dict[str, str] = {}

    # -- narration -------------------------------------------------------------------------

    @contextmanager
    def chapter(self, title: str) -> Iterator[None]:
        print(f"\n== {title} ==", flush=True)
        started = time.monotonic()
        yield
        print(f"   ({time.monotonic() - started:.1f} s)", flush=True)

    def t(self, en: str, zh: str) -> str:
        """The narration's words in the demo's language."""
        return zh if self.lang == "zh" else en

    def say(self, text: str) -> None:
        print(f"   {text}", flush=True)

    def progress(self, label: str, done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        if sys.stdout.isatty():
            end = "\n" if done >= total else ""
            print(
                f"\r   {label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, flush=True
            )
        elif done >= total or done % max(total // 4, 1) == 0:  # a log, not a terminal: a few lines
            print(f"   {label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", flush=True)

    def expect(self, condition: bool, what: str) -> None:
        if not condition:
            raise DemoFailure(what)

    # -- HTTP ------------------------------------------------------------------------------

    def key(self, role: str, wallet: str | None = None) -> httpx.Client:
        body: dict[str, Any] = {"role": role, "label": f"demo {role}"}
        if wallet:
            body["wallet"] = wallet
        r = self.admin.post("/v1/api-keys", json=body)
        self.expect(r.status_code == 201, f"creating a {role} key: {r.status_code} {r.text}")
        return httpx.Client(base_url=self.url, headers={"X-API-Key": r.json()["key"]}, timeout=300)

    def at_gateway(self, client: httpx.Client) -> httpx.Client:
        """The same key, at the gateway (both services share the keys)."""
        return httpx.Client(
            base_url=self.gateway, headers={"X-API-Key": client.headers["X-API-Key"]}, timeout=300
        )

    def role(self, name: str) -> httpx.Client:
        if name not in self.keys:
            self.keys[name] = self.key(name)
        return self.keys[name]

    def call(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        body: Any = None,
        expect: int | tuple[int, ...] = (200, 201),
    ) -> Any:
        headers = {"Idempotency-Key": str(uuid.uuid4())} if method == "POST" else {}
        headers["Accept-Language"] = "zh-CN" if self.lang == "zh" else "en"
        r = client.request(method, path, json=body, headers=headers)
        wanted = (expect,) if isinstance(expect, int) else expect
        if r.status_code not in wanted:
            raise DemoFailure(f"{method} {path} answered {r.status_code}, expected {wanted}: {r.text[:600]}")
        return (
            r.json()
            if r.headers.get("content-type", "").startswith(("application/json", "application/problem"))
            else r
        )

    def post(self, role: str, path: str, body: Any = None, expect: int | tuple[int, ...] = (200, 201)) -> Any:
        return self.call(self.role(role), "POST", path, body, expect)

    def get(self, role: str, path: str) -> Any:
        return self.call(self.role(role), "GET", path, None, 200)

    def wallet(
        self, name: str, kind: str = "personal", tier: int = 3, category: int = 0, **extra: Any
    ) -> str:
        body: dict[str, Any] = {
            "kind": kind,
            "tier": tier,
            "display_name": name,
            "identity": f"demo-{uuid.uuid4()}",
        }
        if category:
            body["merchant_category"] = category
        body.update(extra)
        address = self.post("operator", "/v1/wallets", body)["request"].get("address") or extra["address"]
        self.names[address] = name
        return address

    def wallets(self, names: list[str], tier: int, label: str) -> list[str]:
        """Custodial personal wallets registered in bulk (``POST /v1/wallets/batch``, 200 to a
        transaction), a request per 200 so that the progress bar moves."""
        addresses: list[str] = []
        for start in range(0, len(names), 200):
            rows = [
                {"kind": "personal", "tier": tier, "display_name": name, "identity": f"demo-{uuid.uuid4()}"}
                for name in names[start : start + 200]
            ]
            answer = self.post("operator", "/v1/wallets/batch", {"wallets": rows})
            for row in answer["wallets"]:
                addresses.append(row["address"])
                self.names[row["address"]] = row["display_name"]
            self.progress(label, len(addresses), len(names))
        return addresses

    def balance(self, address: str) -> int:
        return int(self.get("auditor", f"/v1/wallets/{address}")["balance_fen"])

    def issue(self, to: str, fen: int) -> None:
        self.post("operator", "/v1/issuance", {"to": to, "amount_fen": fen})


# -- the day -------------------------------------------------------------------------------------


def play(demo: Demo, scale: dict[str, int]) -> None:
    d = demo
    in_30_days = (datetime.now(UTC) + timedelta(days=30)).isoformat()

    with d.chapter(
        d.t("Morning: the district opens wallets and issues digital cash", "上午：区里开立钱包、发行数字现金")
    ):
        residents = {
            name: d.wallet(name, tier=tier)
            for name, tier in (("Wang Fang", 2), ("Li Wei", 3), ("Zhang Min", 3))
        }
        elder = d.wallet("Chen Laoshi (anonymous tier 4)", tier=4)
        gym = d.wallet("Xiangcheng Fitness", kind="merchant", tier=2, category=7997)
        canteen = d.wallet("Yuanhe canteen", kind="merchant", tier=2, category=5812)
        platform = d.wallet("Gig platform", kind="institution", tier=1)
        finance = d.wallet("Platform finance officer", tier=2)
        for address in [*residents.values(), elder]:
            d.issue(address, 5_000_00)
        d.issue(platform, 2_000_000_00)
        d.say(
            d.t(
                f"{len(residents) + 1} residents, 2 merchants, 1 platform; "
                f"each resident holds {yuan(5_000_00)}",
                f"{len(residents) + 1} 位居民、2 家商户、1 个平台；每位居民持有 {yuan(5_000_00)}",
            )
        )
        d.expect(d.balance(elder) == 5_000_00, "the elder resident's balance")
        r = d.post("operator", "/v1/issuance", {"to": elder, "amount_fen": 6_000_00}, expect=422)
        d.say(
            d.t(
                f"issuing {yuan(6_000_00)} more to the tier-4 wallet is refused: {r['title']}",
                f"再向四类钱包发行 {yuan(6_000_00)} 被拒绝：{r['title']}",
            )
        )

    with d.chapter(
        d.t(
            "The gym sells prepaid packages under supervision (预付资金监管)",
            "健身房在监管下出售预付套餐（预付资金监管）",
        )
    ):
        d.post("regulator", "/v1/prepaid/merchants", {"merchant": gym, "supervised_bps": 10_000})
        packages = {}
        for name, address in residents.items():
            body = {
                "consumer": address,
                "merchant": gym,
                "sessions": 10,
                "unit_price_fen": 100_00,
                "expires_at": in_30_days,
            }
            op = d.post("operator", "/v1/prepaid/packages", body)
            (event,) = [e for e in op["result"]["events"] if e["name"] == "PackagePrepaid"]
            packages[name] = int(event["args"]["id"])
            d.post("operator", f"/v1/prepaid/packages/{packages[name]}/consume", {"sessions": 2})
        d.say(
            d.t(
                f"3 residents prepaid 10 sessions at {yuan(100_00)}; "
                "the money waits in escrow, not at the gym",
                f"3 位居民预付 10 节课，每节 {yuan(100_00)}；资金留在监管账户，不在健身房",
            )
        )
        d.say(
            d.t(
                f"each attended 2 sessions: the gym has received {yuan(d.balance(gym))}",
                f"每人上了 2 节课：健身房已收到 {yuan(d.balance(gym))}",
            )
        )
        d.expect(d.balance(gym) == 3 * 2 * 100_00, "the gym was paid for exactly the sessions attended")
        d.post("regulator", f"/v1/prepaid/merchants/{gym}/close")
        d.post("operator", f"/v1/prepaid/merchants/{gym}/refunds", {"offset": 0, "limit": 100})
        for name, address in residents.items():
            d.expect(d.balance(address) == 5_000_00 - 2 * 100_00, f"{name} got the unused sessions back")
        d.say(
            d.t(
                f"the gym closed; every customer got the 8 unused sessions back ({yuan(8 * 100_00)} each)",
                f"健身房关闭；每位顾客未用的 8 节课全部退回（每人 {yuan(8 * 100_00)}）",
            )
        )

    with d.chapter(
        d.t(
            f"The platform pays {scale['workers']:,} gig workers by batch (薪资发放), maker-checker",
            f"平台批量代发 {scale['workers']:,} 名灵活就业人员的工资（代发工资），经办与复核分离",
        )
    ):
        workers = d.wallets(
            [f"worker {i}" for i in range(scale["workers"])],
            tier=3,
            label=d.t("registering workers", "登记钱包"),
        )
        d.post(
            "operator",
            f"/v1/disbursements/payers/{platform}/officers",
            {"account": finance, "role": "checker"},
        )
        checker = d.key("checker", finance)
        ref = f"payroll-{datetime.now(UTC):%Y%m}-{uuid.uuid4().hex[:4]}"
        rows = [{"recipient": w, "amount": f"{180 + i % 50}.50"} for i, w in enumerate(workers)]
        body = {
            "reference": ref,
            "payer": platform,
            "purpose": "salary",
            "ends_at": in_30_days,
            "unit": "yuan",
            "rows": rows,
        }
        created = d.post("operator", "/v1/disbursements", body)
        total = yuan(created["total_fen"])
        d.say(
            d.t(
                f"batch {ref}: {created['rows_total']:,} rows, {total}, created by the operator (maker)",
                f"批次 {ref}：{created['rows_total']:,} 行，{total}，由运营方创建（经办）",
            )
        )
        own = d.key("checker", platform)
        r = d.call(own, "POST", f"/v1/disbursements/{ref}/approve", expect=403)
        d.say(
            d.t(
                f"the platform approving its own batch is refused: {r['title']}",
                f"平台复核自己的批次被拒绝：{r['title']}",
            )
        )
        d.call(checker, "POST", f"/v1/disbursements/{ref}/approve")
        d.say(
            d.t(
                "the finance officer (checker) approves: the total is locked in the contract",
                "财务人员（复核）批准：总额锁定在合约中",
            )
        )
        d.call(d.role("operator"), "POST", f"/v1/disbursements/{ref}/execute", {}, expect=202)
        while True:
            status = d.get("operator", f"/v1/disbursements/{ref}")
            d.progress(d.t("paying", "发放中"), status["rows_done"], status["rows_total"])
            if status["status"] != "executing":
                break
            time.sleep(0.3)
        d.expect(status["status"] == "executed", f"the payroll finished: {status}")
        d.expect(status["chain"]["paid_fen"] == created["total_fen"], "every worker was paid")
        d.expect(
            d.balance(workers[-1]) == int((180 + (len(workers) - 1) % 50) * 100 + 50), "the last worker's pay"
        )
        paid_workers = status["rows_by_status"].get("paid", 0)
        d.say(
            d.t(
                f"paid {yuan(status['chain']['paid_fen'])} to {paid_workers:,} workers",
                f"已向 {paid_workers:,} 人发放 {yuan(status['chain']['paid_fen'])}",
            )
        )

    with d.chapter(
        d.t(
            "Lunch: residents pay the canteen's payment code (聚合支付码)", "午餐：居民扫食堂的聚合支付码付款"
        )
    ):
        code = d.post(
            "operator",
            "/v1/payment-codes",
            {"merchant": canteen, "amount_fen": 18_50, "reference": "table-12"},
        )
        d.say(
            d.t("the canteen shows a bill as a QR code: ", "食堂把账单显示为二维码：")
            + f"{code['uri'][:60]}…"
        )
        d.post(
            "operator",
            f"/v1/payment-codes/{code['id']}/pay",
            {"form": "custodial", "payer": residents["Li Wei"]},
        )
        again = d.post(
            "operator",
            f"/v1/payment-codes/{code['id']}/pay",
            {"form": "custodial", "payer": residents["Zhang Min"]},
            expect=409,
        )
        d.say(
            d.t(
                f"Li Wei pays it from his wallet; Zhang Min trying to pay the same bill: {again['title']}",
                f"李伟用钱包付款；张敏再付同一张账单：{again['title']}",
            )
        )
        own_wallet = Account.create()
        d.wallet("Zhao Lei (self-custody)", tier=3, custody="self", address=own_wallet.address)
        d.issue(own_wallet.address, 200_00)
        static = d.post("operator", "/v1/payment-codes", {"merchant": canteen})
        raw = _signed_transfer(demo, own_wallet, canteen, 12_00)
        d.post(
            "operator",
            f"/v1/payment-codes/{static['id']}/pay",
            {"form": "signed-transaction", "signed_transaction": raw},
        )
        d.say(
            d.t(
                f"Zhao Lei signs a {yuan(12_00)} transfer on his own phone; the service relays it unchanged",
                f"赵磊在自己的手机上签名一笔 {yuan(12_00)} 的转账；服务原样转发上链",
            )
        )
        d.expect(d.balance(canteen) == 18_50 + 12_00, "the canteen received both payments")

    with d.chapter(
        d.t(
            f"The district's voucher campaign (消费红包): {scale['winners']:,} winners by lottery",
            f"区里的消费红包活动：摇号中签 {scale['winners']:,} 人",
        )
    ):
        office = d.wallet("District commerce office", kind="institution", tier=1)
        market = d.wallet("Huayuan supermarket", kind="merchant", tier=2, category=5411)
        cinema = d.wallet("Cinema (not in the programme)", kind="merchant", tier=2, category=7832)
        d.issue(office, scale["winners"] * 50_00)
        now = datetime.now(UTC)
        body = {
            "issuer": office,
            "name": "Xiangcheng spring vouchers",
            "mode": "grant-list",
            "budget_fen": scale["winners"] * 50_00,
            "per_person_cap_fen": 50_00,
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "expires_at": (now + timedelta(days=14)).isoformat(),
            "categories": [5411, 5812],
            "min_bill_fen": 100_00,
            "discount_fen": 20_00,
        }
        op = d.post("operator", "/v1/voucher-programs", body)
        pid = next(int(e["args"]["id"]) for e in op["result"]["events"] if e["name"] == "ProgrammeCreated")
        names = [f"resident {i}" for i in range(scale["spenders"])]
        spenders = d.wallets(
            names, tier=3, label=d.t("registering residents who will spend today", "登记今天消费的居民")
        )
        for i, resident in enumerate(spenders):
            d.issue(resident, 500_00)
            d.progress(d.t("issuing their cash", "发行数字现金"), i + 1, len(spenders))
        # The other winners stand for residents who never claim: their leaves stay unclaimed.
        others = [Account.create().address for _ in range(scale["winners"] - len(spenders))]
        rows = [{"recipient": r, "amount": "50"} for r in [*spenders, *others]]
        d.post("operator", f"/v1/voucher-programs/{pid}/campaign", {"unit": "yuan", "rows": rows})
        d.say(
            d.t(
                f"one transaction commits the whole campaign ({yuan(body['budget_fen'])}, 50 yuan each)",
                f"一笔交易提交整个活动（{yuan(body['budget_fen'])}，每人 50 元）",
            )
        )
        for i, resident in enumerate(spenders):
            d.post("operator", f"/v1/voucher-programs/{pid}/campaign/{i}/claim")
            d.post(
                "operator",
                f"/v1/voucher-programs/{pid}/spend",
                {"holder": resident, "merchant": market, "bill_fen": 120_00},
            )
            d.progress(
                d.t("claiming and spending 20 off 100", "领取并使用满 100 减 20"), i + 1, len(spenders)
            )
        refused = d.post(
            "operator",
            f"/v1/voucher-programs/{pid}/spend",
            {"holder": spenders[0], "merchant": cinema, "bill_fen": 120_00},
            expect=422,
        )
        d.say(
            d.t(f"a voucher at the cinema: {refused['title']}", f"在电影院使用消费红包：{refused['title']}")
        )
        d.expect(d.balance(market) == len(spenders) * 120_00, "the supermarket received every whole bill")
        devtools.increase_time(http(demo.rpc), 15 * 86_400)  # the demo's clock jumps past the expiry
        d.post("operator", f"/v1/voucher-programs/{pid}/close")
        report = d.get("auditor", f"/v1/voucher-programs/{pid}")
        t = report["totals_fen"]
        d.expect(report["conserved"] and t["outstanding"] == 0, f"the programme is closed and conserved: {t}")
        d.say(
            d.t(
                f"two weeks later: spent {yuan(t['spent'])}, returned to the office {yuan(t['returned'])}",
                f"两周后：已使用 {yuan(t['spent'])}，退回商务局 {yuan(t['returned'])}",
            )
        )

    with d.chapter(
        d.t(
            "The union's canteen welfare (工会福利): meals paid with a signed voucher",
            "工会的食堂福利（工会福利）：用签名的红包支付餐费",
        )
    ):
        union = d.wallet("Trade union", kind="institution", tier=1)
        d.issue(union, 10_000_00)
        now = datetime.fromtimestamp(int(http(demo.rpc).eth.get_block("latest")["timestamp"]), UTC)
        body = {
            "issuer": union,
            "name": "union welfare",
            "mode": "grant-list",
            "budget_fen": 10_000_00,
            "per_person_cap_fen": 500_00,
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "expires_at": (now + timedelta(days=30)).isoformat(),
            "categories": [5812, 5411, 8099],
        }
        op = d.post("operator", "/v1/voucher-programs", body)
        uid = next(int(e["args"]["id"]) for e in op["result"]["events"] if e["name"] == "ProgrammeCreated")
        phone = Account.create()  # a union member with a self-custody wallet on her phone
        member = d.wallet("Sun Li (union member)", tier=3, custody="self", address=phone.address)
        rows = [{"recipient": member, "amount": "300"}]
        d.post("operator", f"/v1/voucher-programs/{uid}/grants", {"unit": "yuan", "rows": rows})
        till = d.key("merchant", canteen)
        vouchers = VoucherClient(http(demo.rpc), Manifest.load(demo.manifest))
        deadline = int(now.timestamp()) + 3_600
        signature = "0x" + vouchers.sign_spend(phone, uid, canteen, 16_00, deadline).hex()
        body = {"holder": member, "bill_fen": 16_00, "deadline": deadline, "signature": signature}
        d.call(till, "POST", f"/v1/voucher-programs/{uid}/spend/signed", body)
        d.say(
            d.t(
                f"Sun Li signs a {yuan(16_00)} lunch on her phone at the canteen's till; the welfare pays it",
                f"孙丽在食堂收银台用手机签名 {yuan(16_00)} 的午餐；由工会福利支付",
            )
        )
        holding = d.get("auditor", f"/v1/voucher-programs/{uid}/holders/{member}")
        d.expect(holding["spent_fen"] == 16_00, "the meal came out of the welfare balance")

    with d.chapter(
        d.t(
            "A village collective approves and pays a road repair (三资监管)",
            "村集体审批并支付道路维修（三资监管）",
        )
    ):
        officers = {
            n: d.wallet(n, tier=2) for n in ("Secretary Liu", "Accountant Sun", "Committee member Gao")
        }
        keys = {n: d.key("officer", w) for n, w in officers.items()}
        builder = d.wallet("Qingshui road works", kind="merchant", tier=2, category=1771)
        body = {
            "name": "Qingshui village",
            "officers": [{"account": w, "role": "committee"} for w in officers.values()],
            "tiers": [{"max_amount_fen": 50_000_00, "committee": 2}],
            "proposal_lifetime_s": 30 * 86_400,
            "year": 2026,
            "lines": [{"name": "infrastructure", "budget_fen": 100_000_00}],
        }
        cid = int(d.post("regulator", "/v1/collectives", body)["collective_id"])
        lessee = d.wallet("Fish-pond lessee", kind="institution", tier=1)
        d.issue(lessee, 80_000_00)
        d.post(
            "operator",
            f"/v1/collectives/{cid}/income",
            {"payer": lessee, "amount_fen": 60_000_00, "memo": "pond lease"},
        )
        proposal = {
            "payee": builder,
            "amount_fen": 38_500_00,
            "line": 0,
            "purpose": "repair of the east road",
        }
        pid = int(
            d.call(keys["Secretary Liu"], "POST", f"/v1/collectives/{cid}/proposals", proposal)["proposal_id"]
        )
        own = d.call(
            keys["Secretary Liu"], "POST", f"/v1/collectives/{cid}/proposals/{pid}/approve", expect=403
        )
        d.say(
            d.t(
                f"the secretary proposes {yuan(38_500_00)}; approving it himself: {own['title']}",
                f"书记提出 {yuan(38_500_00)} 的支出提案；自己审批：{own['title']}",
            )
        )
        for name in ("Accountant Sun", "Committee member Gao"):
            d.call(keys[name], "POST", f"/v1/collectives/{cid}/proposals/{pid}/approve")
        d.call(keys["Secretary Liu"], "POST", f"/v1/collectives/{cid}/proposals/{pid}/execute")
        d.expect(d.balance(builder) == 38_500_00, "the road builder was paid")
        d.say(
            d.t(
                "two other committee members approve; the payment goes out with its evidence on record",
                "另外两名村委成员批准；款项支付，凭证上链留存",
            )
        )

    with d.chapter(
        d.t("Elderly residents pay offline with hard-wallet cards (硬钱包)", "老年居民用硬钱包卡离线支付")
    ):
        manifest = Manifest.load(demo.manifest)
        domain = PaymentDomain(manifest.chain_id, manifest.address("HardWalletSettlement"))
        gw = d.at_gateway(d.role("operator"))
        elders = {n: d.wallet(n, tier=2) for n in ("Grandma Zhou", "Grandpa Qian")}
        cards = {}
        for name, holder in elders.items():
            d.issue(holder, 1_000_00)
            card = HardWallet.issue(domain, form=CardForm.CARD, issuer_secret=DEMO_ISSUER_SECRET)
            d.call(gw, "POST", "/v1/cards", {"card": card.address, "holder": holder, "form": "card"})
            d.call(gw, "POST", f"/v1/cards/{card.address}/loads", {"amount_fen": 200_00})
            card.credit(200_00)
            cards[name] = card
        d.say(
            d.t(
                f"two elderly residents get IC cards loaded with {yuan(200_00)} each from their wallets",
                f"两位老人领取 IC 卡，各从钱包圈存 {yuan(200_00)}",
            )
        )
        till = d.call(gw, "POST", "/v1/terminals", {"merchant": canteen, "location": "canteen counter 1"})
        terminal_key = httpx.Client(base_url=demo.gateway, headers={"X-API-Key": till["key"]}, timeout=300)
        queue: list[Any] = []  # the terminal's offline queue of card-signed payments
        chain = http(demo.rpc)

        def now() -> int:  # the terminal's clock follows the chain's (the demo moved it)
            return int(chain.eth.get_block("latest")["timestamp"]) + 1

        def upload() -> list[dict[str, Any]]:
            batch = {"payments": [p.to_json() for p in queue]}
            queue.clear()
            return list(d.call(terminal_key, "POST", "/v1/offline-payments", batch)["results"])

        for _ in range(3):
            queue.append(cards["Grandma Zhou"].sign_payment(canteen, 15_00, now()))
        results = upload()
        d.expect([r["outcome"] for r in results] == ["settled"] * 3, f"three meals settle: {results}")
        d.say(
            d.t(
                "Grandma Zhou taps her card for 3 meals offline; "
                f"the terminal uploads: {len(results)} settled",
                f"周奶奶离线刷卡吃了 3 餐；终端上传：{len(results)} 笔已结算",
            )
        )
        # 养老支付凭证: an elderly-care voucher purse on the card, spent only at care merchants.
        bureau = d.wallet("Civil affairs bureau", kind="institution", tier=1)
        d.issue(bureau, 1_000_00)
        care = d.wallet("Xiangcheng care centre", kind="merchant", tier=2, category=8050)
        care_terms = {"funder": bureau, "per_card_cap_fen": 300_00, "categories": [8050]}
        d.call(
            gw,
            "POST",
            "/v1/purse-programmes",
            {"programme": 1, "expires_at": now() + 90 * 86_400, **care_terms},
        )
        zhou = cards["Grandma Zhou"]
        d.call(gw, "POST", f"/v1/cards/{zhou.address}/purses", {"programme": 1, "amount_fen": 100_00})
        # the card's top-up carries the purse's terms: it spends the purse only where it may
        (voucher,) = d.call(gw, "GET", f"/v1/cards/{zhou.address}/purses")["purses"]
        zhou.credit_purse(1, 100_00, categories=voucher["categories"], expires_at=voucher["expires_at"])
        care_till = d.call(gw, "POST", "/v1/terminals", {"merchant": care, "location": "care centre desk"})
        care_key = httpx.Client(base_url=demo.gateway, headers={"X-API-Key": care_till["key"]}, timeout=300)
        visit = zhou.sign_payment(care, 120_00, now(), category=care_till["category"])
        batch = {"payments": [visit.to_json()]}
        (paid,) = d.call(care_key, "POST", "/v1/offline-payments", batch)["results"]
        purses = d.call(gw, "GET", f"/v1/cards/{zhou.address}/purses")
        d.expect(
            paid["outcome"] == "settled" and purses["purses"][0]["spent_fen"] == 100_00,
            f"the care visit spends the voucher first: {paid} {purses}",
        )
        d.say(
            d.t(
                f"the civil affairs bureau puts a {yuan(100_00)} elderly-care voucher on her card; "
                f"a {yuan(120_00)} care visit spends the voucher first, then {yuan(20_00)} of cash "
                "(never at the canteen; what is unspent at expiry goes back to the bureau)",
                f"民政局向她的卡发放 {yuan(100_00)} 养老支付凭证；一次 {yuan(120_00)} 的护理服务先用凭证，"
                f"再用 {yuan(20_00)} 现金（食堂不可用；到期未用部分退回民政局）",
            )
        )
        d.call(gw, "POST", f"/v1/cards/{cards['Grandpa Qian'].address}/report-lost")
        queue.append(cards["Grandpa Qian"].sign_payment(canteen, 20_00, now() + 60))  # a finder, later
        (lost,) = upload()
        d.expect(lost["outcome"] == "rejected", f"a payment signed after the loss report is refused: {lost}")
        d.say(
            d.t(
                f"Grandpa Qian reports his card lost; a payment signed with it afterwards: {lost['reason']}",
                f"钱爷爷挂失了他的卡；之后用这张卡签名的支付：{lost['reason']}",
            )
        )
        # the simulator's export door, opened on purpose with the issuer's secret (a real secure
        # element has none): a copied card...
        image = cards["Grandma Zhou"].save("demo", issuer_secret=DEMO_ISSUER_SECRET)
        clone = HardWallet.restore(image, "demo", issuer_secret=DEMO_ISSUER_SECRET)
        clone.credit(500_00)  # ...whose offline balance was tampered with
        for _ in range(2):
            queue.append(clone.sign_payment(canteen, 100_00, now()))
        results = upload()
        outcomes = [r["outcome"] for r in results]
        d.expect("shortfall" in outcomes, f"the clone's overspending is caught: {results}")
        card = d.call(gw, "GET", f"/v1/cards/{cards['Grandma Zhou'].address}")
        d.expect(card["status"] == "blocked", f"the cloned card is blocked: {card}")
        d.say(
            d.t(
                f"a cloned card spends beyond the reserve: {', '.join(outcomes)}",
                f"一张克隆卡超出备付金消费：{', '.join(outcomes)}",
            )
        )
        d.say(
            d.t(
                "the card is blocked; nothing was paid twice and no reserve went negative",
                "该卡已停用；没有重复支付，备付金也没有出现负数",
            )
        )

    devices_and_bills(d, manifest, chain)

    with d.chapter(
        d.t(
            "A resident's own channel: a gig worker checks the wage, revokes a mandate, "
            "reports a lost card and gets a new wallet",
            "居民自己的渠道：灵活就业人员查工资、撤销快付授权、挂失卡片、换新钱包",
        )
    ):
        worker, wage = workers[0], 180_50  # paid by the morning's batch (row 0)
        name = d.names[worker]
        key = d.post("operator", "/v1/holder/keys", {"wallet": worker, "ttl_minutes": 60})["key"]
        me = httpx.Client(base_url=demo.url, headers={"X-API-Key": key}, timeout=300)
        mine = d.call(me, "GET", "/v1/holder/balance")
        d.expect(mine["wallet"] == worker and mine["balance_fen"] == wage, f"the worker's balance: {mine}")
        history = d.call(me, "GET", "/v1/holder/history", expect=200)["items"]
        pay = [m for m in history if m["family"] == "disburse" and m["direction"] == "in"]
        d.expect([m["amount_fen"] for m in pay] == [wage], f"the wage in the history: {history}")
        (row,) = d.call(me, "GET", "/v1/holder/disbursements")
        d.expect(
            (row["payer_name"], row["purpose"], row["status"]) == ("Gig platform", "salary", "paid"),
            f"the payroll row: {row}",
        )
        d.say(
            d.t(
                f"{name} signs in with a holder key and sees {yuan(mine['balance_fen'])}: "
                f"the wage from {row['payer_name']} ({row['purpose']}), "
                f"{yuan(mine['daily_left_fen'] or 0)} left to pay today",
                f"{name} 用持有人密钥登录，看到余额 {yuan(mine['balance_fen'])}："
                f"来自{row['payer_name']}的工资（{row['purpose']}），"
                f"今天还可支付 {yuan(mine['daily_left_fen'] or 0)}",
            )
        )
        gw = d.at_gateway(d.role("operator"))
        metro = d.wallet("Metro line 4", kind="merchant", tier=2, category=4111)
        expires = int(http(demo.rpc).eth.get_block("latest")["timestamp"]) + 30 * 86_400
        body = {
            "holder": worker,
            "merchant": metro,
            "per_payment_cap_fen": 10_00,
            "daily_cap_fen": 30_00,
            "expires_at": expires,
        }
        mandate = d.call(gw, "POST", "/v1/mandates", body)["mandate_id"]
        d.call(gw, "POST", f"/v1/mandates/{mandate}/pulls", {"amount_fen": 3_00, "reference": "ride-0800"})
        (listed,) = d.call(me, "GET", "/v1/holder/mandates")
        d.expect(listed["active"] and listed["total_pulled_fen"] == 3_00, f"the mandate: {listed}")
        revoked = d.call(me, "POST", f"/v1/holder/mandates/{mandate}/revoke")
        d.expect(revoked["operation"]["status"] == "confirmed", f"the revocation: {revoked}")
        refused = d.call(
            gw, "POST", f"/v1/mandates/{mandate}/pulls", {"amount_fen": 3_00, "reference": "ride-1800"}, 409
        )
        d.say(
            d.t(
                f"the metro pulled a {yuan(3_00)} ride by quick-pay; {name} revokes the mandate at once, "
                f"and the evening ride's pull: {refused['title']}",
                f"地铁通过钱包快付扣了 {yuan(3_00)} 车费；{name} 立即撤销授权，"
                f"晚上的扣款：{refused['title']}",
            )
        )
        manifest = Manifest.load(demo.manifest)
        domain = PaymentDomain(manifest.chain_id, manifest.address("HardWalletSettlement"))
        card = HardWallet.issue(domain, form=CardForm.CARD)
        d.call(gw, "POST", "/v1/cards", {"card": card.address, "holder": worker, "form": "card"})
        d.call(gw, "POST", f"/v1/cards/{card.address}/loads", {"amount_fen": 50_00})
        d.call(me, "POST", f"/v1/holder/cards/{card.address}/report-lost")
        (lost,) = d.call(me, "GET", "/v1/holder/cards")
        d.expect(lost["status"] == "lost" and lost["reserve_fen"] == 50_00, f"the lost card: {lost}")
        grace = (lost["grace_ends_at"] - lost["lost_at"]) // 3_600
        d.say(
            d.t(
                f"the card (reserve {yuan(lost['reserve_fen'])}) is reported lost from the phone: "
                "payments signed from now on never settle; "
                f"those signed before settle for {grace} hours more",
                f"在手机上挂失卡片（备付金 {yuan(lost['reserve_fen'])}）：此后签名的支付一律不结算；"
                f"此前签名的在 {grace} 小时宽限期内仍可结算",
            )
        )
        left = wage - 3_00 - 50_00
        proposal = d.post(
            "operator",
            f"/v1/wallets/{worker}/recovery",
            {"evidence": f"face check at the service counter, clerk 7, for {name}"},
        )
        d.post("regulator", f"/v1/regulator/recoveries/{proposal['recovery_id']}/approve")
        new = proposal["replacement"]
        gone = d.call(me, "GET", "/v1/holder/balance", expect=410)  # the key on the lost phone
        key = d.post("operator", "/v1/holder/keys", {"wallet": new, "ttl_minutes": 60})["key"]
        me = httpx.Client(base_url=demo.url, headers={"X-API-Key": key}, timeout=300)
        mine = d.call(me, "GET", "/v1/holder/balance")
        d.expect(mine["balance_fen"] == left and d.balance(worker) == 0, f"the recovered balance: {mine}")
        d.say(
            d.t(
                f"{name} loses the phone: the operator verifies the identity and proposes a recovery, "
                f"the regulator approves; the new wallet holds {yuan(mine['balance_fen'])}, "
                "the old one is retired",
                f"{name} 丢了手机：运营方核验身份并发起钱包找回，监管方批准；"
                f"新钱包余额 {yuan(mine['balance_fen'])}，旧钱包已注销",
            )
        )
        d.say(
            d.t(
                f"the holder key left on the lost phone: {gone['title']}",
                f"遗失手机上的持有人密钥：{gone['title']}",
            )
        )

    with d.chapter(
        d.t(
            "Closing time: the canteen refunds part of a bill and downloads the day's statement (对账单)",
            "打烊：食堂为一张账单部分退款，并下载当天的对账单",
        )
    ):
        shop = d.key("merchant", canteen)  # the canteen's own key: its refunds and statements only
        bill = d.get("auditor", f"/v1/payment-codes/{code['id']}")
        payment = bill["payments"][0]["id"]
        refunds_path = f"/v1/payment-codes/{code['id']}/payments/{payment}/refunds"
        before = d.balance(residents["Li Wei"])
        refund = d.call(shop, "POST", refunds_path, {"amount_fen": 5_00, "reason": "the soup never came"})
        d.expect(refund["status"] == "confirmed", f"the refund is on chain: {refund}")
        d.expect(d.balance(residents["Li Wei"]) == before + 5_00, "Li Wei got 5 yuan back")
        too_much = d.call(shop, "POST", refunds_path, {"amount_fen": 14_00}, expect=409)
        d.say(
            d.t(
                f"the soup never came: the canteen refunds {yuan(5_00)} of Li Wei's {yuan(18_50)} bill; "
                f"asking {yuan(14_00)} more: {too_much['title']}",
                f"汤没上：食堂退还李伟 {yuan(18_50)} 账单中的 {yuan(5_00)}；"
                f"再退 {yuan(14_00)}：{too_much['title']}",
            )
        )
        probe = d.post("operator", "/v1/spot-checks/run")
        kinds = [c["target_kind"] for c in probe["checks"]]
        d.expect(probe["coverage"] == 1.0, f"every active code and terminal probed: {probe}")
        d.say(
            d.t(
                f"the spot-check robot pays every active code and terminal 1 fen (a terminal: with its "
                f"probe card, settled as the terminal's upload) and refunds it: "
                f"{probe['passed']}/{probe['probed']} passed, coverage {probe['coverage']:.0%} "
                f"(codes {kinds.count('code')}, terminals {kinds.count('terminal')})",
                f"抽检机器人向每个有效收款码和终端支付 1 分（终端：用抽检卡支付，按终端上传结算）并退回："
                f"{probe['passed']}/{probe['probed']} 通过，覆盖率 {probe['coverage']:.0%}"
                f"（{kinds.count('code')} 个收款码，{kinds.count('terminal')} 个终端）",
            )
        )
        day = (datetime.now(UTC) + timedelta(hours=8)).date().isoformat()  # a Beijing day
        statement = d.call(shop, "GET", f"/v1/merchants/{canteen}/statements/{day}")
        t, lines, txs = statement["totals"], len(statement["lines"]), len(statement["transactions"])
        d.say(
            d.t(
                f"the day's statement: {t['payments']} payments {t['paid_yuan']} yuan, "
                f"{t['refunds']} refunds {t['refunded_yuan']} yuan, net {t['net_yuan']} yuan, "
                f"{lines} codes and terminals, {txs} transactions",
                f"当天对账单：收款 {t['payments']} 笔 {t['paid_yuan']} 元，退款 {t['refunds']} 笔 "
                f"{t['refunded_yuan']} 元，净额 {t['net_yuan']} 元；{lines} 个收款码与终端，{txs} 笔交易",
            )
        )
        csv_file = d.call(shop, "GET", f"/v1/merchants/{canteen}/statements/{day}?format=csv")
        d.expect(csv_file.text.startswith("kind,id,payments"), "the settlement file is CSV")
        d.say(d.t("settlement file (CSV): ", "结算文件（CSV）：") + csv_file.text.splitlines()[-1])
    two_tiers(d, canteen)
    closed_loop_park(d)

    with d.chapter(
        d.t(
            "Evening: the auditor reconciles the chain with the operator's records",
            "晚上：审计方将链上记录与运营方的记录对账",
        )
    ):
        report = d.get("auditor", "/v1/audit/reconciliation")
        c = report["counts"]
        d.say(
            d.t(
                f"{c['events']:,} events in {c['transactions']:,} transactions replayed",
                f"重放了 {c['transactions']:,} 笔交易中的 {c['events']:,} 个事件",
            )
        )
        d.say(
            d.t(
                f"{c['operations_checked']:,} operations checked against their events",
                f"核对了 {c['operations_checked']:,} 个操作与其事件",
            )
        )
        for check in report["invariants"]:
            holds = d.t("ok ", "成立") if check["holds"] else d.t("BROKEN", "不成立")
            d.say(f"{holds} {check['family']}: {check['name']}")
        by_purpose = report["totals"]["disbursed_by_purpose_fen"]
        d.say(
            d.t("disbursed by purpose: ", "按用途代发：")
            + ", ".join(
                f"{k} {humanize.money(v, 'zh-CN' if d.lang == 'zh' else 'en')}" for k, v in by_purpose.items()
            )
        )
        for problem in report["discrepancies"]:
            d.say(f"{d.t('DISCREPANCY', '差异')} {problem['kind']}: {problem['detail']}")
        d.expect(
            report["verdict"] == "clean",
            f"the reconciliation found {len(report['discrepancies'])} discrepancies",
        )
        verdict = report["verdict"]
        if d.lang == "zh":
            print(f"\n结论：{'一致' if verdict == 'clean' else '有差异'}（verdict: {verdict}）", flush=True)
        else:
            print(f"\nverdict: {verdict}", flush=True)


def devices_and_bills(d: Demo, manifest: Manifest, chain: Any) -> None:
    """Issue 23: unattended devices (a coffee machine, a recycling bin) and utility bills."""
    gw = d.at_gateway(d.role("operator"))

    def terminal_of(merchant: str, where: str) -> httpx.Client:
        till = d.call(gw, "POST", "/v1/terminals", {"merchant": merchant, "location": where})
        return httpx.Client(base_url=d.gateway, headers={"X-API-Key": till["key"]}, timeout=300)

    with d.chapter(
        d.t(
            "Unattended devices: a coffee machine and a recycling bin (无人值守设备)",
            "无人值守设备：咖啡机与再生资源回收箱",
        )
    ):
        coffee = d.wallet("Lobby Coffee", "merchant", 2, 5814)
        machine = terminal_of(coffee, "coffee machine, town hall lobby")
        li = d.wallet("Xiao Li", tier=3)
        d.issue(li, 300_00)
        card = HardWallet.issue(
            PaymentDomain(manifest.chain_id, manifest.address("HardWalletSettlement")), form=CardForm.CARD
        )
        d.call(gw, "POST", "/v1/cards", {"card": card.address, "holder": li, "form": "card"})
        domain = DeviceDomain(manifest.chain_id, manifest.address("DevicePayments"))
        before = d.balance(li)
        held = d.call(
            machine, "POST", "/v1/devices/preauths", card.sign_preauth(coffee, 10_00, domain).to_json()
        )
        d.expect(d.balance(li) == before - 10_00, "the machine holds 10 yuan")
        done = d.call(machine, "POST", f"/v1/devices/preauths/{held['id']}/complete", {"amount_fen": 6_50})
        d.expect(done["status"] == "completed" and d.balance(li) == before - 6_50, f"completed: {done}")
        d.say(
            d.t(
                f"Xiao Li taps her card: the machine pre-authorises {yuan(10_00)}, pours a latte and "
                f"completes with {yuan(6_50)}; {yuan(3_50)} goes straight back",
                f"小李刷卡：咖啡机预授权 {yuan(10_00)}，出杯后按实际 {yuan(6_50)} 完成扣款，"
                f"{yuan(3_50)} 立即退回",
            )
        )
        held = d.call(
            machine, "POST", "/v1/devices/preauths", card.sign_preauth(coffee, 10_00, domain).to_json()
        )
        over = d.call(
            machine, "POST", f"/v1/devices/preauths/{held['id']}/complete", {"amount_fen": 10_01}, expect=422
        )
        released = d.call(machine, "POST", f"/v1/devices/preauths/{held['id']}/release")
        d.expect(released["status"] == "released" and d.balance(li) == before - 6_50, f"released: {released}")
        d.say(
            d.t(
                f"the next cup fails to dispense: completing above the maximum is refused ({over['type']}), "
                "the machine releases the hold and Xiao Li is charged nothing",
                f"下一杯出杯失败：超出预授权的扣款被拒绝（{over['type']}），咖啡机释放冻结，小李分文未付",
            )
        )
        recycler = d.wallet("Green Bin Co.", "merchant", 2, 5093)
        bin_ = terminal_of(recycler, "recycling bin, Block 3")
        office = d.wallet("Environment Office", kind="institution", tier=1)
        d.issue(office, 200_00)
        programme = d.call(
            gw,
            "POST",
            "/v1/devices/programmes",
            {"sponsor": office, "merchant": recycler, "daily_cap_fen": 5_00},
        )["programme_id"]
        d.call(gw, "POST", f"/v1/devices/programmes/{programme}/fund", {"amount_fen": 100_00})
        drop = {"programme": programme, "to": card.address, "amount_fen": 3_00, "reference": "B3-0001"}
        paid = d.call(bin_, "POST", "/v1/devices/payouts", drop)
        again = d.call(bin_, "POST", "/v1/devices/payouts", drop)  # the bin was offline: it uploads again
        capped = d.call(bin_, "POST", "/v1/devices/payouts", {**drop, "reference": "B3-0002"}, expect=422)
        d.expect(paid["person"] == li and again["replayed"], f"one payout: {paid} {again}")
        d.say(
            d.t(
                f"Xiao Li drops bottles in a recycling bin and taps her card: {yuan(3_00)} from the "
                f"Environment Office's programme; the bin's second upload of the same drop pays nothing; "
                f"a second drop today is above her {yuan(5_00)} daily cap ({capped['type']})",
                f"小李把瓶子投进回收箱并刷卡：从环保办的活动预算获得 {yuan(3_00)}；"
                "回收箱重复上传同一笔不会重复支付；"
                f"今天再投一次超过每人每日 {yuan(5_00)} 的上限（{capped['type']}）",
            )
        )

    with d.chapter(
        d.t("Utility bills: water, by account number and by auto-debit (水电燃气缴费)", "水电燃气缴费")
    ):
        water = d.wallet("Xiangcheng Water", "merchant", 2, 4900)
        d.post(
            "operator",
            "/v1/billers",
            {
                "id": "xc-water",
                "name": "相城水务",
                "kind": "water",
                "wallet": water,
                "account_pattern": r"XCW\d{8}",
                "mandate_cap_fen": 300_00,
                "debit_day": 1,
            },
        )
        now = int(chain.eth.get_block("latest")["timestamp"])
        period = (datetime.fromtimestamp(now, UTC) + timedelta(hours=8)).strftime("%Y-%m")
        wang = d.wallet("Auntie Wang", tier=3)
        d.issue(wang, 500_00)
        for account, fen in (("XCW00012345", 58_00), ("XCW00067890", 73_40)):
            d.post(
                "operator",
                "/v1/billers/xc-water/bills",
                {"account": account, "period": period, "amount_fen": fen},
            )
        bill = d.post("operator", "/v1/billers/xc-water/accounts/XCW00012345/pay", {"payer": li})
        d.expect(bill["status"] == "paid", f"the water bill is paid: {bill}")
        d.say(
            d.t(
                f"Xiao Li pays the {period} water bill of account XCW00012345 by its number: {yuan(58_00)}",
                f"小李按户号 XCW00012345 缴纳 {period} 水费：{yuan(58_00)}",
            )
        )
        d.post(
            "operator",
            "/v1/billers/xc-water/autodebits",
            {"account": "XCW00067890", "holder": wang, "expires_at": now + 365 * 86_400},
        )
        run = d.post("operator", "/v1/utilities/autodebit-runs")
        rerun = d.post("operator", "/v1/utilities/autodebit-runs")
        d.expect(run["paid"] == 1 and rerun["paid"] == 0, f"one auto-debit, once: {run} {rerun}")
        d.say(
            d.t(
                f"Auntie Wang authorised an auto-debit (a quick-pay mandate capped at {yuan(300_00)}); "
                f"the scheduled run pays her {yuan(73_40)} bill, a second run pays nothing",
                f"王阿姨开通自动扣款（钱包快付授权，上限 {yuan(300_00)}）；"
                f"定时任务扣缴 {yuan(73_40)} 水费，再跑一次不会重复扣款",
            )
        )
        today = (datetime.fromtimestamp(now, UTC) + timedelta(hours=8)).date().isoformat()
        settlement = d.get("operator", f"/v1/billers/xc-water/settlements/{today}.csv").text
        rows = settlement.strip().splitlines()[1:]
        total = sum(int(r.split(",")[3]) for r in rows)
        d.expect(total == d.balance(water), f"the settlement file ({total}) is what the biller received")
        d.say(
            d.t(
                f"the water company's settlement file for {today}: {len(rows)} bills, {yuan(total)}, "
                "equal to what its wallet received on chain",
                f"水务公司 {today} 的对账文件：{len(rows)} 笔，{yuan(total)}，与其钱包链上到账一致",
            )
        )


def two_tiers(d: Demo, canteen: str) -> None:
    """Two tiers (issue 24): the central bank authorises a second operator institution and
    allocates its reserve; a resident it serves tops up from a bank card, exactly as much as the
    bank debits, and pays the canteen, which institution #1 serves (互联互通); each institution's
    statement shows its side; the canteen redeems to its own bank account."""
    with d.chapter(
        d.t(
            "Afternoon: two tiers — a bank card top-up at ABC, a payment to another institution's merchant",
            "下午：双层运营——在农行用银行卡充值，向另一家运营机构的商户付款（互联互通）",
        )
    ):
        signer = dev_account(INSTITUTION_DEV_ACCOUNTS[0]).address
        # authorised over HTTP: the service's admin key lets the institution's key issue at once
        d.post("regulator", "/v1/institutions", {"signer": signer, "name": "abc-xiangcheng"})
        d.post("regulator", "/v1/institutions/2/reserve/allocations", {"amount_fen": 100_000_00})
        r = d.admin.post("/v1/api-keys", json={"role": "operator", "label": "ABC", "institution": 2})
        d.expect(r.status_code == 201, f"the institution's key: {r.text}")
        abc = httpx.Client(base_url=d.url, headers={"X-API-Key": r.json()["key"]}, timeout=300)
        d.say(
            d.t(
                f"the central bank allocated ABC a reserve of {yuan(100_000_00)}",
                f"央行向农行分配准备金 {yuan(100_000_00)}",
            )
        )

        body = {"kind": "personal", "tier": 3, "display_name": "Zhou Jie", "identity": f"demo-{uuid.uuid4()}"}
        resident = d.call(abc, "POST", "/v1/wallets", body)["request"]["address"]
        d.names[resident] = "Zhou Jie"
        card = d.call(
            abc,
            "POST",
            "/v1/bank/accounts",
            {"number": "6228480402564890018", "holder": "Zhou Jie", "opening_balance_fen": 2_000_00},
        )
        d.call(abc, "POST", f"/v1/wallets/{resident}/bank-links", {"account_id": card["id"]})
        top = d.call(
            abc,
            "POST",
            "/v1/bank/top-ups",
            {"wallet": resident, "account_id": card["id"], "amount_fen": 500_00},
        )
        after = d.call(abc, "GET", f"/v1/bank/accounts/{card['id']}")
        d.expect(
            top["status"] == "completed" and after["balance_fen"] == 1_500_00, "the top-up debited the card"
        )
        d.expect(d.balance(resident) == 500_00, "the top-up minted the same amount")
        d.say(
            d.t(
                f"Zhou Jie topped up {yuan(500_00)} from card {top['account']}: "
                f"the card holds {yuan(after['balance_fen'])}",
                f"周杰从银行卡 {top['account']} 充值 {yuan(500_00)}：卡内余额 {yuan(after['balance_fen'])}",
            )
        )

        pay = d.call(abc, "POST", "/v1/transfers", {"from": resident, "to": canteen, "amount_fen": 38_00})
        mine = d.call(abc, "GET", "/v1/institutions/2/statement")
        theirs = d.get("operator", "/v1/institutions/1/statement")
        out = [x for x in mine["chain"] if x["tx_hash"] == pay["tx_hash"]]
        into = [x for x in theirs["chain"] if x["tx_hash"] == pay["tx_hash"]]
        d.expect(
            [x["side"] for x in out] == ["out"] and [x["side"] for x in into] == ["in"], "both statements"
        )
        d.say(
            d.t(
                f"he paid the canteen (institution 1's merchant) {yuan(38_00)} on the same chain: "
                "ABC's statement shows it out, institution 1's shows it in",
                f"他向食堂（1 号机构的商户）付款 {yuan(38_00)}，同一条链上结算："
                "农行对账单记为支出，1 号机构记为收入",
            )
        )
        till = d.post(
            "operator", "/v1/bank/accounts", {"number": "6222021102003456789", "holder": "Yuanhe canteen"}
        )
        d.post("operator", f"/v1/wallets/{canteen}/bank-links", {"account_id": till["id"]})
        d.post(
            "operator",
            "/v1/bank/redemptions",
            {"wallet": canteen, "account_id": till["id"], "amount_fen": 38_00},
        )
        bank = d.get("operator", f"/v1/bank/accounts/{till['id']}")
        d.expect(bank["balance_fen"] == 38_00, "the canteen's redemption credited its account")
        tiers = d.get("auditor", "/v1/institutions")
        d.expect(
            sum(i["outstanding_fen"] for i in tiers["items"]) == tiers["supply_fen"], "supply = outstanding"
        )
        for i in tiers["items"]:
            d.say(
                d.t(
                    f"institution {i['id']}: outstanding {yuan(i['outstanding_fen'])}",
                    f"{i['id']} 号机构：在外流通 {yuan(i['outstanding_fen'])}",
                )
            )


def closed_loop_park(d: Demo) -> None:
    """Issue 23: the closed-loop park (黄桥未来工场): set up from one file, payroll to its staff,
    lunch at its canteen through a payment code at a terminal, rent to the park, and the park's
    report (how much of the wages stayed in the park)."""
    with d.chapter(
        d.t(
            "The closed-loop park: Huangqiao Future Works (园区收、管、付闭环)",
            "园区资金闭环：黄桥未来工场（收、管、付）",
        )
    ):
        gw = d.at_gateway(d.role("operator"))
        tenant = d.wallet("Huangqiao Precision Co.", "institution", 1)
        officer = d.wallet("Huangqiao Precision finance officer", tier=2)
        d.issue(tenant, 200_000_00)
        staff = d.wallets([f"park staff {i}" for i in range(5)], tier=3, label=d.t("staff", "员工钱包"))
        canteen = d.wallet("Future Works canteen", "merchant", 2, 5812)
        shop = d.wallet("Future Works shop", "merchant", 2, 5411)
        fees = d.wallet("Future Works property office", "merchant", 2, 6513)
        union = d.wallet("Future Works trade union", "institution", 1)
        d.issue(union, 1_000_00)
        till = d.call(gw, "POST", "/v1/terminals", {"merchant": canteen, "location": "park canteen, till 1"})
        door = d.call(gw, "POST", "/v1/access-points", {"name": "park gate A", "location": "north gate"})
        park_id = f"huangqiao-{uuid.uuid4().hex[:6]}"
        spec = {
            "id": park_id,
            "name": "黄桥未来工场",
            "area": "黄桥街道",
            "fee_wallet": fees,
            "tenants": [{"id": "precision", "name": "黄桥精密", "payer": tenant, "staff": staff}],
            "merchants": [
                {"id": "canteen", "name": "园区食堂", "wallet": canteen, "category": 5812},
                {"id": "shop", "name": "园区便利店", "wallet": shop, "category": 5411},
            ],
            "terminals": [till["id"]],
            "door_points": [door["id"]],
            "fee_mandates": [
                {
                    "tenant": "precision",
                    "cap_fen": 20_000_00,
                    "expires_at": (datetime.now(UTC) + timedelta(days=400)).isoformat(),
                }
            ],
            "welfare": {
                "issuer": union,
                "name": "园区员工福利券",
                "budget_fen": 5 * 30_00,
                "per_staff_fen": 30_00,
                "starts_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
                "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            },
        }
        path = Path(tempfile.gettempdir()) / f"{park_id}.json"
        path.write_text(json.dumps(spec, ensure_ascii=False, indent=2), encoding="utf-8")
        body = json.loads(path.read_text(encoding="utf-8"))
        made = d.post("operator", "/v1/parks", body, expect=201)
        again = d.post("operator", "/v1/parks", body, expect=200)
        d.expect(again["created"] is False, "the same park file again changes nothing")
        d.say(
            d.t(
                f"park {park_id} set up from {path}: {made['tenants']} tenant, {made['staff']} staff, "
                f"{made['merchants']} merchants, {made['terminals']} terminal, {made['door_points']} door, "
                f"{len(made['fee_mandates'])} fee mandate, {yuan(30_00)} welfare each; "
                "posted again: nothing changed",
                f"园区 {park_id} 由文件 {path} 开通：{made['tenants']} 家企业、{made['staff']} 名员工、"
                f"{made['merchants']} 家商户、{made['terminals']} 台终端、{made['door_points']} 个门禁、"
                f"{len(made['fee_mandates'])} 份缴费授权、每人 {yuan(30_00)} 福利券；再次提交：无变化",
            )
        )
        d.post(
            "operator", f"/v1/disbursements/payers/{tenant}/officers", {"account": officer, "role": "checker"}
        )
        ref = f"park-payroll-{uuid.uuid4().hex[:6]}"
        ends = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        rows = [{"recipient": w, "amount": "4500.00"} for w in staff]
        body = {"reference": ref, "payer": tenant, "purpose": "salary", "ends_at": ends, "unit": "yuan"}
        d.post("operator", "/v1/disbursements", {**body, "rows": rows})
        d.call(d.key("checker", officer), "POST", f"/v1/disbursements/{ref}/approve")
        d.call(d.role("operator"), "POST", f"/v1/disbursements/{ref}/execute", {}, expect=202)
        while d.get("operator", f"/v1/disbursements/{ref}")["status"] == "executing":
            time.sleep(0.3)
        d.say(d.t(f"payroll: {yuan(4500_00)} to each of 5 staff", f"代发工资：5 名员工每人 {yuan(4500_00)}"))
        cashier = d.key("merchant", canteen)
        for i, w in enumerate(staff):
            code = d.call(
                cashier, "POST", "/v1/payment-codes", {"merchant": canteen, "amount_fen": 15_00 + i * 100}
            )
            d.post("operator", f"/v1/payment-codes/{code['id']}/pay", {"form": "custodial", "payer": w})
        pid = made["welfare_programme"]
        d.post(
            "operator",
            f"/v1/voucher-programs/{pid}/spend",
            {"holder": staff[0], "merchant": shop, "bill_fen": 40_00},
        )
        elsewhere = d.wallet("Town supermarket", "merchant", 2, 5411)
        body = {"holder": staff[1], "merchant": elsewhere, "bill_fen": 20_00}
        refused = d.post("operator", f"/v1/voucher-programs/{pid}/spend", body, expect=422)
        d.say(
            d.t(
                f"welfare at the park's shop: {yuan(30_00)} of a {yuan(40_00)} bill; at a town "
                f"supermarket: {refused['title']}",
                f"在园区便利店用福利券：{yuan(40_00)} 的账单中福利券付 {yuan(30_00)}；"
                f"在镇上超市：{refused['title']}",
            )
        )
        rent = {"tenant": "precision", "period": f"{datetime.now(UTC):%Y-%m}", "amount_fen": 12_000_00}
        d.post("operator", f"/v1/parks/{park_id}/fees", rent)
        twice = d.post("operator", f"/v1/parks/{park_id}/fees", rent, expect=409)
        d.say(
            d.t(
                f"lunch at the canteen for all 5; the park pulls the month's rent, {yuan(12_000_00)}, "
                f"under the tenant's mandate; pulling it again: {twice['title']}",
                f"5 人在食堂用午餐；园区按企业的授权扣收本月租金 {yuan(12_000_00)}；"
                f"再扣一次：{twice['title']}",
            )
        )
        rep = d.get("auditor", f"/v1/parks/{park_id}/report")
        takings = {m["merchant"]: m["takings_from_staff"]["fen"] for m in rep["by_merchant"]}
        d.expect(takings["canteen"] == d.balance(canteen), "the canteen's takings are the report's")
        d.expect(takings["shop"] == d.balance(shop), "the shop's takings are the report's")
        d.expect(rep["fee_income"]["fen"] == d.balance(fees), "the fee income is the fee wallet's balance")
        ratio = rep["retention_ratio"] or 0.0
        d.say(
            d.t(
                f"report: paid in {yuan(rep['paid_in']['fen'])}, "
                f"spent inside {yuan(rep['spent_inside']['fen'])}, "
                f"retention ratio {ratio:.2%}, fee income {yuan(rep['fee_income']['fen'])}",
                f"报告：发放 {yuan(rep['paid_in']['fen'])}，园内消费 {yuan(rep['spent_inside']['fen'])}，"
                f"留存率 {ratio:.2%}，费用收入 {yuan(rep['fee_income']['fen'])}",
            )
        )
        d.say(f"{d.url}/v1/parks/{park_id}/report?format=html&lang={'zh' if d.lang == 'zh' else 'en'}")


def _signed_transfer(demo: Demo, account: Any, to: str, fen: int) -> str:
    """What a self-custody wallet app does: build and sign the token transfer itself (the demo
    first gives the new wallet a little gas money from a development account)."""
    w3 = http(demo.rpc)
    cash = CashClient(w3, Manifest.load(demo.manifest))
    cash.tx.send_value(dev_account(5), account.address, 10**16)
    tx = cash.cash.functions.transfer(to, fen).build_transaction(
        {"from": account.address, "nonce": 0, "gas": 200_000, **cash.tx.fees(), "chainId": w3.eth.chain_id}
    )
    return "0x" + bytes(account.sign_transaction(tx).raw_transaction).hex()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument(
        "--lang",
        choices=("en", "zh"),
        default="zh" if os.environ.get("DEMO_LANG", "").lower().startswith("zh") else "en",
        help="the narration's language (default: DEMO_LANG, else English)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="xcpay-demo-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            with local_node(tmp) as rpc:
                manifest = tmp / "manifest.json"
                deploy(rpc, manifest)
                with database(None, tmp) as db_url:
                    env = service_env(rpc, manifest, db_url, free_port(), ADMIN_KEY)
                    env["XCPAY_GATEWAY_PORT"] = str(free_port())
                    with (
                        operator_service(env, tmp / "operator.log") as url,
                        gateway_service(env, tmp / "gateway.log") as gateway,
                    ):
                        print(f"xcpay demo: chain {rpc}, operator API {url}, gateway {gateway}", flush=True)
                        play(Demo(url, rpc, manifest, gateway, args.lang), SCALES[args.scale])
        except DemoFailure as exc:
            print(f"\nDEMO FAILED: {exc}", file=sys.stderr, flush=True)
            print(f"-- the operator service's log --\n{tail_of(tmp / 'operator.log', 40)}", file=sys.stderr)
            return 1
    seconds = time.monotonic() - started
    print(
        f"一天结束（{seconds:.0f} 秒）" if args.lang == "zh" else f"the day is over ({seconds:.0f} s)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
