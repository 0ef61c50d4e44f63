"""Voucher programmes over HTTP: a district consumption-voucher programme (20 off a bill of 100) and
a union-welfare programme (canteen, supermarket, health) from the same routes; grants by JSON, CSV
and Merkle campaign; spends by the operator and holder-signed through a merchant; refusals; the
report; clawback after expiry. Real chain, real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from eth_account import Account

from chain import devtools
from tests.chain.test_merkle_standard import run_library
from tests.services.conftest import Api
from tests.services.test_operator_api import assert_problem
from tests.services.test_signature_forms import compact

DAY = 86_400


def at(api: Api, days: float) -> str:
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    return datetime.fromtimestamp(now + int(days * DAY), UTC).isoformat()


def balance(api: Api, address: str) -> int:
    return int(api.auditor.get(f"/v1/wallets/{address}").json()["balance_fen"])


@pytest.fixture(scope="module")
def town(api: Api) -> dict[str, Any]:
    office = api.new_wallet(kind="institution", tier=1, name="District commerce office")
    union = api.new_wallet(kind="institution", tier=1, name="Trade union")
    for issuer in (office, union):
        assert (
            api.post("operator", "/v1/issuance", {"to": issuer, "amount_fen": 10_000_000}).status_code == 200
        )
    canteen = api.new_wallet(kind="merchant", tier=2, category=5812, name="Canteen")
    market = api.new_wallet(kind="merchant", tier=2, category=5411, name="Supermarket")
    cinema = api.new_wallet(kind="merchant", tier=2, category=7832, name="Cinema")
    tag = uuid.uuid4().hex[:6]
    people = []
    for i in range(4):
        body = {"kind": "personal", "tier": 2, "display_name": f"p{i}", "identity": f"resident-{i}-{tag}"}
        r = api.post("operator", "/v1/wallets", body)
        assert r.status_code == 201, r.text
        people.append(r.json()["request"]["address"])
        assert (
            api.post("operator", "/v1/issuance", {"to": people[-1], "amount_fen": 50_000}).status_code == 200
        )
    key = api.admin.post("/v1/api-keys", json={"role": "merchant", "wallet": canteen}).json()["key"]
    till = httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=60)
    return {
        "office": office,
        "union": union,
        "canteen": canteen,
        "market": market,
        "cinema": cinema,
        "people": people,
        "tag": tag,
        "till": till,
    }


def create(api: Api, issuer: str, **terms: Any) -> int:
    body = {
        "issuer": issuer,
        "name": "spring vouchers",
        "mode": "grant-list",
        "budget_fen": 1_000_000,
        "per_person_cap_fen": 10_000,
        "starts_at": at(api, -0.01),
        "expires_at": at(api, 30),
        "categories": [5411, 5812],
        **terms,
    }
    r = api.post("operator", "/v1/voucher-programs", body)
    assert r.status_code == 201, r.text
    (event,) = [e for e in r.json()["result"]["events"] if e["name"] == "ProgrammeCreated"]
    return int(event["args"]["id"])


def grant(api: Api, pid: int, rows: list[dict], unit: str = "fen") -> httpx.Response:
    return api.post("operator", f"/v1/voucher-programs/{pid}/grants", {"unit": unit, "rows": rows})


def spend(api: Api, pid: int, holder: str, merchant: str, bill: int) -> httpx.Response:
    return api.post(
        "operator",
        f"/v1/voucher-programs/{pid}/spend",
        {"holder": holder, "merchant": merchant, "bill_fen": bill},
    )


def test_a_minimum_spend_voucher_pays_its_share_and_the_holder_the_rest(api: Api, town: dict) -> None:
    pid = create(api, town["office"], min_bill_fen=10_000, discount_fen=2_000)
    alice, bob = town["people"][:2]
    r = grant(
        api,
        pid,
        [{"recipient": alice, "amount": "60"}, {"identity": f"resident-1-{town['tag']}", "amount": "60"}],
        "yuan",
    )
    assert r.status_code == 200 and [o["status"] for o in r.json()["operations"]] == ["confirmed"], r.text
    before = {w: balance(api, w) for w in (alice, town["canteen"])}
    assert spend(api, pid, alice, town["canteen"], 15_000).status_code == 200  # 150 yuan: 20 off
    assert balance(api, alice) == before[alice] - 13_000
    assert balance(api, town["canteen"]) == before[town["canteen"]] + 15_000  # the whole bill
    assert spend(api, pid, alice, town["canteen"], 10_000).status_code == 200  # exactly at the threshold
    assert_problem(spend(api, pid, alice, town["canteen"], 9_999), 422, "below-minimum-spend")
    assert_problem(spend(api, pid, bob, town["cinema"], 20_000), 422, "category-not-allowed")
    holding = api.auditor.get(f"/v1/voucher-programs/{pid}/holders/{alice}").json()
    assert holding == {"granted_fen": 6_000, "spent_fen": 4_000, "returned_fen": 0, "balance_fen": 2_000}
    report = api.auditor.get(f"/v1/voucher-programs/{pid}").json()
    assert report["conserved"] and report["totals_fen"]["spent"] == 4_000
    assert report["voucher_spent_by_category_fen"] == {"5411": 0, "5812": 4_000}
    assert report["bills_by_merchant_fen"] == {town["canteen"]: 25_000}
    lines = api.auditor.get(f"/v1/voucher-programs/{pid}", params={"format": "csv"}).text.splitlines()
    assert lines[0] == "kind,key,fen" and "voucher spent by category,5812,4000" in lines


def test_union_welfare_is_the_same_machinery_with_other_categories(api: Api, town: dict) -> None:
    pid = create(
        api, town["union"], name="union welfare", categories=[5812, 5411, 8099], per_person_cap_fen=30_000
    )
    carol = town["people"][2]
    text = f"identity,amount_yuan\nresident-2-{town['tag']},300\nresident-3-{town['tag']},300.00\n"
    r = api.operator.post(
        f"/v1/voucher-programs/{pid}/grants/csv",
        content=text.encode(),
        headers={"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    before = balance(api, carol)
    assert spend(api, pid, carol, town["canteen"], 2_500).status_code == 200  # a meal, fully by voucher
    assert balance(api, carol) == before
    assert_problem(spend(api, pid, carol, town["cinema"], 2_500), 422, "category-not-allowed")
    report = api.auditor.get(f"/v1/voucher-programs/{pid}").json()
    assert report["categories"] == [5812, 5411, 8099] and report["name"] == "union welfare"
    assert report["totals_fen"]["granted"] == 60_000 and report["conserved"]


def test_a_grants_csv_field_beyond_the_csv_modules_limit_is_a_422_naming_the_line(
    api: Api, town: dict
) -> None:
    pid = create(api, town["union"], name="huge field", categories=[5812])
    text = f"identity,amount_fen\nresident-2-{town['tag']},{'9' * 200_000}\n"
    r = api.operator.post(
        f"/v1/voucher-programs/{pid}/grants/csv",
        content=text.encode(),
        headers={"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "text/csv"},
    )
    assert "line 2" in assert_problem(r, 422, "invalid-csv")["detail"]


def test_a_holder_signed_spend_is_submitted_by_the_merchant_once(api: Api, town: dict) -> None:
    pid = create(api, town["union"], name="signed meals", categories=[5812])
    dave = town["people"][3]
    assert grant(api, pid, [{"recipient": dave, "amount": 5_000}]).status_code == 200
    ctx = api.app.state.ctx
    deadline = int(api.w3.eth.get_block("latest")["timestamp"]) + 600
    signature = ctx.vouchers.sign_spend(ctx.custodial(dave), pid, town["canteen"], 1_800, deadline)
    body = {"holder": dave, "bill_fen": 1_800, "deadline": deadline, "signature": "0x" + signature.hex()}
    r = town["till"].post(
        f"/v1/voucher-programs/{pid}/spend/signed", json=body, headers={"Idempotency-Key": "meal-1"}
    )
    assert r.status_code == 200, r.text
    replayed = town["till"].post(
        f"/v1/voucher-programs/{pid}/spend/signed", json=body, headers={"Idempotency-Key": "meal-2"}
    )
    assert_problem(replayed, 422, "invalid-signature")  # the nonce moved: a signature works once
    assert api.auditor.get(f"/v1/voucher-programs/{pid}/holders/{dave}").json()["spent_fen"] == 1_800
    # the same holder's next Spend in EIP-2098 compact form (64 bytes) is expanded and accepted
    signature = ctx.vouchers.sign_spend(ctx.custodial(dave), pid, town["canteen"], 1_000, deadline)
    body = {"holder": dave, "bill_fen": 1_000, "deadline": deadline, "signature": compact(signature)}
    r = town["till"].post(
        f"/v1/voucher-programs/{pid}/spend/signed", json=body, headers={"Idempotency-Key": "meal-3"}
    )
    assert r.status_code == 200, r.text
    assert api.auditor.get(f"/v1/voucher-programs/{pid}/holders/{dave}").json()["spent_fen"] == 2_800


def test_a_merkle_campaign_serves_proofs_and_claims_for_holders(api: Api, town: dict) -> None:
    pid = create(api, town["office"], name="lottery campaign")
    rows = [{"recipient": p, "amount": 1_000 + i} for i, p in enumerate(town["people"])]
    r = api.post("operator", f"/v1/voucher-programs/{pid}/campaign", {"unit": "fen", "rows": rows})
    assert r.status_code == 201, r.text
    leaf = api.auditor.get(f"/v1/voucher-programs/{pid}/campaign/2").json()
    assert (leaf["holder"], leaf["amount_fen"], leaf["claimed"]) == (town["people"][2], 1_002, False)
    assert len(leaf["proof"]) == 2
    # the published tree is StandardMerkleTree's dump: the npm library loads it, its root is the
    # programme's root on chain and its proofs are the ones served per grant
    tree = api.auditor.get(f"/v1/voucher-programs/{pid}/campaign/tree")
    assert tree.status_code == 200, tree.text
    assert f'filename="programme-{pid}-tree.json"' in tree.headers["content-disposition"]
    loaded = run_library(tree.json())
    on_chain = api.app.state.ctx.vouchers.programme(pid).root
    assert loaded["loadedRoot"] == loaded["builtRoot"] == "0x" + bytes(on_chain).hex()
    assert loaded["proofs"][2] == leaf["proof"]
    assert [v["value"][2] for v in tree.json()["values"]] == town["people"]
    assert_problem(api.operator.get("/v1/voucher-programs/999999/campaign/tree"), 404, "campaign-not-found")
    assert api.post("operator", f"/v1/voucher-programs/{pid}/campaign/2/claim").status_code == 200
    assert_problem(
        api.post("operator", f"/v1/voucher-programs/{pid}/campaign/2/claim"), 409, "already-claimed"
    )
    holding = api.auditor.get(f"/v1/voucher-programs/{pid}/holders/{town['people'][2]}").json()
    assert holding["granted_fen"] == 1_002
    again = api.post("operator", f"/v1/voucher-programs/{pid}/campaign", {"unit": "fen", "rows": rows})
    assert_problem(again, 409, "campaign-exists")


def test_bad_rows_grants_beyond_the_budget_and_roles_are_refused(api: Api, town: dict) -> None:
    pid = create(api, town["office"], name="small budget", budget_fen=10_000, per_person_cap_fen=10_000)
    body = assert_problem(
        grant(api, pid, [{"recipient": "0x12", "amount": "1"}, {"amount": "2"}]), 422, "invalid-rows"
    )
    assert [e["row"] for e in body["errors"]] == [1, 2]
    over = [
        {"recipient": town["people"][0], "amount": 8_000},
        {"recipient": town["people"][1], "amount": 3_000},
    ]
    assert_problem(grant(api, pid, over), 422, "over-budget")
    assert_problem(api.post("merchant", "/v1/voucher-programs", {}), 403, "forbidden-role")
    assert_problem(api.merchant.get(f"/v1/voucher-programs/{pid}"), 403, "forbidden-role")
    assert_problem(api.auditor.get("/v1/voucher-programs/999999"), 404, "programme-not-found")


def test_a_holding_read_asks_the_chain_once_a_programme_is_known(api: Api, town: dict) -> None:
    """A programme never stops existing, so after the first read a holding is one chain call
    (the load test's most frequent voucher read made two); an unknown one is still a 404."""
    pid = create(api, town["office"], name="reads")
    holder = town["people"][3]
    ctx = api.app.state.ctx
    calls: list[str] = []
    real_call = ctx.tx.call

    def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:  # the real call, counted
        calls.append(fn.fn_name)
        return real_call(fn, *args, **kwargs)

    ctx.tx.call = counted
    try:
        for _ in range(3):
            r = api.auditor.get(f"/v1/voucher-programs/{pid}/holders/{holder}")
            assert r.status_code == 200 and r.json()["granted_fen"] == 0, r.text
        for _ in range(2):
            missing = api.auditor.get(f"/v1/voucher-programs/999998/holders/{holder}")
            assert_problem(missing, 404, "programme-not-found")
    finally:
        del ctx.tx.call
    assert calls == ["programmeOf", "holdingOf", "holdingOf", "holdingOf", "programmeOf", "programmeOf"]


def funded_holder(api: Api, fen: int) -> str:
    """A new custodial resident (tier 2) holding ``fen`` of cash."""
    holder = api.new_wallet(tier=2, name="concurrent spender")
    assert api.post("operator", "/v1/issuance", {"to": holder, "amount_fen": fen}).status_code == 200
    return holder


def at_once(api: Api, pid: int, holder: str, merchant: str, bills: list[int]) -> list[httpx.Response]:
    """The spends of ``bills`` by one holder, sent over HTTP at the same moment (one thread each)."""
    start = threading.Barrier(len(bills))

    def one(bill: int) -> httpx.Response:
        start.wait()
        return spend(api, pid, holder, merchant, bill)

    with ThreadPoolExecutor(len(bills)) as pool:
        return list(pool.map(one, bills))


def test_concurrent_spends_of_one_holder_partly_paid_by_voucher_all_go_through(api: Api, town: dict) -> None:
    """Red team: each spend's own share needs the holder's allowance to the programmes contract,
    one allowance per wallet shared by every spend. With an allowance left that covers one share
    but not four (the holder was paid since it was granted), four spends at once each found it
    enough, skipped approving, and all but the first were refused (422 insufficient-allowance)
    although the holder held the cash. Now every one is paid, each exactly once."""
    pid = create(api, town["office"], name="concurrent partial", min_bill_fen=10_000, discount_fen=2_000)
    holder = funded_holder(api, 20_000)
    assert grant(api, pid, [{"recipient": holder, "amount": 10_000}]).status_code == 200
    assert spend(api, pid, holder, town["canteen"], 10_000).status_code == 200  # leaves an allowance
    assert api.post("operator", "/v1/issuance", {"to": holder, "amount_fen": 50_000}).status_code == 200
    ctx = api.app.state.ctx
    assert ctx.cash.allowance(holder, ctx.vouchers.address) < 4 * 8_000 <= balance(api, holder)
    before = {w: balance(api, w) for w in (holder, town["canteen"])}
    answers = at_once(api, pid, holder, town["canteen"], [10_000] * 4)
    assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers if r.status_code != 200]
    assert {r.json()["status"] for r in answers} == {"confirmed"}
    spent = [e["args"] for r in answers for e in r.json()["result"]["events"] if e["name"] == "Spent"]
    assert sorted((s["voucher"], s["cash"]) for s in spent) == [(2_000, 8_000)] * 4
    assert balance(api, holder) == before[holder] - 4 * 8_000
    assert balance(api, town["canteen"]) == before[town["canteen"]] + 4 * 10_000
    holding = api.auditor.get(f"/v1/voucher-programs/{pid}/holders/{holder}").json()
    assert holding == {"granted_fen": 10_000, "spent_fen": 10_000, "returned_fen": 0, "balance_fen": 0}
    assert api.auditor.get("/v1/audit/reconciliation").json()["verdict"] == "clean"


