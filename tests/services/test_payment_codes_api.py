"""Merchant payment codes over HTTP: static and dynamic codes, QR images decoded back, each payer
form paying the same code, a bill paid at most once (also concurrently), expiry, wrong amounts,
frozen merchants, roles. Real chain, real database, a real QR decoder."""

from __future__ import annotations

import io
import threading
import time
import uuid

import httpx
import pytest
import zxingcpp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from PIL import Image

from tests.helpers import unrecoverable_signatures
from tests.services import eip681
from tests.services.conftest import Api
from tests.services.test_operator_api import assert_problem


def balance(api: Api, address: str) -> int:
    return int(api.auditor.get(f"/v1/wallets/{address}").json()["balance_fen"])


def client_for(api: Api, role: str, wallet: str) -> httpx.Client:
    key = api.admin.post("/v1/api-keys", json={"role": role, "wallet": wallet}).json()["key"]
    return httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=60)


def post(client: httpx.Client, path: str, body: dict) -> httpx.Response:
    return client.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})


@pytest.fixture(scope="module")
def shop(api: Api) -> dict:
    merchant = api.new_wallet(kind="merchant", tier=2, category=5812, name="Canteen")
    return {"address": merchant, "client": client_for(api, "merchant", merchant)}


def custodial_payer(api: Api, fen: int = 100_000) -> str:
    address = api.new_wallet(tier=2, name="payer")
    assert api.post("operator", "/v1/issuance", {"to": address, "amount_fen": fen}).status_code == 200
    return address


def self_custody_payer(api: Api, fen: int = 100_000) -> LocalAccount:
    account = Account.create()
    body = {
        "kind": "personal",
        "tier": 2,
        "display_name": "self custody",
        "identity": f"self-{uuid.uuid4()}",
        "custody": "self",
        "address": account.address,
    }
    assert api.post("operator", "/v1/wallets", body).status_code == 201
    assert api.post("operator", "/v1/issuance", {"to": account.address, "amount_fen": fen}).status_code == 200
    ctx = api.app.state.ctx
    ctx.tx.send_value(ctx.operator, account.address, 10**17)  # gas money for its own transactions
    return account


def signed_transfer(api: Api, payer: LocalAccount, to: str, amount: int, chain_id: int | None = None) -> str:
    ctx = api.app.state.ctx
    tx = ctx.cash.cash.functions.transfer(to, amount).build_transaction(
        {
            "from": payer.address,
            "nonce": ctx.w3.eth.get_transaction_count(payer.address),
            "gas": 200_000,
            **ctx.tx.fees(),
            "chainId": chain_id or ctx.tx.chain_id,
        }
    )
    return "0x" + bytes(payer.sign_transaction(tx).raw_transaction).hex()


