"""The holder's channel over real HTTP on both databases: Sign-In with Ethereum (EIP-4361), the
holder key it gives, and the holder routes that see and act only on the key's own wallet."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from sqlalchemy import update

from chain.clients.hardwallet import order_ref
from chain.exceptions import ContractError
from services.common.models import utcnow
from services.operator.families.holder.models import HolderChallenge
from tests.services.conftest import Api

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
    # no route takes a wallet: one named in the query changes nothing, the answer stays her own
    assert alice.get("/v1/holder/balance", params={"wallet": b}).json()["wallet"] == a
    assert alice.get("/v1/holder/history/export", params={"wallet": b}).text == export.text


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

    r = alice.post(f"/v1/holder/mandates/{mandate}/revoke", headers={"Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 200, r.text
    assert r.json()["operation"]["status"] == "confirmed" and r.json()["sign_yourself"] is None
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
        ):
            problem(client.get(path), 403, "forbidden-role")