def test_concurrent_spends_of_one_holder_wholly_paid_by_voucher_all_go_through(api: Api, town: dict) -> None:
    """Red team: three bills of 40 against a voucher of 100. Each was quoted alone, wholly paid by
    the voucher, so no spend asked for an allowance; the third, run after the other two had used
    80 of the voucher, took 20 from the holder's cash with no allowance and was refused (422
    insufficient-allowance). Now the holder's allowance covers what any spend can take (its bill)."""
    pid = create(api, town["union"], name="concurrent whole", categories=[5812])
    holder = funded_holder(api, 20_000)
    assert grant(api, pid, [{"recipient": holder, "amount": 10_000}]).status_code == 200
    before = {w: balance(api, w) for w in (holder, town["canteen"])}
    answers = at_once(api, pid, holder, town["canteen"], [4_000] * 3)
    assert [r.status_code for r in answers] == [200] * 3, [r.text for r in answers if r.status_code != 200]
    spent = [e["args"] for r in answers for e in r.json()["result"]["events"] if e["name"] == "Spent"]
    assert sorted((s["voucher"], s["cash"]) for s in spent) == [(2_000, 2_000), (4_000, 0), (4_000, 0)]
    assert balance(api, holder) == before[holder] - 2_000  # the voucher paid 10,000 of the 12,000
    assert balance(api, town["canteen"]) == before[town["canteen"]] + 12_000
    holding = api.auditor.get(f"/v1/voucher-programs/{pid}/holders/{holder}").json()
    assert holding == {"granted_fen": 10_000, "spent_fen": 10_000, "returned_fen": 0, "balance_fen": 0}
    assert api.auditor.get("/v1/audit/reconciliation").json()["verdict"] == "clean"