def new_code(api: Api, merchant: str, **extra: object) -> dict:
    r = api.operator.post("/v1/payment-codes", json={"merchant": merchant, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def test_a_dynamic_code_is_an_eip681_uri_and_its_png_decodes_back_to_it(api: Api, shop: dict) -> None:
    code = new_code(api, shop["address"], amount_fen=2_350, reference="bill-7")
    token = api.app.state.ctx.cash.cash.address
    chain_id = api.w3.eth.chain_id
    assert code["uri"] == f"ethereum:{token}@{chain_id}/transfer?address={shop['address']}&uint256=2350"
    # strictly EIP-681 (the standard's grammar); our extras travel beside it, not as query keys
    assert eip681.parse(code["uri"]) == eip681.Eip681(
        token, chain_id, "transfer", [("address", shop["address"]), ("uint256", "2350")]
    )
    assert code["extras"] == {"mcc": 5812, "ref": "bill-7", "code": code["id"]}
    assert (code["kind"], code["status"], code["category"]) == ("dynamic", "active", 5812)
    png = api.auditor.get(code["png"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    assert [d.text for d in decoded] == [code["uri"]]
    svg = api.auditor.get(code["svg"])
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    assert_problem(api.auditor.get("/v1/payment-codes/doesnotexist.png"), 404, "code-not-found")


def test_each_payer_form_pays_the_same_static_code(api: Api, shop: dict) -> None:
    code = new_code(api, shop["address"])
    assert code["kind"] == "static" and "uint256" not in code["uri"]
    assert eip681.parse(code["uri"]).parameters == [("address", shop["address"])]
    assert code["extras"] == {"mcc": 5812, "ref": None, "code": code["id"]}
    before = balance(api, shop["address"])
    custodial = custodial_payer(api)
    r = post(
        api.operator,
        f"/v1/payment-codes/{code['id']}/pay",
        {"form": "custodial", "payer": custodial, "amount_fen": 1_200},
    )
    assert r.status_code == 200, r.text
    own = self_custody_payer(api)
    raw = signed_transfer(api, own, shop["address"], 800)
    r = post(
        shop["client"],
        f"/v1/payment-codes/{code['id']}/pay",
        {"form": "signed-transaction", "signed_transaction": raw},
    )
    assert r.status_code == 200, r.text
    payments = r.json()["payments"]
    assert [(p["form"], p["payer"], p["amount_fen"], p["status"]) for p in payments] == [
        ("custodial", custodial, 1_200, "confirmed"),
        ("signed-transaction", own.address, 800, "confirmed"),
    ]
    assert balance(api, shop["address"]) == before + 2_000
    assert balance(api, own.address) == 100_000 - 800
    # traceable: code -> operation -> transaction -> Transfer event to the merchant
    op = api.auditor.get(f"/v1/operations/{payments[1]['operation_id']}").json()
    assert op["tx_hash"] == payments[1]["tx_hash"]
    transfers = [e for e in op["result"]["events"] if e["name"] == "Transfer"]
    assert transfers[0]["args"]["to"] == shop["address"] and transfers[0]["args"]["value"] == 800


def test_a_dynamic_code_is_paid_once(api: Api, shop: dict) -> None:
    code = new_code(api, shop["address"], amount_fen=500)
    first, second = custodial_payer(api), custodial_payer(api)
    r = post(api.operator, f"/v1/payment-codes/{code['id']}/pay", {"form": "custodial", "payer": first})
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    again = post(api.operator, f"/v1/payment-codes/{code['id']}/pay", {"form": "custodial", "payer": second})
    assert_problem(again, 409, "code-already-paid")
    assert balance(api, second) == 100_000


def test_concurrent_payments_of_one_bill_move_money_once(api: Api, shop: dict) -> None:
    code = new_code(api, shop["address"], amount_fen=700)
    payers = [custodial_payer(api) for _ in range(4)]
    before = balance(api, shop["address"])
    results: list[int] = []

    def pay(payer: str) -> None:
        r = post(api.operator, f"/v1/payment-codes/{code['id']}/pay", {"form": "custodial", "payer": payer})
        results.append(r.status_code)

    threads = [threading.Thread(target=pay, args=(p,)) for p in payers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409, 409, 409], results
    assert balance(api, shop["address"]) == before + 700
    assert sum(balance(api, p) for p in payers) == 4 * 100_000 - 700


def test_a_failed_payment_releases_the_bill(api: Api, shop: dict) -> None:
    code = new_code(api, shop["address"], amount_fen=900)
    poor = custodial_payer(api, fen=100)
    r = post(api.operator, f"/v1/payment-codes/{code['id']}/pay", {"form": "custodial", "payer": poor})
    assert_problem(r, 422, "insufficient-balance")
    rich = custodial_payer(api)
    r = post(api.operator, f"/v1/payment-codes/{code['id']}/pay", {"form": "custodial", "payer": rich})
    assert r.status_code == 200, r.text
    assert [p["status"] for p in r.json()["payments"]] == ["failed", "confirmed"]


def test_wrong_amounts_payees_chains_and_bytes_are_refused(api: Api, shop: dict) -> None:
    code = new_code(api, shop["address"], amount_fen=1_000)
    path = f"/v1/payment-codes/{code['id']}/pay"
    payer = custodial_payer(api)
    assert_problem(
        post(api.operator, path, {"form": "custodial", "payer": payer, "amount_fen": 999}),
        422,
        "amount-mismatch",
    )
    own = self_custody_payer(api)
    cases = [
        (signed_transfer(api, own, shop["address"], 999), "amount-mismatch"),
        (signed_transfer(api, own, payer, 1_000), "wrong-payee"),
        (signed_transfer(api, own, shop["address"], 1_000, chain_id=1), "wrong-chain"),
        ("0x" + "ab" * 40, "invalid-signed-transaction"),
    ]
    for raw, slug in cases:
        assert_problem(
            post(shop["client"], path, {"form": "signed-transaction", "signed_transaction": raw}), 422, slug
        )
    static = new_code(api, shop["address"])
    assert_problem(
        post(api.operator, f"/v1/payment-codes/{static['id']}/pay", {"form": "custodial", "payer": payer}),
        422,
        "amount-required",
    )
    assert balance(api, payer) == 100_000 and balance(api, own.address) == 100_000
    assert api.operator.get(f"/v1/payment-codes/{code['id']}").json()["status"] == "active"


def test_an_amount_that_is_not_an_integer_is_refused(api: Api, shop: dict) -> None:
    """Red team (LOW): amounts in fen are JSON integers; 12.0, "12" and true are refused (422)
    where pydantic's lax mode used to take them as 12 (or 1)."""
    static = new_code(api, shop["address"])
    payer = custodial_payer(api)
    for wrong in (1_200.0, "1200", True):
        r = post(api.operator, "/v1/payment-codes", {"merchant": shop["address"], "amount_fen": wrong})
        assert_problem(r, 422, "invalid-request")
        assert r.json()["errors"][0]["loc"] == ["body", "amount_fen"]
        body = {"form": "custodial", "payer": payer, "amount_fen": wrong}
        r = post(api.operator, f"/v1/payment-codes/{static['id']}/pay", body)
        assert_problem(r, 422, "invalid-request")
        assert r.json()["errors"][0]["loc"] == ["body", "amount_fen"]
    assert balance(api, payer) == 100_000


def test_a_merchant_cannot_pay_its_own_code(api: Api, shop: dict) -> None:
    """Red team (LOW): merchant == payer was accepted (a payment record out of nothing)."""
    merchant = shop["address"]
    assert api.post("operator", "/v1/issuance", {"to": merchant, "amount_fen": 5_000}).status_code == 200
    before = balance(api, merchant)
    static, bill = new_code(api, merchant), new_code(api, merchant, amount_fen=1_000)
    for code, body in (
        (static, {"form": "custodial", "payer": merchant, "amount_fen": 1_000}),
        (bill, {"form": "custodial", "payer": merchant}),
    ):
        r = post(api.operator, f"/v1/payment-codes/{code['id']}/pay", body)
        assert_problem(r, 422, "payer-is-merchant")
        zh = api.operator.post(
            f"/v1/payment-codes/{code['id']}/pay",
            json=body,
            headers={"Idempotency-Key": str(uuid.uuid4()), "Accept-Language": "zh-CN"},
        )
        assert zh.json()["title"] == "商户不能支付自己的收款码"
    assert balance(api, merchant) == before
    assert api.operator.get(f"/v1/payment-codes/{bill['id']}").json()["status"] == "active"
    assert api.operator.get(f"/v1/payment-codes/{static['id']}").json()["payments"] == []


def test_an_expired_code_is_refused(api: Api, shop: dict) -> None:
    code = new_code(api, shop["address"], amount_fen=300, expires_in_s=1)
    time.sleep(1.5)
    assert api.operator.get(f"/v1/payment-codes/{code['id']}").json()["status"] == "expired"
    r = post(
        api.operator,
        f"/v1/payment-codes/{code['id']}/pay",
        {"form": "custodial", "payer": custodial_payer(api)},
    )
    assert_problem(r, 409, "code-expired")


def test_a_frozen_merchants_code_is_refused(api: Api, shop: dict) -> None:
    merchant = api.new_wallet(kind="merchant", tier=2, category=5411, name="Shop")
    code = new_code(api, merchant, amount_fen=100)
    assert api.post("regulator", "/v1/regulator/freeze", {"address": merchant}).status_code == 200
    payer = custodial_payer(api)
    r = post(api.operator, f"/v1/payment-codes/{code['id']}/pay", {"form": "custodial", "payer": payer})
    assert_problem(r, 409, "merchant-frozen")
    assert_problem(
        api.operator.post("/v1/payment-codes", json={"merchant": merchant}), 409, "merchant-frozen"
    )
    assert balance(api, payer) == 100_000


def test_roles(api: Api, shop: dict) -> None:
    other = api.new_wallet(kind="merchant", tier=2, category=5411, name="Other")
    own = shop["client"]
    assert own.post("/v1/payment-codes", json={"merchant": shop["address"]}).status_code == 201
    assert_problem(own.post("/v1/payment-codes", json={"merchant": other}), 403, "not-your-merchant")
    code = new_code(api, other, amount_fen=100)
    assert_problem(own.get(f"/v1/payment-codes/{code['id']}"), 403, "not-your-merchant")
    payer = custodial_payer(api)
    r = post(own, f"/v1/payment-codes/{code['id']}/pay", {"form": "custodial", "payer": payer})
    assert_problem(r, 403, "forbidden-role")
    assert_problem(api.anonymous.get(f"/v1/payment-codes/{code['id']}"), 401, "missing-api-key")
    assert api.auditor.get(f"/v1/payment-codes/{code['id']}").status_code == 200
    personal = api.new_wallet(tier=2, name="person")
    assert_problem(
        api.operator.post("/v1/payment-codes", json={"merchant": personal}), 422, "not-a-merchant-wallet"
    )
    bad = api.operator.post("/v1/payment-codes", json={"merchant": shop["address"], "reference": "x"})
    assert_problem(bad, 422, "invalid-request")


def test_a_voucher_holder_pays_a_code_the_programme_paying_its_share(api: Api, shop: dict) -> None:
    from datetime import UTC, datetime, timedelta

    issuer = api.new_wallet(kind="institution", tier=1, name="union")
    assert api.post("operator", "/v1/issuance", {"to": issuer, "amount_fen": 100_000}).status_code == 200
    now = datetime.fromtimestamp(int(api.w3.eth.get_block("latest")["timestamp"]), UTC)
    body = {
        "issuer": issuer,
        "name": "canteen welfare",
        "mode": "grant-list",
        "budget_fen": 10_000,
        "per_person_cap_fen": 5_000,
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "expires_at": (now + timedelta(days=10)).isoformat(),
        "categories": [5812],
    }
    r = post(api.operator, "/v1/voucher-programs", body)
    assert r.status_code == 201, r.text
    pid = next(int(e["args"]["id"]) for e in r.json()["result"]["events"] if e["name"] == "ProgrammeCreated")
    holder = custodial_payer(api)
    grant = {"unit": "fen", "rows": [{"recipient": holder, "amount": 1_000}]}
    assert post(api.operator, f"/v1/voucher-programs/{pid}/grants", grant).status_code == 200
    code = new_code(api, shop["address"], amount_fen=1_500)
    before = balance(api, shop["address"])
    pay = {"form": "voucher", "payer": holder, "programme_id": pid}
    r = post(api.operator, f"/v1/payment-codes/{code['id']}/pay", pay)
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    assert balance(api, shop["address"]) == before + 1_500  # the whole bill
    assert balance(api, holder) == 100_000 - 500  # the voucher paid 1,000 of it
    assert api.auditor.get(f"/v1/voucher-programs/{pid}/holders/{holder}").json()["balance_fen"] == 0
    assert_problem(post(api.operator, f"/v1/payment-codes/{code['id']}/pay", pay), 409, "code-already-paid")
    assert api.auditor.get("/v1/audit/reconciliation").json()["verdict"] == "clean"


def test_a_hard_wallet_card_pays_a_code_once_from_its_reserve(api: Api, shop: dict) -> None:
    """The card signs at the merchant's terminal; the merchant's key submits it to the code."""
    from chain.clients.hardwallet import CardForm
    from wallets.hardwallet import HardWallet

    ctx = api.app.state.ctx
    holder = custodial_payer(api)
    card = HardWallet.issue(ctx.hardwallet.domain)
    ctx.hardwallet.register_card(ctx.operator, card.address, holder, CardForm.CARD)  # as the gateway does
    ctx.hardwallet.load(ctx.custodial(holder), card.address, 5_000)
    card.credit(5_000)
    code = new_code(api, shop["address"], amount_fen=1_200)
    before = balance(api, shop["address"])
    signed = card.sign_payment(shop["address"], 1_200, int(api.w3.eth.get_block("latest")["timestamp"]))
    pay = {"form": "card", "payment": signed.to_json()}
    r = post(shop["client"], f"/v1/payment-codes/{code['id']}/pay", pay)
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    assert balance(api, shop["address"]) == before + 1_200
    assert ctx.hardwallet.card(card.address).reserve == 3_800
    # the same signed payment for another bill: the contract settles a counter once
    other = new_code(api, shop["address"], amount_fen=1_200)
    again = post(shop["client"], f"/v1/payment-codes/{other['id']}/pay", pay)
    assert_problem(again, 409, "card-payment-duplicate")
    assert api.operator.get(f"/v1/payment-codes/{other['id']}").json()["status"] == "active"  # released
    assert balance(api, shop["address"]) == before + 1_200
    # refused before anything is sent: another key's signature, a bill above the reserve
    forged = {**signed.to_json(), "counter": 99}
    assert_problem(
        post(shop["client"], f"/v1/payment-codes/{other['id']}/pay", {"form": "card", "payment": forged}),
        422,
        "invalid-signature",
    )
    # signatures no signer can be recovered from (r or s zero or out of range, a malleable high-s
    # twin): a 422 like any other card that did not sign, never a 500 (red team, HIGH)
    for bad in unrecoverable_signatures(signed.signature):
        payment = {**signed.to_json(), "signature": "0x" + bad.hex()}
        assert_problem(
            post(
                shop["client"], f"/v1/payment-codes/{other['id']}/pay", {"form": "card", "payment": payment}
            ),
            422,
            "invalid-signature",
        )
    big = new_code(api, shop["address"], amount_fen=4_000)
    card.credit(10_000)  # a tampered card: its own balance says yes, the chain's reserve says no
    over = card.sign_payment(shop["address"], 4_000, int(api.w3.eth.get_block("latest")["timestamp"]))
    assert_problem(
        post(
            shop["client"], f"/v1/payment-codes/{big['id']}/pay", {"form": "card", "payment": over.to_json()}
        ),
        409,
        "card-reserve-too-low",
    )


def test_a_card_bill_counts_the_purses_allowed_at_the_merchants_category(api: Api, shop: dict) -> None:
    """The pre-check counts what the settlement would draw: the card's cash plus its purses that
    allow the merchant's category and are unexpired. A bill that cash plus an allowed purse covers
    is paid (the purse first); one they do not cover is refused (409 card-reserve-too-low, naming
    cash and purse amounts) before anything is sent, a purse of another category not counted."""
    import secrets

    from chain.clients.hardwallet import CardForm
    from wallets.hardwallet import HardWallet

    ctx, canteen = api.app.state.ctx, 5812  # the shop's category
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    expires = now + 30 * 86_400
    funder = custodial_payer(api)
    meals, care = (uuid.uuid4().int % 2**31 + 1 for _ in range(2))
    for programme, categories in ((meals, [canteen]), (care, [8050])):
        ctx.hardwallet.create_purse_programme(
            ctx.operator, programme, funder, 500_00, expires, False, categories
        )
    holder = custodial_payer(api)
    key = secrets.token_bytes(32)
    card = HardWallet(key, ctx.hardwallet.domain)
    ctx.hardwallet.register_card(ctx.operator, card.address, holder, CardForm.CARD)
    ctx.hardwallet.load(ctx.custodial(holder), card.address, 1_000)
    card.credit(1_000)
    for programme, categories in ((care, [8050]), (meals, [canteen])):
        ctx.hardwallet.fund_purse(ctx.custodial(funder), card.address, programme, 2_000)
        card.credit_purse(programme, 2_000, categories=categories, expires_at=expires)
    # 3,001 at the canteen: 1,000 cash + 2,000 meals purse do not cover it (the care purse does not
    # count here). The card refuses it offline; a clone of it (the same key) signs it anyway.
    now = int(api.w3.eth.get_block("latest")["timestamp"])  # signed after the card's registration
    assert card.spendable(canteen, now) == 3_000
    clone = HardWallet(key, ctx.hardwallet.domain, offline_balance=10_000, counter=card.counter)
    beyond = clone.sign_payment(shop["address"], 3_001, now).to_json()
    too_big = new_code(api, shop["address"], amount_fen=3_001)
    r = post(shop["client"], f"/v1/payment-codes/{too_big['id']}/pay", {"form": "card", "payment": beyond})
    assert_problem(r, 409, "card-reserve-too-low")
    assert r.json()["detail"] == (
        "3001 fen is above 1000 fen of cash plus 2000 fen of purses allowed at merchant category 5812"
    )
    assert api.operator.get(f"/v1/payment-codes/{too_big['id']}").json()["status"] == "active"
    assert not ctx.hardwallet.is_counter_used(card.address, 1)
    # 2,500: above the cash alone, covered by the meals purse (first) and cash
    bill = new_code(api, shop["address"], amount_fen=2_500)
    before = balance(api, shop["address"])
    signed = card.sign_payment(shop["address"], 2_500, now, category=canteen).to_json()
    r = post(shop["client"], f"/v1/payment-codes/{bill['id']}/pay", {"form": "card", "payment": signed})
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    assert balance(api, shop["address"]) == before + 2_500
    on_chain = {p.programme: p.balance for p in ctx.hardwallet.purses(card.address)}
    assert (ctx.hardwallet.card(card.address).reserve, on_chain) == (500, {care: 2_000, meals: 0})
    assert (card.offline_balance, {p.programme: p.balance for p in card.purses}) == (500, on_chain)
    assert ctx.hardwallet.card(card.address).status.name == "ACTIVE"


# -- one payment per bill ------------------------------------------------------------------------


def relay(client: httpx.Client, code: dict, raw: str) -> httpx.Response:
    return post(
        client,
        f"/v1/payment-codes/{code['id']}/pay",
        {"form": "signed-transaction", "signed_transaction": raw},
    )


def test_one_relayed_transaction_pays_one_code_only(api: Api, shop: dict) -> None:
    first = new_code(api, shop["address"], amount_fen=640)
    second = new_code(api, shop["address"], amount_fen=640)
    own = self_custody_payer(api)
    raw = signed_transfer(api, own, shop["address"], 640)
    before = balance(api, shop["address"])
    r = relay(shop["client"], first, raw)
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    again = assert_problem(relay(shop["client"], second, raw), 409, "transaction-already-known")
    assert again["tx_hash"] == r.json()["payments"][0]["tx_hash"]
    assert api.operator.get(f"/v1/payment-codes/{second['id']}").json()["status"] == "active"
    assert balance(api, shop["address"]) == before + 640


def test_an_earlier_transfer_to_the_merchant_cannot_pay_a_new_code(api: Api, shop: dict) -> None:
    """The payer paid the merchant straight on chain (no code); those bytes pay no bill later."""
    own = self_custody_payer(api)
    raw = signed_transfer(api, own, shop["address"], 450)
    tx_hash = api.w3.eth.send_raw_transaction(bytes.fromhex(raw[2:]))
    assert api.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1
    code = new_code(api, shop["address"], amount_fen=450)
    assert_problem(relay(shop["client"], code, raw), 409, "transaction-already-known")
    assert api.operator.get(f"/v1/payment-codes/{code['id']}").json()["status"] == "active"
    assert balance(api, own.address) == 100_000 - 450


def test_a_relayed_transaction_must_carry_the_senders_next_nonce(api: Api, shop: dict) -> None:
    own = self_custody_payer(api)
    ctx = api.app.state.ctx
    code = new_code(api, shop["address"], amount_fen=300)

    def signed_with_nonce(nonce: int) -> str:
        tx = ctx.cash.cash.functions.transfer(shop["address"], 300).build_transaction(
            {"from": own.address, "nonce": nonce, "gas": 200_000, **ctx.tx.fees(), "chainId": ctx.tx.chain_id}
        )
        return "0x" + bytes(own.sign_transaction(tx).raw_transaction).hex()

    nonce = api.w3.eth.get_transaction_count(own.address)
    gap = assert_problem(relay(shop["client"], code, signed_with_nonce(nonce + 1)), 409, "nonce-not-next")
    assert gap["nonce"] == nonce + 1 and gap["next_nonce"] == nonce
    ctx.cash.transfer(own, shop["address"], 1)  # another transaction takes the nonce
    used = assert_problem(relay(shop["client"], code, signed_with_nonce(nonce)), 409, "nonce-not-next")
    assert used["next_nonce"] == nonce + 1
    assert api.operator.get(f"/v1/payment-codes/{code['id']}").json()["status"] == "active"
    r = relay(shop["client"], code, signed_with_nonce(nonce + 1))
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text


def test_concurrent_relays_of_one_transaction_to_two_codes_pay_one(api: Api, shop: dict) -> None:
    codes = [new_code(api, shop["address"], amount_fen=820) for _ in range(2)]
    own = self_custody_payer(api)
    raw = signed_transfer(api, own, shop["address"], 820)
    results: list[tuple[int, str]] = []

    def pay(code: dict) -> None:
        r = relay(shop["client"], code, raw)
        results.append((r.status_code, r.json().get("type", r.json().get("status"))))

    threads = [threading.Thread(target=pay, args=(c,)) for c in codes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for s, _ in results) == [200, 409], results
    assert "urn:xcpay:problem:transaction-already-known" in {t for _, t in results}
    statuses = sorted(api.operator.get(f"/v1/payment-codes/{c['id']}").json()["status"] for c in codes)
    assert statuses == ["active", "paid"]
    assert balance(api, own.address) == 100_000 - 820


def test_a_merchants_bill_reference_is_held_by_one_code(api: Api, shop: dict) -> None:
    reference = f"table-{uuid.uuid4().hex[:8]}"
    first = new_code(api, shop["address"], amount_fen=1_000, reference=reference)
    again = api.operator.post(
        "/v1/payment-codes", json={"merchant": shop["address"], "amount_fen": 1_000, "reference": reference}
    )
    body = assert_problem(again, 409, "reference-in-use")
    assert body["code_id"] == first["id"]
    # by the merchant's own key, and with another amount: still the same bill reference
    mine = shop["client"].post(
        "/v1/payment-codes", json={"merchant": shop["address"], "amount_fen": 5, "reference": reference}
    )
    assert_problem(mine, 409, "reference-in-use")
    other = api.new_wallet(kind="merchant", tier=2, category=5812, name="Other canteen")
    assert new_code(api, other, amount_fen=1_000, reference=reference)["reference"] == reference
    r = post(
        api.operator,
        f"/v1/payment-codes/{first['id']}/pay",
        {"form": "custodial", "payer": custodial_payer(api)},
    )
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    paid = api.operator.post(
        "/v1/payment-codes", json={"merchant": shop["address"], "amount_fen": 1_000, "reference": reference}
    )
    assert assert_problem(paid, 409, "reference-in-use")["code_id"] == first["id"]


def test_an_expired_unpaid_code_frees_its_reference(api: Api, shop: dict) -> None:
    reference = f"bill-{uuid.uuid4().hex[:8]}"
    old = new_code(api, shop["address"], amount_fen=700, reference=reference, expires_in_s=1)
    time.sleep(1.5)
    new = new_code(api, shop["address"], amount_fen=700, reference=reference)
    assert new["id"] != old["id"] and new["status"] == "active"
    assert api.operator.get(f"/v1/payment-codes/{old['id']}").json()["status"] == "expired"
    again = api.operator.post(
        "/v1/payment-codes", json={"merchant": shop["address"], "amount_fen": 700, "reference": reference}
    )
    assert assert_problem(again, 409, "reference-in-use")["code_id"] == new["id"]


def test_concurrent_codes_for_one_reference_create_one(api: Api, shop: dict) -> None:
    reference = f"race-{uuid.uuid4().hex[:8]}"
    results: list[int] = []

    def create() -> None:
        body = {"merchant": shop["address"], "amount_fen": 250, "reference": reference}
        results.append(api.operator.post("/v1/payment-codes", json=body).status_code)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201, 409, 409, 409], results


def test_code_creation_is_idempotent(api: Api, shop: dict) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"merchant": shop["address"], "amount_fen": 990, "reference": f"idem-{uuid.uuid4().hex[:8]}"}
    first = api.operator.post("/v1/payment-codes", json=body, headers=key)
    assert first.status_code == 201, first.text
    second = api.operator.post("/v1/payment-codes", json=body, headers=key)
    assert second.status_code == 201 and second.json()["id"] == first.json()["id"]
    other = api.operator.post("/v1/payment-codes", json={**body, "amount_fen": 991}, headers=key)
    assert_problem(other, 409, "idempotency-key-reused")
    static = {"merchant": shop["address"]}
    key2 = {"Idempotency-Key": str(uuid.uuid4())}
    ids = {api.operator.post("/v1/payment-codes", json=static, headers=key2).json()["id"] for _ in range(2)}
    assert len(ids) == 1
    # another key's same Idempotency-Key is its own
    assert shop["client"].post("/v1/payment-codes", json=static, headers=key2).json()["id"] not in ids


def test_a_frozen_card_holders_payment_is_refused_and_goes_through_once_unfrozen(
    api: Api, shop: dict
) -> None:
    """The card form checks the holder as the settlement will (HolderRefused): a clear 409, nothing
    sent, the bill still payable; after the unfreeze the same signed payment pays it."""
    from chain.clients.hardwallet import CardForm
    from wallets.hardwallet import HardWallet

    ctx = api.app.state.ctx
    holder = custodial_payer(api)
    card = HardWallet.issue(ctx.hardwallet.domain)
    ctx.hardwallet.register_card(ctx.operator, card.address, holder, CardForm.CARD)
    ctx.hardwallet.load(ctx.custodial(holder), card.address, 5_000)
    card.credit(5_000)
    code = new_code(api, shop["address"], amount_fen=700)
    signed = card.sign_payment(shop["address"], 700, int(api.w3.eth.get_block("latest")["timestamp"]))
    pay = {"form": "card", "payment": signed.to_json()}
    assert api.post("regulator", "/v1/regulator/freeze", {"address": holder}).status_code == 200
    before = balance(api, shop["address"])
    assert_problem(
        post(shop["client"], f"/v1/payment-codes/{code['id']}/pay", pay), 409, "card-holder-frozen"
    )
    assert api.operator.get(f"/v1/payment-codes/{code['id']}").json()["status"] == "active"
    assert not ctx.hardwallet.is_counter_used(card.address, signed.payment.counter)
    assert api.post("regulator", "/v1/regulator/unfreeze", {"address": holder}).status_code == 200
    r = post(shop["client"], f"/v1/payment-codes/{code['id']}/pay", pay)
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    assert balance(api, shop["address"]) == before + 700


# -- a card's bills against one reserve (rt8 HIGH-2, MEDIUM-1) -------------------------------------


def loaded_card(api: Api, fen: int) -> object:
    from chain.clients.hardwallet import CardForm
    from wallets.hardwallet import HardWallet

    ctx = api.app.state.ctx
    holder = custodial_payer(api)
    card = HardWallet.issue(ctx.hardwallet.domain)
    ctx.hardwallet.register_card(ctx.operator, card.address, holder, CardForm.CARD)
    ctx.hardwallet.load(ctx.custodial(holder), card.address, fen)
    card.credit(fen)
    return card


def card_pay(api: Api, shop: dict, card: object, code: dict, fen: int) -> httpx.Response:
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    signed = card.sign_payment(shop["address"], fen, now)  # type: ignore[attr-defined]
    return post(
        shop["client"], f"/v1/payment-codes/{code['id']}/pay", {"form": "card", "payment": signed.to_json()}
    )


def test_one_card_paying_two_bills_at_once_pays_only_what_its_reserve_covers(api: Api, shop: dict) -> None:
    """A 500-fen reserve, two 400-fen bills paid at the same moment (three cards at once): the card's
    claims are serialised and count the payment still being settled, so one is paid and the other
    refused before anything is sent (409 card-reserve-too-low); no card is blocked as a clone."""
    ctx = api.app.state.ctx
    cards = [loaded_card(api, 500) for _ in range(3)]
    for card in cards:  # two terminals each saw the card with 500 fen on it (offline, as a clone would)
        card.credit(300)  # type: ignore[attr-defined]
    jobs = [(card, new_code(api, shop["address"], amount_fen=400)) for card in cards for _ in range(2)]
    signed = {
        code["id"]: card.sign_payment(shop["address"], 400, int(api.w3.eth.get_block("latest")["timestamp"]))  # type: ignore[attr-defined]
        for card, code in jobs
    }
    answers: dict[str, httpx.Response] = {}
    barrier = threading.Barrier(len(jobs))

    def pay(code: dict) -> None:
        barrier.wait()
        body = {"form": "card", "payment": signed[code["id"]].to_json()}
        answers[code["id"]] = post(shop["client"], f"/v1/payment-codes/{code['id']}/pay", body)

    threads = [threading.Thread(target=pay, args=(code,)) for _, code in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, card in enumerate(cards):
        pair = [answers[code["id"]] for _, code in jobs[2 * i : 2 * i + 2]]
        assert sorted(r.status_code for r in pair) == [200, 409], [r.text for r in pair]
        refused = next(r for r in pair if r.status_code == 409)
        assert_problem(refused, 409, "card-reserve-too-low")
        on_chain = ctx.hardwallet.card(card.address)  # type: ignore[attr-defined]
        assert (on_chain.status.name, on_chain.reserve) == ("ACTIVE", 100)
    statuses = sorted(api.operator.get(f"/v1/payment-codes/{c['id']}").json()["status"] for _, c in jobs)
    assert statuses == ["active"] * 3 + ["paid"] * 3


def test_a_card_shortfall_ends_the_code_short_and_what_arrived_is_refundable(
    api: Api, shop: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What still ends in a shortfall (an offline upload settling the same card at that moment: here
    the pre-check is switched off to let one through) does not leave the bill stuck: the code ends
    ``short``, its payment says what arrived (``settled_fen``), the merchant may refund that, and
    the bill's reference is free once the code expires."""
    from services.operator.families.paycodes import service

    ctx = api.app.state.ctx
    card = loaded_card(api, 100)
    card.credit(300)  # type: ignore[attr-defined]  # a clone's balance: it signs what the chain lacks
    reference = f"short-{uuid.uuid4().hex[:8]}"
    code = new_code(api, shop["address"], amount_fen=400, reference=reference, expires_in_s=4)
    monkeypatch.setattr(service, "_check_cover", lambda *a, **k: None)
    before = balance(api, shop["address"])
    r = card_pay(api, shop, card, code, 400)
    monkeypatch.undo()
    assert_problem(r, 409, "card-payment-shortfall")
    out = api.operator.get(f"/v1/payment-codes/{code['id']}").json()
    assert out["status"] == "short"
    assert [(p["status"], p["amount_fen"], p["settled_fen"]) for p in out["payments"]] == [
        ("shortfall", 400, 100)
    ]
    assert balance(api, shop["address"]) == before + 100
    assert ctx.hardwallet.card(card.address).status.name == "BLOCKED"  # type: ignore[attr-defined]
    # final: not payable again; what arrived goes back to the card's holder, no more
    again = post(
        api.operator,
        f"/v1/payment-codes/{code['id']}/pay",
        {"form": "custodial", "payer": custodial_payer(api)},
    )
    assert_problem(again, 409, "code-already-paid")
    path = f"/v1/payment-codes/{code['id']}/payments/{out['payments'][0]['id']}/refunds"
    assert_problem(post(shop["client"], path, {"amount_fen": 101}), 409, "refund-exceeds-payment")
    refunded = post(shop["client"], path, {"amount_fen": 100})
    assert refunded.status_code == 201, refunded.text
    assert balance(api, shop["address"]) == before
    time.sleep(5)  # expired: the reference is free for a new bill
    assert api.operator.get(f"/v1/payment-codes/{code['id']}").json()["status"] == "short"
    new_code(api, shop["address"], amount_fen=400, reference=reference)


def test_a_purse_about_to_expire_in_wall_time_is_not_counted(api: Api, shop: dict) -> None:
    """The latest block's time lags wall time on a quiet chain; a purse counts only if it is still
    unexpired a margin after the later of the two, so a purse that the settlement would find
    expired is refused before anything is sent (409) and the card stays active."""
    from services.operator.families.paycodes.service import PURSE_MARGIN_S

    ctx = api.app.state.ctx
    funder = custodial_payer(api)
    programme = uuid.uuid4().int % 2**31 + 1
    card = loaded_card(api, 100)
    expires = max(int(api.w3.eth.get_block("latest")["timestamp"]), int(time.time())) + PURSE_MARGIN_S - 1
    ctx.hardwallet.create_purse_programme(ctx.operator, programme, funder, 10_000, expires, False, [5812])
    ctx.hardwallet.fund_purse(ctx.custodial(funder), card.address, programme, 1_000)  # type: ignore[attr-defined]
    card.credit_purse(programme, 1_000, categories=[5812], expires_at=expires)  # type: ignore[attr-defined]
    code = new_code(api, shop["address"], amount_fen=600)
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    signed = card.sign_payment(shop["address"], 600, now, category=5812)  # type: ignore[attr-defined]
    r = post(
        shop["client"], f"/v1/payment-codes/{code['id']}/pay", {"form": "card", "payment": signed.to_json()}
    )
    assert_problem(r, 409, "card-reserve-too-low")
    assert "plus 0 fen of purses" in r.json()["detail"]
    assert ctx.hardwallet.card(card.address).status.name == "ACTIVE"  # type: ignore[attr-defined]
    assert api.operator.get(f"/v1/payment-codes/{code['id']}").json()["status"] == "active"


def test_a_purse_paid_shortfall_refunds_the_purse_part_to_its_funder(
    api: Api, shop: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shortfall whose covered part a purse paid in part: its refund returns the purse's part to
    the purse's funder and only the cash part to the holder, and the reconciliation finds it sound."""
    from services.operator.families.paycodes import service

    ctx = api.app.state.ctx
    funder = custodial_payer(api)
    programme = uuid.uuid4().int % 2**31 + 1
    expires = int(time.time()) + 86_400
    ctx.hardwallet.create_purse_programme(ctx.operator, programme, funder, 10_000, expires, False, [5812])
    card = loaded_card(api, 100)
    ctx.hardwallet.fund_purse(ctx.custodial(funder), card.address, programme, 200)  # type: ignore[attr-defined]
    card.credit_purse(programme, 200, categories=[5812], expires_at=expires)  # type: ignore[attr-defined]
    card.credit(300)  # type: ignore[attr-defined]  # a clone's balance
    holder = ctx.hardwallet.card(card.address).holder  # type: ignore[attr-defined]
    code = new_code(api, shop["address"], amount_fen=500)
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    signed = card.sign_payment(shop["address"], 500, now, category=5812)  # type: ignore[attr-defined]
    monkeypatch.setattr(service, "_check_cover", lambda *a, **k: None)
    r = post(
        shop["client"], f"/v1/payment-codes/{code['id']}/pay", {"form": "card", "payment": signed.to_json()}
    )
    monkeypatch.undo()
    assert_problem(r, 409, "card-payment-shortfall")
    out = api.operator.get(f"/v1/payment-codes/{code['id']}").json()
    assert (out["status"], out["payments"][0]["settled_fen"]) == ("short", 300)
    funder_before, holder_before = balance(api, funder), balance(api, holder)
    path = f"/v1/payment-codes/{code['id']}/payments/{out['payments'][0]['id']}/refunds"
    refunded = post(shop["client"], path, {"amount_fen": 300})
    assert refunded.status_code == 201, refunded.text
    assert (balance(api, funder) - funder_before, balance(api, holder) - holder_before) == (200, 100)
    report = api.auditor.get("/v1/audit/reconciliation").json()
    assert [d for d in report["discrepancies"] if d.get("kind") == "purse-refundable-as-cash"] == []
