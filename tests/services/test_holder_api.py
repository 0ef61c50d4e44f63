"""The holder's channel over real HTTP on both databases: Sign-In with Ethereum (EIP-4361), the
holder key it gives, and the holder routes that see and act only on the key's own wallet."""

from __future__ import annotations

import csv
import io
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from sqlalchemy import update

from chain.clients.hardwallet import CardForm, CardStatus, Outcome, PaymentDomain, order_ref
from chain.clients.prepaid import PackageStatus
from chain.exceptions import ContractError
from services.common.models import GatewayCard, utcnow
from services.operator.families.holder.models import HolderChallenge
from tests.services.conftest import Api
from wallets.hardwallet import HardWallet

DAY = 86_400


def problem(r: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["type"] == f"urn:xcpay:problem:{slug}", body
    return body


def self_custody(api: Api, name: str) -> LocalAccount:
    acct: LocalAccount = Account.create()
    body = {
        "kind": "personal",
        "tier": 2,
        "display_name": name,
        "identity": f"id-{uuid.uuid4()}",
        "custody": "self",
        "address": acct.address,
    }
    r = api.post("operator", "/v1/wallets", body)
    assert r.status_code == 201, r.text
    return acct


def sign(acct: LocalAccount, message: str) -> str:
    return "0x" + bytes(acct.sign_message(encode_defunct(text=message)).signature).hex()


def challenge(api: Api, wallet: str) -> dict[str, Any]:
    r = api.anonymous.post("/v1/holder/challenge", json={"wallet": wallet})
    assert r.status_code == 201, r.text
    return dict(r.json())


def sign_in(api: Api, acct: LocalAccount) -> httpx.Client:
    c = challenge(api, acct.address)
    r = api.anonymous.post(
        "/v1/holder/session", json={"message": c["message"], "signature": sign(acct, c["message"])}
    )
    assert r.status_code == 201, r.text
    assert r.json()["wallet"] == acct.address
    return httpx.Client(base_url=api.url, headers={"X-API-Key": r.json()["key"]}, timeout=60)


def custodial_holder(api: Api, name: str) -> tuple[str, httpx.Client]:
    wallet = api.new_wallet(tier=2, name=name)
    r = api.operator.post("/v1/holder/keys", json={"wallet": wallet, "ttl_minutes": 30})
    assert r.status_code == 201, r.text
    return wallet, httpx.Client(base_url=api.url, headers={"X-API-Key": r.json()["key"]}, timeout=60)


# -- sign-in -------------------------------------------------------------------------------------


class TestSignIn:
    def test_a_signed_challenge_gives_a_key_for_that_wallet_only(self, api: Api) -> None:
        acct = self_custody(api, "resident a")
        c = challenge(api, acct.address)
        assert f"\n{acct.address}\n" in c["message"] and f"Nonce: {c['nonce']}" in c["message"]
        assert "wants you to sign in with your Ethereum account:" in c["message"]
        holder = sign_in(api, acct)
        r = holder.get("/v1/holder/balance")
        assert r.status_code == 200, r.text
        assert (r.json()["wallet"], r.json()["display_name"]) == (acct.address, "resident a")
        # a holder key reaches nothing but the holder routes
        problem(holder.get(f"/v1/wallets/{acct.address}"), 403, "forbidden-role")
        problem(holder.get("/v1/audit/events"), 403, "forbidden-role")

    def test_a_challenge_signs_in_once(self, api: Api) -> None:
        acct = self_custody(api, "resident b")
        c = challenge(api, acct.address)
        body = {"message": c["message"], "signature": sign(acct, c["message"])}
        assert api.anonymous.post("/v1/holder/session", json=body).status_code == 201
        problem(api.anonymous.post("/v1/holder/session", json=body), 409, "challenge-used")

    def test_an_expired_challenge_is_refused(self, api: Api) -> None:
        acct = self_custody(api, "resident c")
        c = challenge(api, acct.address)
        with api.app.state.ctx.db.session() as s:
            s.execute(
                update(HolderChallenge)
                .where(HolderChallenge.nonce == c["nonce"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
            s.commit()
        body = {"message": c["message"], "signature": sign(acct, c["message"])}
        problem(api.anonymous.post("/v1/holder/session", json=body), 410, "challenge-expired")

    def test_a_signature_by_another_key_is_refused_and_does_not_spend_the_challenge(self, api: Api) -> None:
        acct = self_custody(api, "resident d")
        c = challenge(api, acct.address)
        thief: LocalAccount = Account.create()
        body = {"message": c["message"], "signature": sign(thief, c["message"])}
        r = problem(api.anonymous.post("/v1/holder/session", json=body), 403, "signature-not-wallet")
        assert thief.address in r["detail"]
        good = {"message": c["message"], "signature": sign(acct, c["message"])}
        assert api.anonymous.post("/v1/holder/session", json=good).status_code == 201

    def test_an_altered_or_foreign_message_is_refused(self, api: Api) -> None:
        acct = self_custody(api, "resident e")
        c = challenge(api, acct.address)
        altered = c["message"].replace("Version: 1", "Version: 2")
        body = {"message": altered, "signature": sign(acct, altered)}
        problem(api.anonymous.post("/v1/holder/session", json=body), 422, "challenge-unknown")
        body = {"message": "hello", "signature": sign(acct, "hello")}
        problem(api.anonymous.post("/v1/holder/session", json=body), 422, "challenge-unknown")

    def test_an_unregistered_wallet_gets_no_challenge(self, api: Api) -> None:
        r = api.anonymous.post("/v1/holder/challenge", json={"wallet": Account.create().address})
        problem(r, 404, "wallet-not-registered")

    def test_holder_keys_come_only_from_sign_in_or_the_operator(self, api: Api) -> None:
        wallet = api.new_wallet(tier=2, name="resident f")
        r = api.admin.post("/v1/api-keys", json={"role": "holder", "wallet": wallet})
        problem(r, 422, "invalid-request")
        acct = self_custody(api, "resident g")  # self-custody: signs in, gets no key from the operator
        r = api.operator.post("/v1/holder/keys", json={"wallet": acct.address})
        problem(r, 422, "not-a-custodial-wallet")
        problem(api.admin.post("/v1/holder/keys", json={"wallet": wallet}), 403, "forbidden-role")


# -- own data only ---------------------------------------------------------------------------------


def test_balance_limits_and_history_are_the_holders_own(api: Api) -> None:
    a, alice = custodial_holder(api, "alice")
    b, bob = custodial_holder(api, "bob")
    shop = api.new_wallet(kind="merchant", tier=2, category=5411, name="corner shop")
    assert api.post("operator", "/v1/issuance", {"to": a, "amount_fen": 5_000}).status_code == 200
    assert api.post("operator", "/v1/issuance", {"to": b, "amount_fen": 700}).status_code == 200
    r = api.post("operator", "/v1/transfers", {"from": a, "to": shop, "amount_fen": 1_200})
    assert r.status_code == 200, r.text

    mine = alice.get("/v1/holder/balance").json()
    assert (mine["wallet"], mine["balance_fen"], mine["held_fen"], mine["available_fen"]) == (
        a,
        3_800,
        0,
        3_800,
    )
    limits = mine["limits"]
    assert mine["spent_today_fen"] == 1_200
    assert mine["daily_left_fen"] == limits["daily_cap_fen"] - 1_200
    assert mine["balance_room_fen"] == limits["balance_cap_fen"] - 3_800
    assert bob.get("/v1/holder/balance").json()["balance_fen"] == 700

    page = alice.get("/v1/holder/history").json()
    moves = [(m["direction"], m["amount_fen"], m["counterparty_name"], m["family"]) for m in page["items"]]
    assert moves == [("in", 5_000, "(issuer)", "cash"), ("out", 1_200, "corner shop", "cash")]
    assert page["items"][0]["purpose"] == "Issued"
    assert [m["amount_fen"] for m in bob.get("/v1/holder/history").json()["items"]] == [700]
    first = alice.get("/v1/holder/history", params={"limit": 1}).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = alice.get("/v1/holder/history", params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert [m["amount_fen"] for m in second["items"]] == [1_200]
    outs = alice.get("/v1/holder/history", params={"direction": "out"}).json()["items"]
    assert [m["amount_fen"] for m in outs] == [1_200]

    export = alice.get("/v1/holder/history/export")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(r["direction"], r["amount_fen"]) for r in rows] == [("in", "5000"), ("out", "1200")]
    # No holder route takes a wallet: one named in the query (another's, or even her own) is
    # refused rather than ignored (red team, LOW: ?wallet=<bob> answered with her own history, as
    # if it were his), and so is any parameter a route does not read.
    for path in ("/v1/holder/balance", "/v1/holder/history", "/v1/holder/history/export"):
        for params in ({"wallet": b}, {"wallet": a}, {"limit": 1, "wallet": b}):
            if "limit" in params and path != "/v1/holder/history":
                continue
            body = problem(alice.get(path, params=params), 422, "unknown-query-parameter")
            assert body["unknown"] == ["wallet"], body
    body = problem(alice.get("/v1/holder/history", params={"limt": 1}), 422, "unknown-query-parameter")
    assert "cursor, direction, family, limit" in body["detail"], body
    zh = alice.get("/v1/holder/history", params={"wallet": b}, headers={"Accept-Language": "zh-CN"})
    assert zh.json()["title"] == "此接口不接受该查询参数"


def test_a_custodial_holder_revokes_a_mandate_which_then_pulls_nothing(api: Api) -> None:
    ctx = api.app.state.ctx
    a, alice = custodial_holder(api, "commuter a")
    _, bob = custodial_holder(api, "commuter b")
    merchant = api.new_wallet(kind="merchant", tier=2, category=4111, name="metro")
    assert api.post("operator", "/v1/issuance", {"to": a, "amount_fen": 10_000}).status_code == 200
    holder_key, merchant_key = ctx.custodial(a), ctx.custodial(merchant)
    expires = int(api.w3.eth.get_block("latest")["timestamp"]) + 30 * DAY
    mandate, _ = ctx.quickpay.grant(holder_key, merchant, 2_000, 5_000, expires)
    ctx.quickpay.approve(holder_key, 10_000)
    ctx.quickpay.pull(merchant_key, mandate, 500, order_ref("ride-1"))

    listed = alice.get("/v1/holder/mandates").json()
    assert [(m["id"], m["merchant_name"], m["total_pulled_fen"], m["active"]) for m in listed] == [
        (mandate, "metro", 500, True)
    ]
    assert bob.get("/v1/holder/mandates").json() == []
    # another's mandate is not found, and nothing changes
    r = bob.post(f"/v1/holder/mandates/{mandate}/revoke", headers={"Idempotency-Key": str(uuid.uuid4())})
    problem(r, 404, "mandate-not-found")
    assert ctx.quickpay.mandate(mandate).revoked is False

    once = {"Idempotency-Key": str(uuid.uuid4())}
    r = alice.post(f"/v1/holder/mandates/{mandate}/revoke", headers=once)
    assert r.status_code == 200, r.text
    assert r.json()["operation"]["status"] == "confirmed" and r.json()["sign_yourself"] is None
    again = alice.post(f"/v1/holder/mandates/{mandate}/revoke", headers=once)  # a retry: the first outcome
    assert again.json()["operation"]["id"] == r.json()["operation"]["id"]
    # the reconciliation finds the revocation the operation asked for on chain (MandateRevoked)
    op_id = r.json()["operation"]["id"]
    report = api.auditor.get("/v1/audit/reconciliation").json()
    assert [d for d in report["discrepancies"] if d["operation_id"] == op_id] == []
    assert ctx.quickpay.mandate(mandate).revoked is True
    with pytest.raises(ContractError) as refused:
        ctx.quickpay.pull(merchant_key, mandate, 500, order_ref("ride-2"))
    assert (refused.value.name, refused.value.args_tuple) == ("QuickPayRevoked", (mandate,))
    assert alice.get("/v1/holder/mandates").json()[0]["active"] is False
    r = alice.post(f"/v1/holder/mandates/{mandate}/revoke", headers={"Idempotency-Key": str(uuid.uuid4())})
    problem(r, 409, "mandate-revoked")
    assert ctx.cash.balance_of(a) == 9_500


def test_a_self_custody_holder_gets_the_revocation_to_sign(api: Api) -> None:
    ctx = api.app.state.ctx
    acct = self_custody(api, "self holder")
    holder = sign_in(api, acct)
    merchant = api.new_wallet(kind="merchant", tier=2, category=4111, name="bus")
    expires = int(api.w3.eth.get_block("latest")["timestamp"]) + DAY
    api.w3.eth.send_transaction({"from": api.w3.eth.accounts[0], "to": acct.address, "value": 10**18})
    mandate, _ = ctx.quickpay.grant(acct, merchant, 1_000, 2_000, expires)
    r = holder.post(f"/v1/holder/mandates/{mandate}/revoke", headers={"Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 200, r.text
    call = r.json()["sign_yourself"]
    assert r.json()["operation"] is None and call["to"] == ctx.quickpay.address
    assert call["eip681"] == f"ethereum:{ctx.quickpay.address}@{call['chain_id']}/revoke?uint256={mandate}"
    assert ctx.quickpay.mandate(mandate).revoked is False  # nothing was sent for them
    tx = {"to": call["to"], "data": call["data"], "chainId": call["chain_id"], "gas": 200_000}
    tx["gasPrice"] = 2 * api.w3.eth.gas_price
    tx["nonce"] = api.w3.eth.get_transaction_count(acct.address)
    api.w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    assert ctx.quickpay.mandate(mandate).revoked is True


def test_packages_are_the_holders_own(api: Api) -> None:
    _, alice = custodial_holder(api, "gym member")
    _, bob = custodial_holder(api, "not a member")
    assert alice.get("/v1/holder/packages").json() == []
    assert bob.get("/v1/holder/packages").json() == []
    assert alice.get("/v1/holder/packages").status_code == 200


def test_operator_and_admin_keys_are_no_holders(api: Api) -> None:
    for role in ("admin", "operator", "regulator", "auditor", "merchant", "checker"):
        client = getattr(api, role)
        for path in (
            "/v1/holder/balance",
            "/v1/holder/history",
            "/v1/holder/mandates",
            "/v1/holder/packages",
            "/v1/holder/cards",
            "/v1/holder/vouchers",
            "/v1/holder/disbursements",
        ):
            problem(client.get(path), 403, "forbidden-role")
        for path in (
            f"/v1/holder/cards/{Account.create().address}/report-lost",
            "/v1/holder/packages/1/cancel",
            "/v1/holder/vouchers/1/claims/0",
            "/v1/holder/disbursements/ref-1/rows/0/claim",
        ):
            r = client.post(path, headers={"Idempotency-Key": str(uuid.uuid4())})
            problem(r, 403, "forbidden-role")


# -- cards, packages, vouchers, disbursement rows: the holder's own only ----------------------------


def idem() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def chain_now(api: Api) -> int:
    return int(api.w3.eth.get_block("latest")["timestamp"])


def issue_card(api: Api, holder: str, load: int = 0, serial: str | None = None) -> HardWallet:
    """A card registered to ``holder`` on chain (as the gateway's issuance does, with its record
    when ``serial`` is given) and loaded from the custodial holder's wallet."""
    ctx = api.app.state.ctx
    domain = PaymentDomain(ctx.manifest.chain_id, ctx.hardwallet.address)
    card = HardWallet.issue(domain, form=CardForm.CARD)
    ctx.hardwallet.register_card(ctx.operator, card.address, holder, CardForm.CARD)
    if serial is not None:
        with ctx.db.session() as s:
            s.add(GatewayCard(address=card.address, holder=holder, form="card", serial=serial))
            s.commit()
    if load:
        ctx.hardwallet.load(ctx.custodial(holder), card.address, load)
        card.credit(load)
    return card


def test_a_holder_sees_and_reports_lost_only_their_own_cards(api: Api) -> None:
    ctx = api.app.state.ctx
    a, alice = custodial_holder(api, "card holder a")
    _, bob = custodial_holder(api, "card holder b")
    canteen = api.new_wallet(kind="merchant", tier=2, category=5812, name="canteen")
    assert api.post("operator", "/v1/issuance", {"to": a, "amount_fen": 1_000_00}).status_code == 200
    card = issue_card(api, a, load=300_00, serial="SN-0001")
    spare = issue_card(api, a)

    listed = alice.get("/v1/holder/cards").json()
    assert [(c["card"], c["serial"], c["status"], c["reserve_fen"]) for c in listed] == sorted(
        [(card.address, "SN-0001", "active", 300_00), (spare.address, None, "active", 0)]
    )
    assert listed[0]["offline_cap_fen"] == ctx.hardwallet.offline_cap()
    assert bob.get("/v1/holder/cards").json() == []
    # another's card and an unknown one: the same 404, and nothing is sent
    before = api.w3.eth.block_number
    for who, which in ((bob, card.address), (alice, Account.create().address)):
        problem(who.post(f"/v1/holder/cards/{which}/report-lost", headers=idem()), 404, "card-not-found")
    assert api.w3.eth.block_number == before
    assert ctx.hardwallet.card(card.address).status == CardStatus.ACTIVE

    signed_before = card.sign_payment(canteen, 20_00, chain_now(api))
    once = idem()
    r = alice.post(f"/v1/holder/cards/{card.address}/report-lost", headers=once)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "confirmed"
    (event,) = [e for e in r.json()["result"]["events"] if e["name"] == "CardReportedLost"]
    assert event["args"]["by"] == a  # the custodial holder's own key signed the report
    info = ctx.hardwallet.card(card.address)
    assert info.status == CardStatus.LOST
    assert info.grace_ends_at == info.lost_at + ctx.hardwallet.contract.functions.gracePeriod().call()
    mine = {c["card"]: c for c in alice.get("/v1/holder/cards").json()}[card.address]
    assert (mine["status"], mine["lost_at"], mine["grace_ends_at"]) == (
        "lost",
        info.lost_at,
        info.grace_ends_at,
    )
    # the grace rule: signed before the report, it still settles; signed after, it never does
    signed_after = card.sign_payment(canteen, 20_00, info.lost_at + 60)
    outcomes = ctx.hardwallet.settle(ctx.operator, [signed_before, signed_after]).outcomes
    assert [o.outcome for o in outcomes] == [Outcome.SETTLED, Outcome.REJECTED]
    problem(
        alice.post(f"/v1/holder/cards/{card.address}/report-lost", headers=idem()), 409, "card-wrong-status"
    )
    # the same request again (a retry after a lost answer): the first outcome, nothing sent
    before = api.w3.eth.block_number
    again = alice.post(f"/v1/holder/cards/{card.address}/report-lost", headers=once)
    assert (again.status_code, again.json()["id"]) == (200, r.json()["id"])
    r2 = alice.post(f"/v1/holder/cards/{spare.address}/report-lost", headers=once)
    problem(r2, 409, "idempotency-key-reused")
    assert api.w3.eth.block_number == before
    report = api.auditor.get("/v1/audit/reconciliation").json()
    assert [d for d in report["discrepancies"] if d.get("operation_id") == r.json()["id"]] == []


def test_a_self_custody_holders_lost_card_is_reported_by_the_service(api: Api) -> None:
    ctx = api.app.state.ctx
    acct = self_custody(api, "self card holder")
    holder = sign_in(api, acct)
    card = issue_card(api, acct.address)
    r = holder.post(f"/v1/holder/cards/{card.address}/report-lost", headers=idem())
    assert r.status_code == 200, r.text
    (event,) = [e for e in r.json()["result"]["events"] if e["name"] == "CardReportedLost"]
    assert event["args"]["by"] == ctx.operator.address  # on the holder's signed-in call
    assert ctx.hardwallet.card(card.address).status == CardStatus.LOST


def _package(api: Api, consumer: str, fee: int = 0) -> int:
    gym = api.new_wallet(kind="merchant", tier=2, category=7997, name="gym")
    r = api.post("regulator", "/v1/prepaid/merchants", {"merchant": gym, "supervised_bps": 10_000})
    assert r.status_code == 200, r.text
    body = {
        "consumer": consumer,
        "merchant": gym,
        "sessions": 10,
        "unit_price_fen": 100_00,
        "expires_at": "2099-01-01T00:00:00+00:00",
        "cancellation_fee_fen": fee,
    }
    r = api.post("operator", "/v1/prepaid/packages", body)
    assert r.status_code == 201, r.text
    return int(r.json()["package_id"])


def test_a_holder_confirms_sessions_and_cancels_only_their_own_packages(api: Api) -> None:
    ctx = api.app.state.ctx
    a, alice = custodial_holder(api, "gym member a")
    _, bob = custodial_holder(api, "gym member b")
    assert api.post("operator", "/v1/issuance", {"to": a, "amount_fen": 2_000_00}).status_code == 200
    pid = _package(api, a, fee=50_00)
    assert [p["id"] for p in alice.get("/v1/holder/packages").json()] == [pid]

    before = api.w3.eth.block_number
    r = bob.post(f"/v1/holder/packages/{pid}/consume", json={"sessions": 1}, headers=idem())
    problem(r, 404, "package-not-found")
    problem(bob.post(f"/v1/holder/packages/{pid}/cancel", headers=idem()), 404, "package-not-found")
    r = alice.post("/v1/holder/packages/987654/consume", json={"sessions": 1}, headers=idem())
    problem(r, 404, "package-not-found")
    assert api.w3.eth.block_number == before
    problem(
        alice.post(f"/v1/holder/packages/{pid}/consume", json={"sessions": 0}, headers=idem()),
        422,
        "invalid-request",
    )

    r = alice.post(f"/v1/holder/packages/{pid}/consume", json={"sessions": 2}, headers=idem())
    assert r.status_code == 200, r.text
    assert r.json()["operation"]["status"] == "confirmed" and r.json()["sign_yourself"] is None
    assert ctx.prepaid.package(pid).used == 2
    r = alice.post(f"/v1/holder/packages/{pid}/consume", json={"sessions": 9}, headers=idem())
    problem(r, 422, "too-many-sessions")  # the prepaid family's own rule
    balance = ctx.cash.balance_of(a)
    once = idem()
    r = alice.post(f"/v1/holder/packages/{pid}/cancel", headers=once)
    assert r.status_code == 200, r.text
    p = ctx.prepaid.package(pid)
    assert p.status == PackageStatus.CANCELLED
    assert ctx.cash.balance_of(a) == balance + 8 * 100_00 - 50_00  # the unused part less the fee
    assert alice.get("/v1/holder/packages").json()[0]["status"] == "cancelled"
    problem(alice.post(f"/v1/holder/packages/{pid}/cancel", headers=idem()), 409, "package-closed")
    again = alice.post(f"/v1/holder/packages/{pid}/cancel", headers=once)  # a retry: the first outcome
    assert again.json()["operation"]["id"] == r.json()["operation"]["id"]
    assert ctx.cash.balance_of(a) == balance + 8 * 100_00 - 50_00


def test_a_self_custody_holder_gets_the_package_calls_to_sign(api: Api) -> None:
    ctx = api.app.state.ctx
    acct = self_custody(api, "self gym member")
    holder = sign_in(api, acct)
    gym = api.new_wallet(kind="merchant", tier=2, category=7997, name="self gym")
    assert (
        api.post(
            "regulator", "/v1/prepaid/merchants", {"merchant": gym, "supervised_bps": 10_000}
        ).status_code
        == 200
    )
    api.w3.eth.send_transaction({"from": api.w3.eth.accounts[0], "to": acct.address, "value": 10**18})
    assert (
        api.post("operator", "/v1/issuance", {"to": acct.address, "amount_fen": 1_000_00}).status_code == 200
    )
    pid, _ = ctx.prepaid.prepay(acct, gym, 5, 100_00, chain_now(api) + 30 * DAY)
    r = holder.post(f"/v1/holder/packages/{pid}/consume", json={"sessions": 2}, headers=idem())
    assert r.status_code == 200, r.text
    call = r.json()["sign_yourself"]
    assert r.json()["operation"] is None and call["to"] == ctx.prepaid.address
    assert (
        call["eip681"] == f"ethereum:{ctx.prepaid.address}@{call['chain_id']}/consume?uint256={pid}&uint32=2"
    )
    assert ctx.prepaid.package(pid).used == 0  # nothing was sent for them
    tx = {"to": call["to"], "data": call["data"], "chainId": call["chain_id"], "gas": 300_000}
    tx["gasPrice"] = 2 * api.w3.eth.gas_price
    tx["nonce"] = api.w3.eth.get_transaction_count(acct.address)
    api.w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    assert ctx.prepaid.package(pid).used == 2
    call = holder.post(f"/v1/holder/packages/{pid}/cancel", headers=idem()).json()["sign_yourself"]
    assert call["eip681"].endswith(f"/cancel?uint256={pid}")


def test_a_holder_sees_their_vouchers_where_they_pay_and_claims_their_own_grant(api: Api) -> None:
    ctx = api.app.state.ctx
    a, alice = custodial_holder(api, "voucher winner a")
    b, bob = custodial_holder(api, "voucher winner b")
    office = api.new_wallet(kind="institution", tier=1, name="commerce office")
    market = api.new_wallet(kind="merchant", tier=2, category=5411, name="market")
    assert api.post("operator", "/v1/issuance", {"to": office, "amount_fen": 100_00}).status_code == 200
    now = chain_now(api)
    body = {
        "issuer": office,
        "name": "spring vouchers",
        "mode": "grant-list",
        "budget_fen": 100_00,
        "per_person_cap_fen": 50_00,
        "starts_at": datetime.fromtimestamp(now - 60, UTC).isoformat(),
        "expires_at": datetime.fromtimestamp(now + 14 * DAY, UTC).isoformat(),
        "categories": [5411],
        "min_bill_fen": 100_00,
        "discount_fen": 20_00,
    }
    r = api.post("operator", "/v1/voucher-programs", body)
    assert r.status_code == 201, r.text
    pid = int(r.json()["programme_id"])
    rows = [{"recipient": a, "amount": 50_00}, {"recipient": b, "amount": 30_00}]
    r = api.post("operator", f"/v1/voucher-programs/{pid}/campaign", {"unit": "fen", "rows": rows})
    assert r.status_code == 201, r.text

    (mine,) = alice.get("/v1/holder/vouchers").json()
    assert (mine["programme_id"], mine["name"], mine["issuer_name"], mine["status"]) == (
        pid,
        "spring vouchers",
        "commerce office",
        "open",
    )
    assert (mine["balance_fen"], mine["min_bill_fen"], mine["discount_fen"], mine["categories"]) == (
        0,
        100_00,
        20_00,
        [5411],
    )
    assert mine["claimable"] == [{"index": 0, "amount_fen": 50_00}]
    assert market in [m["merchant"] for m in mine["merchants"]]
    assert {m["category"] for m in mine["merchants"]} == {5411}
    assert [v["claimable"] for v in bob.get("/v1/holder/vouchers").json()] == [
        [{"index": 1, "amount_fen": 30_00}]
    ]
    # another's grant and a missing one: the same 404
    before = api.w3.eth.block_number
    problem(bob.post(f"/v1/holder/vouchers/{pid}/claims/0", headers=idem()), 404, "leaf-not-found")
    problem(alice.post(f"/v1/holder/vouchers/{pid}/claims/7", headers=idem()), 404, "leaf-not-found")
    assert api.w3.eth.block_number == before

    r = alice.post(f"/v1/holder/vouchers/{pid}/claims/0", headers=idem())
    assert r.status_code == 200, r.text
    assert ctx.vouchers.holding(pid, a).balance == 50_00
    (mine,) = alice.get("/v1/holder/vouchers").json()
    assert (mine["balance_fen"], mine["granted_fen"], mine["claimable"]) == (50_00, 50_00, [])
    problem(alice.post(f"/v1/holder/vouchers/{pid}/claims/0", headers=idem()), 409, "already-claimed")
    assert ctx.vouchers.holding(pid, b).balance == 0


def test_a_holder_sees_their_payroll_rows_and_claims_their_own_merkle_row(api: Api) -> None:
    ctx = api.app.state.ctx
    a, alice = custodial_holder(api, "worker a")
    b, bob = custodial_holder(api, "worker b")
    platform = api.new_wallet(kind="institution", tier=1, name="delivery platform")
    assert api.post("operator", "/v1/issuance", {"to": platform, "amount_fen": 10_000_00}).status_code == 200
    finance = api.new_wallet(tier=2, name="platform finance")
    key = api.admin.post("/v1/api-keys", json={"role": "checker", "wallet": finance}).json()["key"]
    checker = httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=60)
    officer = {"account": finance, "role": "checker"}
    assert api.post("operator", f"/v1/disbursements/payers/{platform}/officers", officer).status_code == 200
    ends = datetime.fromtimestamp(chain_now(api) + 30 * DAY, UTC).isoformat()
    refs = {}
    for mode in ("explicit", "merkle"):
        refs[mode] = f"holder-{mode}-{uuid.uuid4().hex[:8]}"
        body = {
            "reference": refs[mode],
            "payer": platform,
            "purpose": "salary" if mode == "explicit" else "subsidy",
            "mode": mode,
            "ends_at": ends,
            "unit": "fen",
            "rows": [{"recipient": a, "amount": 180_50}, {"recipient": b, "amount": 90_00}],
        }
        assert api.post("operator", "/v1/disbursements", body).status_code == 201
        r = checker.post(f"/v1/disbursements/{refs[mode]}/approve", headers=idem())
        assert r.status_code == 200, r.text
    r = api.operator.post(f"/v1/disbursements/{refs['explicit']}/execute", json={})
    assert r.status_code == 202, r.text
    for _ in range(300):
        if api.operator.get(f"/v1/disbursements/{refs['explicit']}").json()["status"] != "executing":
            break
        time.sleep(0.1)

    rows = {r["reference"]: r for r in alice.get("/v1/holder/disbursements").json()}
    assert set(rows) == set(refs.values())
    paid, merkle = rows[refs["explicit"]], rows[refs["merkle"]]
    assert (paid["payer_name"], paid["purpose"], paid["amount_fen"], paid["status"], paid["claimable"]) == (
        "delivery platform",
        "salary",
        180_50,
        "paid",
        False,
    )
    assert (merkle["purpose"], merkle["index"], merkle["status"], merkle["claimable"]) == (
        "subsidy",
        0,
        "pending",
        True,
    )
    assert [r["index"] for r in bob.get("/v1/holder/disbursements").json()] == [1, 1]
    # another's row and a missing one: the same 404, nothing sent
    before = api.w3.eth.block_number
    for who, ref, index in ((bob, refs["merkle"], 0), (alice, refs["merkle"], 9), (alice, "no-such-ref", 0)):
        r = who.post(
            f"/v1/disbursements/{ref}/rows/{index}/claim".replace("/v1/", "/v1/holder/"), headers=idem()
        )
        problem(r, 404, "row-not-found")
    assert api.w3.eth.block_number == before
    r = alice.post(f"/v1/holder/disbursements/{refs['explicit']}/rows/0/claim", headers=idem())
    problem(r, 409, "row-not-claimable")  # paid already

    balance = ctx.cash.balance_of(a)
    once = idem()
    r = alice.post(f"/v1/holder/disbursements/{refs['merkle']}/rows/0/claim", headers=once)
    assert r.status_code == 200, r.text
    assert ctx.cash.balance_of(a) == balance + 180_50
    assert ctx.cash.balance_of(b) == 90_00  # his explicit row only: his Merkle row waits for him
    rows = {r["reference"]: r for r in alice.get("/v1/holder/disbursements").json()}
    assert (rows[refs["merkle"]]["status"], rows[refs["merkle"]]["claimable"]) == ("paid", False)
    row = api.operator.get(f"/v1/disbursements/{refs['merkle']}/rows/0").json()
    assert row["status"] == "paid"  # the batch's record follows, as the runner's would
    problem(
        alice.post(f"/v1/holder/disbursements/{refs['merkle']}/rows/0/claim", headers=idem()),
        409,
        "row-not-claimable",
    )
    again = alice.post(f"/v1/holder/disbursements/{refs['merkle']}/rows/0/claim", headers=once)
    assert (again.status_code, again.json()["id"]) == (200, r.json()["id"])  # a retry: paid once
    assert ctx.cash.balance_of(a) == balance + 180_50
    report = api.auditor.get("/v1/audit/reconciliation").json()
    assert [d for d in report["discrepancies"] if d.get("operation_id") == r.json()["id"]] == []
    checker.close()


def test_after_a_recovery_the_lost_wallets_holder_key_does_nothing_and_the_new_wallet_holds_the_money(
    api: Api,
) -> None:
    ctx = api.app.state.ctx
    lost, old_key = custodial_holder(api, "lost phone")
    assert api.post("operator", "/v1/issuance", {"to": lost, "amount_fen": 7_700}).status_code == 200
    card = issue_card(api, lost, serial="SN-LOST")  # lost with the phone, reported after the recovery
    r = api.post("operator", f"/v1/wallets/{lost}/recovery", {"evidence": "face check, clerk 3"})
    assert r.status_code == 201, r.text
    recovery, new = r.json()["recovery_id"], r.json()["replacement"]
    assert old_key.get("/v1/holder/balance").json()["balance_fen"] == 7_700  # pending: nothing moved yet
    assert api.post("regulator", f"/v1/regulator/recoveries/{recovery}/approve").status_code == 200

    # the key on the lost phone reads and does nothing any more; no new key for the lost wallet
    body = problem(old_key.get("/v1/holder/balance"), 410, "wallet-retired")
    assert new in body["detail"]
    problem(old_key.get("/v1/holder/cards"), 410, "wallet-retired")
    problem(old_key.post("/v1/holder/packages/1/cancel", headers=idem()), 410, "wallet-retired")
    r = api.operator.post("/v1/holder/keys", json={"wallet": lost, "ttl_minutes": 30})
    problem(r, 410, "wallet-retired")
    body = problem(api.anonymous.post("/v1/holder/challenge", json={"wallet": lost}), 410, "wallet-retired")
    assert new in body["detail"]  # the same answer on every holder path: sign in with the successor
    r = api.operator.post("/v1/holder/keys", json={"wallet": new, "ttl_minutes": 30})
    assert r.status_code == 201, r.text
    holder = httpx.Client(base_url=api.url, headers={"X-API-Key": r.json()["key"]}, timeout=60)
    mine = holder.get("/v1/holder/balance").json()
    assert (mine["wallet"], mine["balance_fen"], mine["display_name"]) == (new, 7_700, "lost phone")
    # the approval moved the card (reserve included) to the new wallet on chain (CardRecovered):
    # the new wallet's holder sees it and reports it lost, signed with the new wallet's own key
    (listed,) = holder.get("/v1/holder/cards").json()
    assert (listed["card"], listed["holder"], listed["serial"], listed["status"]) == (
        card.address,
        new,
        "SN-LOST",
        "active",
    )
    r = holder.post(f"/v1/holder/cards/{card.address}/report-lost", headers=idem())
    assert r.status_code == 200, r.text
    (event,) = [e for e in r.json()["result"]["events"] if e["name"] == "CardReportedLost"]
    assert event["args"]["by"] == new
    assert ctx.hardwallet.card(card.address).status == CardStatus.LOST
    _, stranger = custodial_holder(api, "not the successor")
    assert stranger.get("/v1/holder/cards").json() == []
    holder.close()


def test_the_successor_sees_and_claims_a_payroll_row_recovered_to_it(api: Api) -> None:
    """Red team F4: the recovery sweep re-addresses the lost wallet's unclaimed Merkle row to the
    successor on chain (PayoutRecovered); the successor's channel lists it and claims it (it read
    nothing and answered 404 row-not-found)."""
    ctx = api.app.state.ctx
    lost, _ = custodial_holder(api, "worker with a lost phone")
    platform = api.new_wallet(kind="institution", tier=1, name="platform f4")
    assert api.post("operator", "/v1/issuance", {"to": platform, "amount_fen": 1_000_00}).status_code == 200
    finance = api.new_wallet(tier=2, name="platform f4 finance")
    key = api.admin.post("/v1/api-keys", json={"role": "checker", "wallet": finance}).json()["key"]
    checker = httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=60)
    officer = {"account": finance, "role": "checker"}
    assert api.post("operator", f"/v1/disbursements/payers/{platform}/officers", officer).status_code == 200
    ref = f"f4-{uuid.uuid4().hex[:8]}"
    body = {
        "reference": ref,
        "payer": platform,
        "purpose": "subsidy",
        "mode": "merkle",
        "ends_at": datetime.fromtimestamp(chain_now(api) + 30 * DAY, UTC).isoformat(),
        "unit": "fen",
        "rows": [{"recipient": lost, "amount": 70_00}],
    }
    assert api.post("operator", "/v1/disbursements", body).status_code == 201
    assert checker.post(f"/v1/disbursements/{ref}/approve", headers=idem()).status_code == 200
    checker.close()
    r = api.post("operator", f"/v1/wallets/{lost}/recovery", {"evidence": "face check, clerk 4"})
    assert r.status_code == 201, r.text
    recovery, new = r.json()["recovery_id"], r.json()["replacement"]
    r = api.post("regulator", f"/v1/regulator/recoveries/{recovery}/approve")
    assert r.status_code == 200, r.text
    assert [m["kind"] for m in r.json()["holdings"]["moves"]] == ["disburse.recover_leaf"], r.text
    r = api.operator.post("/v1/holder/keys", json={"wallet": new, "ttl_minutes": 30})
    successor = httpx.Client(base_url=api.url, headers={"X-API-Key": r.json()["key"]}, timeout=60)
    rows = successor.get("/v1/holder/disbursements").json()
    assert [(x["reference"], x["index"], x["status"], x["claimable"]) for x in rows] == [
        (ref, 0, "exception", True)
    ], rows
    balance = ctx.cash.balance_of(new)
    r = successor.post(f"/v1/holder/disbursements/{ref}/rows/0/claim", headers=idem())
    assert r.status_code == 200, r.text
    assert ctx.cash.balance_of(new) == balance + 70_00
    rows = successor.get("/v1/holder/disbursements").json()
    assert [(x["status"], x["claimable"]) for x in rows] == [("paid", False)], rows
    problem(
        successor.post(f"/v1/holder/disbursements/{ref}/rows/0/claim", headers=idem()),
        409,
        "row-not-claimable",
    )
    successor.close()


def test_the_successor_claims_a_campaign_grant_of_the_lost_wallet(api: Api) -> None:
    """Red team F4: a campaign (Merkle) leaf of the lost wallet is listed for its successor and
    claimed by it (it answered 404 leaf-not-found): granted to the retired wallet (the chain's
    rule), then moved on by recoverGrants; the voucher balance is the successor's."""
    ctx = api.app.state.ctx
    lost, _ = custodial_holder(api, "campaign winner, lost phone")
    office = api.new_wallet(kind="institution", tier=1, name="office f4")
    assert api.post("operator", "/v1/issuance", {"to": office, "amount_fen": 100_00}).status_code == 200
    now = chain_now(api)
    body = {
        "issuer": office,
        "name": "autumn vouchers",
        "mode": "grant-list",
        "budget_fen": 100_00,
        "per_person_cap_fen": 50_00,
        "starts_at": datetime.fromtimestamp(now - 60, UTC).isoformat(),
        "expires_at": datetime.fromtimestamp(now + 14 * DAY, UTC).isoformat(),
        "categories": [5411],
    }
    pid = int(api.post("operator", "/v1/voucher-programs", body).json()["programme_id"])
    rows = {"unit": "fen", "rows": [{"recipient": lost, "amount": 40_00}]}
    assert api.post("operator", f"/v1/voucher-programs/{pid}/campaign", rows).status_code == 201
    r = api.post("operator", f"/v1/wallets/{lost}/recovery", {"evidence": "face check, clerk 6"})
    recovery, new = r.json()["recovery_id"], r.json()["replacement"]
    assert api.post("regulator", f"/v1/regulator/recoveries/{recovery}/approve").status_code == 200
    r = api.operator.post("/v1/holder/keys", json={"wallet": new, "ttl_minutes": 30})
    successor = httpx.Client(base_url=api.url, headers={"X-API-Key": r.json()["key"]}, timeout=60)
    (mine,) = successor.get("/v1/holder/vouchers").json()
    assert (mine["programme_id"], mine["claimable"]) == (pid, [{"index": 0, "amount_fen": 40_00}])
    once = idem()
    r = successor.post(f"/v1/holder/vouchers/{pid}/claims/0", headers=once)
    assert r.status_code == 200, r.text
    assert (ctx.vouchers.holding(pid, new).balance, ctx.vouchers.holding(pid, lost).granted) == (40_00, 0)
    again = successor.post(f"/v1/holder/vouchers/{pid}/claims/0", headers=once)
    assert (again.status_code, again.json()["id"]) == (200, r.json()["id"])
    (mine,) = successor.get("/v1/holder/vouchers").json()
    assert (mine["balance_fen"], mine["claimable"]) == (40_00, [])
    problem(successor.post(f"/v1/holder/vouchers/{pid}/claims/0", headers=idem()), 409, "already-claimed")
    successor.close()