def test_after_expiry_what_is_left_returns_to_the_issuer_once(api: Api, town: dict) -> None:
    """Last in the module: it moves the chain's clock."""
    pid = create(api, town["office"], name="short", budget_fen=50_000, expires_at=at(api, 2))
    holder = town["people"][0]
    assert grant(api, pid, [{"recipient": holder, "amount": 4_000}]).status_code == 200
    assert spend(api, pid, holder, town["market"], 1_000).status_code == 200
    assert_problem(api.post("operator", f"/v1/voucher-programs/{pid}/close"), 409, "programme-not-expired")
    before = balance(api, town["office"])
    devtools.increase_time(api.w3, 3 * DAY)
    assert_problem(spend(api, pid, holder, town["market"], 1_000), 409, "programme-expired")
    r = api.post("operator", f"/v1/voucher-programs/{pid}/close")
    assert r.status_code == 200 and r.json()["operations"][0]["status"] == "confirmed", r.text
    assert balance(api, town["office"]) == before + 46_000 + 3_000  # ungranted + the unspent grant
    report = api.auditor.get(f"/v1/voucher-programs/{pid}").json()
    assert report["totals_fen"] == {
        "budget": 50_000,
        "granted": 4_000,
        "spent": 1_000,
        "returned": 49_000,
        "outstanding": 0,
        "ungranted": 0,
    }
    assert_problem(api.post("operator", f"/v1/voucher-programs/{pid}/close"), 409, "nothing-to-return")


