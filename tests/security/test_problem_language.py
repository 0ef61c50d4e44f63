"""Problem titles and details in zh-CN or English by ``Accept-Language`` (issue 21), on both
services, over real HTTP: the guard's own answers (401, 413, 429) and the apps' (403, 404, 422,
contract refusals) alike. The ``type`` never changes; ``Content-Language`` says which language."""

from __future__ import annotations

import uuid

import httpx
import pytest

from services.common.i18n import TITLES_ZH, preferred
from tests.gateway.conftest import Gateway
from tests.services.conftest import Api

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "en"),
        ("", "en"),
        ("zh-CN", "zh-CN"),
        ("zh", "zh-CN"),
        ("zh-Hans-CN;q=0.9, en;q=0.5", "zh-CN"),
        ("en-US,en;q=0.9,zh;q=0.8", "en"),
        ("zh;q=0.5, *;q=0.8", "en"),
        ("fr, zh;q=0.1", "zh-CN"),
        ("zh;q=0", "en"),
        ("zh;q=abc, en", "en"),
        (";;;,,,zh-CN", "zh-CN"),
    ],
)
def test_the_preferred_language(header: str | None, lang: str) -> None:
    assert preferred(header) == lang


def _problem(r: httpx.Response, status: int, slug: str, lang: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["content-language"] == lang
    body = r.json()
    assert body["type"] == f"urn:xcpay:problem:{slug}" and body["status"] == status
    return dict(body)


def test_the_guards_answers_in_chinese_and_english(api: Api, gateway: Gateway) -> None:
    for url in (api.url, gateway.url):
        with httpx.Client(base_url=url, timeout=60) as anonymous:
            zh = _problem(anonymous.get("/v1/operations/x", headers=ZH), 401, "missing-api-key", "zh-CN")
            assert zh["title"] == "缺少 API 密钥" and zh["detail"] == "请在 X-API-Key 请求头中提供 API 密钥"
            en = _problem(anonymous.get("/v1/operations/x"), 401, "missing-api-key", "en")
            assert en["title"] == "Missing API key" and en["detail"] == "send the X-API-Key header"
            bad = anonymous.get("/v1/operations/x", headers={**ZH, "X-API-Key": "xcp_nope"})
            assert _problem(bad, 401, "invalid-api-key", "zh-CN")["detail"] == "密钥不存在、已吊销或已过期"


def test_the_apps_answers_in_chinese_and_english(api: Api) -> None:
    r = api.merchant.post("/v1/wallets", json={}, headers={**ZH, "Idempotency-Key": str(uuid.uuid4())})
    zh = _problem(r, 403, "forbidden-role", "zh-CN")
    assert zh["title"] == "此密钥的角色无权执行此操作"
    assert zh["detail"].startswith("角色 'merchant' 不在允许的角色 [") and "'operator'" in zh["detail"]
    r = api.merchant.post("/v1/wallets", json={}, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert _problem(r, 403, "forbidden-role", "en")["title"] == "This key's role may not do this"
    r = api.operator.get("/v1/wallets", params={"kind": "robot"}, headers=ZH)
    assert _problem(r, 422, "invalid-request", "zh-CN")["title"] == "请求无效"
    r = api.operator.get("/v1/wallets", params={"cursor": "x"}, headers=ZH)
    zh = _problem(r, 422, "invalid-cursor", "zh-CN")
    assert zh["title"] == "分页游标无效" and zh["detail"] == "不是本服务签发的分页游标"
    r = api.operator.post("/v1/wallets", json={}, headers=ZH)
    assert (
        _problem(r, 400, "missing-idempotency-key", "zh-CN")["title"] == TITLES_ZH["missing-idempotency-key"]
    )
    # a contract's refusal: the title by its slug, the decoded error as it was
    person = api.new_wallet(tier=3, name="frozen one")
    assert api.post("regulator", "/v1/regulator/freeze", {"address": person}).status_code == 200
    body = {"to": person, "amount_fen": 100}
    r = api.operator.post("/v1/issuance", json=body, headers={**ZH, "Idempotency-Key": str(uuid.uuid4())})
    zh = _problem(r, 409, "wallet-frozen", "zh-CN")
    assert zh["title"] == "钱包已冻结" and zh["error"]["name"] == "WalletFrozen"
    # the detail names the wallet by its display name for an operator's key; the machine field stays
    assert zh["detail"] == f"WalletFrozen(wallet={person} (frozen one))"
    assert zh["error"]["args"] == {"wallet": person}


def test_a_contracts_refusal_reads_in_yuan_and_fen_with_names(api: Api) -> None:
    """A tier-4 wallet paying above its per-payment cap: the detail gives the cap and the amount in
    yuan with the fen beside them (¥2,000.00 (200000 fen)), the wallet by its display name, in the
    request's language; ``error.args`` keeps the integers in fen."""
    payer = api.new_wallet(tier=4, name="Wang Fang")
    payee = api.new_wallet(tier=3, name="Chen Jie")
    assert api.post("operator", "/v1/issuance", {"to": payer, "amount_fen": 3_000_00}).status_code == 200
    body = {"from": payer, "to": payee, "amount_fen": 2_500_00}
    for headers, lang, fen in ((ZH, "zh-CN", "{}（{} 分）"), ({}, "en", "{} ({} fen)")):
        r = api.operator.post(
            "/v1/transfers", json=body, headers={**headers, "Idempotency-Key": str(uuid.uuid4())}
        )
        p = _problem(r, 422, "tier-payment-cap-exceeded", lang)
        assert p["error"]["args"] == {"wallet": payer, "cap": 2_000_00, "amount": 2_500_00}
        cap, amount = fen.format("¥2,000.00", 200000), fen.format("¥2,500.00", 250000)
        assert (
            p["detail"] == f"TierPaymentCapExceeded(wallet={payer} (Wang Fang), cap={cap}, amount={amount})"
        )
    # a problem with no translation stays English, and says so
    r = api.operator.get("/v1/disbursements/no-such-batch", headers=ZH)
    assert _problem(r, 404, "disbursement-not-found", "zh-CN")["title"] == "未找到代发批次"
    r = api.operator.get("/v1/payment-codes/zzzzzzzz.png", headers=ZH)
    assert _problem(r, 404, "code-not-found", "zh-CN")["title"] == "未找到聚合支付码"
    r = api.admin.post("/v1/api-keys/987654/revoke", headers=ZH)
    assert _problem(r, 404, "api-key-not-found", "en")["title"] == "API key not found"