def test_a_grant_to_an_identity_shared_by_two_personal_wallets_is_refused(api: Api, town: dict) -> None:
    """Red team: a self-custody wallet registered later with a resident's identity used to receive
    the resident's vouchers. Now the grant is a 422 naming the ambiguity, and nothing is granted.
    (One person, one identity, issue 22: the chain refuses a second personal wallet of the identity
    in the same tier, ``identity-wallet-limit``; in another tier it is accepted.)"""
    pid = create(api, town["office"])
    ident = f"resident-0-{town['tag']}"
    attacker = {
        "kind": "personal",
        "tier": 2,
        "display_name": "a",
        "identity": ident,
        "custody": "self",
        "address": Account.create().address,
    }
    body = assert_problem(api.post("operator", "/v1/wallets", attacker), 409, "identity-wallet-limit")
    assert body["error"]["name"] == "IdentityWalletLimit"
    attacker["tier"] = 3
    assert api.post("operator", "/v1/wallets", attacker).status_code == 201
    body = assert_problem(grant(api, pid, [{"identity": ident, "amount": "100"}]), 422, "invalid-rows")
    assert [(e["row"], e["code"]) for e in body["errors"]] == [(1, "identity-ambiguous")]
    assert "2 personal wallets" in body["errors"][0]["reason"]
    holding = api.auditor.get(f"/v1/voucher-programs/{pid}/holders/{attacker['address']}")
    assert holding.status_code == 404 or holding.json()["granted_fen"] == 0
