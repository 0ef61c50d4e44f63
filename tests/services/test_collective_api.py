"""Three-assets collective funds over HTTP: the township creates collectives, officers propose,
approve and pay with their own keys, freezing, the asset register and tagged income, the
auditor's view, roles and bad input. Real chain, real database; a fresh collective per test."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chain import devtools
from tests.services.conftest import Api
from tests.services.test_operator_api import assert_problem

DAY = 86_400
LIMIT = 5_000_00  # the committee alone up to 5,000 yuan
CEILING = 50_000_00  # with the township up to 50,000 yuan
NOTICE = 3 * DAY
TIERS = [
    {"max_amount_fen": LIMIT, "committee": 2},
    {"max_amount_fen": CEILING, "committee": 2, "township": True, "delay_s": NOTICE},
]
LINES = [{"name": "infrastructure", "budget_fen": 80_000_00}, {"name": "welfare", "budget_fen": 10_000_00}]
INVOICE = hashlib.sha256(b"invoice no. 42: gravel, 30 t").hexdigest()


@dataclass
class Village:
    """Officers with their own keys (committee alice, bob, carol; treasurer tom), dave an officer
    of another collective only, a registered payee, a lessee holding 1,000,000 yuan."""

    alice: str
    bob: str
    carol: str
    tom: str
    dave: str
    keys: dict[str, httpx.Client]
    payee: str
    lessee: str

    def post(self, who: str, path: str, json: Any = None) -> httpx.Response:
        return self.keys[who].post(path, json=json, headers={"Idempotency-Key": str(uuid.uuid4())})


@pytest.fixture(scope="module")
def village(api: Api) -> Village:
    wallets = {n: api.new_wallet(tier=2, name=n) for n in ("alice", "bob", "carol", "tom", "dave")}
    keys = {}
    for name, wallet in wallets.items():
        r = api.admin.post("/v1/api-keys", json={"role": "officer", "wallet": wallet, "label": name})
        assert r.status_code == 201, r.text
        keys[name] = httpx.Client(base_url=api.url, headers={"X-API-Key": r.json()["key"]}, timeout=60)
    lessee = api.new_wallet(kind="institution", tier=1, name="fish farm lessee")
    r = api.post("operator", "/v1/issuance", {"to": lessee, "amount_fen": 1_000_000_00})
    assert r.status_code == 200, r.text
    payee = api.new_wallet(tier=2, name="road builder")
    return Village(**wallets, keys=keys, payee=payee, lessee=lessee)


def create(api: Api, v: Village, **overrides: Any) -> int:
    body = {
        "name": f"Qingshui village {uuid.uuid4().hex[:6]}",
        "officers": [
            {"account": v.alice, "role": "committee"},
            {"account": v.bob, "role": "committee"},
            {"account": v.carol, "role": "committee"},
            {"account": v.tom, "role": "treasurer"},
        ],
        "tiers": TIERS,
        "proposal_lifetime_s": 30 * DAY,
        "year": 2025,
        "lines": LINES,
        **overrides,
    }
    r = api.post("regulator", "/v1/collectives", body)
    assert r.status_code == 201, r.text
    return int(r.json()["collective_id"])


def pay_in(api: Api, v: Village, cid: int, amount: int, asset_id: int = 0, memo: str = "") -> httpx.Response:
    body = {"payer": v.lessee, "amount_fen": amount, "asset_id": asset_id, "memo": memo}
    return api.post("operator", f"/v1/collectives/{cid}/income", body)


def propose(v: Village, cid: int, amount: int, line: int = 0, who: str = "alice", **extra: Any) -> int:
    body = {"payee": v.payee, "amount_fen": amount, "line": line, "purpose": "gravel for the east road"}
    r = v.post(who, f"/v1/collectives/{cid}/proposals", {**body, "evidence_sha256": INVOICE, **extra})
    assert r.status_code == 201, r.text
    return int(r.json()["proposal_id"])


def act(v: Village, who: str, cid: int, pid: int, action: str, json: Any = None) -> httpx.Response:
    return v.post(who, f"/v1/collectives/{cid}/proposals/{pid}/{action}", json)


def balance(api: Api, address: str) -> int:
    return int(api.auditor.get(f"/v1/wallets/{address}").json()["balance_fen"])


def proposal(api: Api, cid: int, pid: int) -> dict[str, Any]:
    r = api.auditor.get(f"/v1/collectives/{cid}/proposals/{pid}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_the_township_creates_a_collective_with_officers_and_budget_lines(api: Api, village: Village) -> None:
    v = village
    cid = create(api, v, name="Qingshui village")
    c = api.auditor.get(f"/v1/collectives/{cid}").json()
    assert c["name"] == "Qingshui village"
    assert c["name_sha256"] == "0x" + hashlib.sha256(b"Qingshui village").hexdigest()
    assert c["supervisor"] == api.app.state.ctx.regulator.address
    assert c["officers"] == {
        v.alice: "committee",
        v.bob: "committee",
        v.carol: "committee",
        v.tom: "treasurer",
    }
    assert [(t["max_amount_fen"], t["committee"], t["township"], t["delay_s"]) for t in c["tiers"]] == [
        (LIMIT, 2, False, 0),
        (CEILING, 2, True, NOTICE),
    ]
    assert c["lines"] == [
        {
            "line": 0,
            "name": "infrastructure",
            "budget_fen": 80_000_00,
            "spent_fen": 0,
            "remaining_fen": 80_000_00,
        },
        {"line": 1, "name": "welfare", "budget_fen": 10_000_00, "spent_fen": 0, "remaining_fen": 10_000_00},
    ]
    assert (c["year"], c["frozen"], c["balance_fen"], c["assets"], c["income"]) == (2025, False, 0, [], [])


def test_creating_again_with_the_same_idempotency_key_replays(api: Api, village: Village) -> None:
    v = village
    body = {
        "name": "Replay village",
        "officers": [{"account": v.alice, "role": "committee"}, {"account": v.bob, "role": "committee"}],
        "tiers": TIERS[:1],
        "proposal_lifetime_s": DAY,
        "year": 2025,
        "lines": LINES[:1],
    }
    first = api.post("regulator", "/v1/collectives", body, key="collective-replay")
    again = api.post("regulator", "/v1/collectives", body, key="collective-replay")
    assert first.status_code == again.status_code == 201, again.text
    assert first.json()["collective_id"] == again.json()["collective_id"]
    assert first.json()["year_operation"]["id"] == again.json()["year_operation"]["id"]
    other = api.post("regulator", "/v1/collectives", {**body, "name": "Other"}, key="collective-replay")
    assert_problem(other, 409, "idempotency-key-reused")


def test_officers_propose_approve_with_their_own_keys_and_pay(api: Api, village: Village) -> None:
    v = village
    cid = create(api, v)
    assert pay_in(api, v, cid, 20_000_00, memo="pond lease 2025").status_code == 200
    pid = propose(v, cid, 4_000_00)
    assert proposal(api, cid, pid)["state"] == "pending"
    r = act(v, "bob", cid, pid, "approve")
    assert r.status_code == 200, r.text
    assert [e["name"] for e in r.json()["result"]["events"]] == ["ProposalApproved"]
    r = act(v, "carol", cid, pid, "approve")
    assert r.status_code == 200, r.text
    assert [e["name"] for e in r.json()["result"]["events"]] == ["ProposalApproved", "ProposalReady"]
    before = balance(api, v.payee)
    r = act(v, "tom", cid, pid, "execute")  # the treasurer pays
    assert r.status_code == 200, r.text
    assert balance(api, v.payee) == before + 4_000_00

    p = proposal(api, cid, pid)
    assert (p["status"], p["state"], p["proposer"], p["payee"], p["amount_fen"]) == (
        "executed",
        "executed",
        v.alice,
        v.payee,
        4_000_00,
    )
    assert [(a["approver"], a["township"]) for a in p["approvals"]] == [(v.bob, False), (v.carol, False)]
    assert p["proposed_at"] <= p["approvals"][0]["at"] <= p["approvals"][1]["at"] == p["ready_at"]
    assert p["executable_at"] == p["ready_at"] and p["closed_at"] >= p["ready_at"]
    assert p["closed_by"] == v.tom and p["line_name"] == "infrastructure"
    assert p["purpose"] == "gravel for the east road"
    assert p["purpose_sha256"] == "0x" + hashlib.sha256(b"gravel for the east road").hexdigest()
    assert p["evidence_sha256"] == "0x" + INVOICE
    assert [h["event"] for h in p["history"]] == [
        "ProposalCreated",
        "ProposalTerms",
        "ProposalApproved",
        "ProposalApproved",
        "ProposalReady",
        "ProposalExecuted",
    ]
    c = api.regulator.get(f"/v1/collectives/{cid}").json()
    assert (c["balance_fen"], c["total_income_fen"], c["total_paid_fen"]) == (16_000_00, 20_000_00, 4_000_00)
    assert c["lines"][0]["spent_fen"] == 4_000_00 and c["lines"][0]["remaining_fen"] == 76_000_00

    r = act(v, "alice", cid, pid, "execute")  # paid once only
    body = assert_problem(r, 409, "proposal-not-pending")
    assert body["error"] == {"name": "CollectiveProposalNotPending", "args": {"proposalId": pid, "status": 2}}
    assert balance(api, v.payee) == before + 4_000_00


def test_approvals_by_the_proposer_a_treasurer_or_an_outsider_are_refused(api: Api, village: Village) -> None:
    v = village
    cid = create(api, v)
    pid = propose(v, cid, 1_000_00)
    body = assert_problem(act(v, "alice", cid, pid, "approve"), 403, "self-approval")
    assert body["error"]["name"] == "CollectiveSelfApproval"
    assert body["error"]["args"] == {"proposalId": pid, "officer": v.alice}
    body = assert_problem(act(v, "tom", cid, pid, "approve"), 403, "not-an-approver")
    assert body["error"]["name"] == "CollectiveNotApprover"
    # an outsider is refused before anything is looked up (no contract error naming anyone)
    body = assert_problem(act(v, "dave", cid, pid, "approve"), 403, "not-your-collective")
    assert "error" not in body
    assert act(v, "bob", cid, pid, "approve").status_code == 200
    body = assert_problem(act(v, "bob", cid, pid, "approve"), 409, "already-approved")
    assert body["error"]["name"] == "CollectiveAlreadyApproved"
    p = proposal(api, cid, pid)
    assert (p["committee_approvals"], [a["approver"] for a in p["approvals"]]) == (1, [v.bob])
    # a failed operation replays its problem under the same key
    r1 = v.keys["alice"].post(
        f"/v1/collectives/{cid}/proposals/{pid}/approve", headers={"Idempotency-Key": "self-approve"}
    )
    r2 = v.keys["alice"].post(
        f"/v1/collectives/{cid}/proposals/{pid}/approve", headers={"Idempotency-Key": "self-approve"}
    )
    assert assert_problem(r1, 403, "self-approval")["operation_id"] == r2.json()["operation_id"]


def test_executing_before_the_approvals_is_409(api: Api, village: Village) -> None:
    v = village
    cid = create(api, v)
    assert pay_in(api, v, cid, 5_000_00).status_code == 200
    pid = propose(v, cid, 2_000_00)
    assert act(v, "bob", cid, pid, "approve").status_code == 200
    body = assert_problem(act(v, "alice", cid, pid, "execute"), 409, "not-approved")
    assert body["error"] == {
        "name": "CollectiveNotApproved",
        "args": {
            "proposalId": pid,
            "committee": 1,
            "committeeRequired": 2,
            "township": False,
            "townshipRequired": False,
        },
    }
    assert proposal(api, cid, pid)["state"] == "pending"


def test_a_committee_member_rejects_and_the_proposer_cancels(api: Api, village: Village) -> None:
    v = village
    cid = create(api, v)
    pid = propose(v, cid, 1_000_00)
    r = act(v, "carol", cid, pid, "reject", {"reason": "no second quote"})
    assert r.status_code == 200, r.text
    assert_problem(act(v, "bob", cid, pid, "approve"), 409, "proposal-not-pending")
    p = proposal(api, cid, pid)
    assert (p["status"], p["state"], p["closed_by"]) == ("rejected", "rejected", v.carol)
    assert p["close_reason_sha256"] == "0x" + hashlib.sha256(b"no second quote").hexdigest()

    other = propose(v, cid, 500_00, who="tom")
    assert_problem(act(v, "alice", cid, other, "cancel"), 403, "not-the-proposer")
    assert act(v, "tom", cid, other, "cancel").status_code == 200
    assert proposal(api, cid, other)["state"] == "cancelled"

    third = propose(v, cid, 300_00)  # the township may reject too, without a reason
    r = api.post("regulator", f"/v1/collectives/{cid}/proposals/{third}/reject")
    assert r.status_code == 200, r.text
    assert proposal(api, cid, third)["closed_by"] == api.app.state.ctx.regulator.address


def test_a_frozen_collective_takes_no_proposals_but_income_goes_on(api: Api, village: Village) -> None:
    v = village
    cid = create(api, v)
    pending = propose(v, cid, 1_000_00)
    r = api.post("regulator", f"/v1/collectives/{cid}/freeze", {"reason": "audit finding 2025-07"})
    assert r.status_code == 200, r.text
    assert api.auditor.get(f"/v1/collectives/{cid}").json()["frozen"] is True
    body = {"payee": v.payee, "amount_fen": 100, "line": 0, "purpose": "x"}
    assert_problem(v.post("alice", f"/v1/collectives/{cid}/proposals", body), 409, "collective-frozen")
    assert_problem(act(v, "bob", cid, pending, "approve"), 409, "collective-frozen")
    assert_problem(api.post("regulator", f"/v1/collectives/{cid}/freeze"), 409, "collective-frozen")
    assert pay_in(api, v, cid, 1_000_00).status_code == 200  # income is accepted while frozen
    assert api.post("regulator", f"/v1/collectives/{cid}/unfreeze").status_code == 200
    assert_problem(api.post("regulator", f"/v1/collectives/{cid}/unfreeze"), 409, "collective-not-frozen")
    assert act(v, "bob", cid, pending, "approve").status_code == 200
    c = api.auditor.get(f"/v1/collectives/{cid}").json()
    assert (c["frozen"], c["balance_fen"]) == (False, 1_000_00)


def test_an_asset_is_registered_and_income_is_tagged_to_it(api: Api, village: Village) -> None:
    v = village
    cid = create(api, v)
    r = v.post(
        "tom",
        f"/v1/collectives/{cid}/assets",
        {"kind": "resource", "value_fen": 300_000_00, "description": "fish pond, 12 mu, plot 7"},
    )
    assert r.status_code == 201, r.text
    asset_id = r.json()["asset_id"]
    assert pay_in(api, v, cid, 6_000_00, asset_id=asset_id, memo="pond lease H1").status_code == 200
    assert pay_in(api, v, cid, 1_500_00).status_code == 200  # a subsidy: untagged
    c = api.auditor.get(f"/v1/collectives/{cid}").json()
    (asset,) = c["assets"]
    assert (asset["id"], asset["kind"], asset["value_fen"], asset["retired"]) == (
        asset_id,
        "resource",
        300_000_00,
        False,
    )
    assert asset["description"] == "fish pond, 12 mu, plot 7"
    assert asset["description_sha256"] == "0x" + hashlib.sha256(b"fish pond, 12 mu, plot 7").hexdigest()
    assert asset["income_received_fen"] == 6_000_00 and c["untagged_income_fen"] == 1_500_00
    assert [(i["asset_id"], i["payer"], i["amount_fen"]) for i in c["income"]] == [
        (asset_id, v.lessee, 6_000_00),
        (0, v.lessee, 1_500_00),
    ]
    assert c["income"][0]["memo_sha256"] == "0x" + hashlib.sha256(b"pond lease H1").hexdigest()
    assert (c["balance_fen"], c["total_income_fen"]) == (7_500_00, 7_500_00)

    other = create(api, v)
    body = assert_problem(pay_in(api, v, other, 100, asset_id=asset_id), 422, "asset-of-another-collective")
    assert body["error"]["args"] == {"assetId": asset_id, "collectiveId": other}
    assert_problem(pay_in(api, v, cid, 100, asset_id=10**9), 404, "asset-not-found")
    r = v.post(
        "dave", f"/v1/collectives/{cid}/assets", {"kind": "property", "value_fen": 1, "description": "x"}
    )
    assert_problem(r, 403, "not-your-collective")


def test_the_auditor_sees_every_proposal_and_totals_by_line(api: Api, village: Village) -> None:
    v = village
    cid = create(api, v)
    assert pay_in(api, v, cid, 30_000_00).status_code == 200
    paid = []
    for amount, line in ((1_000_00, 0), (2_500_00, 0), (700_00, 1)):
        pid = propose(v, cid, amount, line)
        assert act(v, "bob", cid, pid, "approve").status_code == 200
        assert act(v, "carol", cid, pid, "approve").status_code == 200
        assert act(v, "alice", cid, pid, "execute").status_code == 200
        paid.append(pid)
    waiting = propose(v, cid, 3_000_00, 1, who="bob")
    rejected = propose(v, cid, 4_000_00, 0, who="carol")
    assert act(v, "alice", cid, rejected, "reject").status_code == 200

    for reader in (api.auditor, api.regulator, api.operator, v.keys["alice"]):
        r = reader.get(f"/v1/collectives/{cid}/proposals")
        assert r.status_code == 200, r.text
    page = r.json()
    assert [p["id"] for p in page["proposals"]] == [*paid, waiting, rejected]
    assert [p["state"] for p in page["proposals"]] == ["executed"] * 3 + ["pending", "rejected"]
    assert all(p["evidence_sha256"] == "0x" + INVOICE for p in page["proposals"])
    assert [len(p["approvals"]) for p in page["proposals"]] == [2, 2, 2, 0, 0]
    totals = {(t["year"], t["line"]): t for t in page["totals"]}
    assert totals[(2025, 0)] == {
        "year": 2025,
        "line": 0,
        "name": "infrastructure",
        "proposals": 3,
        "executed": 2,
        "executed_fen": 3_500_00,
        "open": 0,
        "open_fen": 0,
        "rejected": 1,
        "cancelled": 0,
        "lapsed": 0,
    }
    assert (totals[(2025, 1)]["executed_fen"], totals[(2025, 1)]["open"], totals[(2025, 1)]["open_fen"]) == (
        700_00,
        1,
        3_000_00,
    )
    lines = {ln["line"]: ln for ln in page["lines"]}
    assert (lines[0]["spent_fen"], lines[0]["remaining_fen"]) == (3_500_00, 76_500_00)
    assert (lines[1]["spent_fen"], lines[1]["remaining_fen"]) == (700_00, 9_300_00)
    c = api.auditor.get(f"/v1/collectives/{cid}").json()
    assert (c["total_paid_fen"], c["balance_fen"]) == (4_200_00, 25_800_00)


def test_the_supervisor_changes_officers_budgets_rules_and_the_year(api: Api, village: Village) -> None:
    v = village
    cid = create(api, v)
    old = propose(v, cid, 1_000_00)
    r = api.post("regulator", f"/v1/collectives/{cid}/officers", {"account": v.dave, "role": "committee"})
    assert r.status_code == 200, r.text
    assert_problem(act(v, "bob", cid, old, "approve"), 409, "proposal-stale")  # a new epoch
    r = api.post("regulator", f"/v1/collectives/{cid}/officers", {"account": v.dave, "role": "committee"})
    assert_problem(r, 409, "officer-unchanged")
    pid = propose(v, cid, 1_000_00)
    assert act(v, "dave", cid, pid, "approve").status_code == 200
    r = api.post("regulator", f"/v1/collectives/{cid}/officers", {"account": v.carol, "role": "none"})
    assert r.status_code == 200, r.text
    c = api.auditor.get(f"/v1/collectives/{cid}").json()
    assert c["officers"] == {
        v.alice: "committee",
        v.bob: "committee",
        v.tom: "treasurer",
        v.dave: "committee",
    }

    r = api.post("regulator", f"/v1/collectives/{cid}/budgets", {"line": 1, "budget_fen": 12_000_00})
    assert r.status_code == 200, r.text
    rules = {"tiers": [{"max_amount_fen": CEILING, "committee": 1}], "proposal_lifetime_s": 7 * DAY}
    assert api.post("regulator", f"/v1/collectives/{cid}/rules", rules).status_code == 200
    new_year = {"year": 2026, "lines": [{"name": "roads 2026", "budget_fen": 5_000_00}]}
    assert api.post("regulator", f"/v1/collectives/{cid}/years", new_year).status_code == 200
    body = assert_problem(
        api.post("regulator", f"/v1/collectives/{cid}/years", new_year), 409, "year-not-after"
    )
    assert body["error"]["args"] == {"collectiveId": cid, "current": 2026, "year": 2026}
    c = api.auditor.get(f"/v1/collectives/{cid}").json()
    assert (c["year"], c["proposal_lifetime_s"], len(c["tiers"])) == (2026, 7 * DAY, 1)
    assert [(ln["name"], ln["budget_fen"]) for ln in c["lines"]] == [("roads 2026", 5_000_00)]
    page = api.auditor.get(f"/v1/collectives/{cid}/proposals").json()
    assert [p["state"] for p in page["proposals"]] == ["stale", "stale"]
    assert [(t["year"], t["line"], t["name"], t["lapsed"]) for t in page["totals"]] == [
        (2025, 0, "infrastructure", 2)
    ]
    assert act(v, "bob", cid, old, "reject").status_code == 200  # stale proposals can still be rejected


def test_keys_act_only_within_their_role(api: Api, village: Village) -> None:
    v = village
    cid = create(api, v)
    pid = propose(v, cid, 100_00)
    assert_problem(api.anonymous.get(f"/v1/collectives/{cid}"), 401, "missing-api-key")
    assert_problem(api.anonymous.post("/v1/collectives", json={}), 401, "missing-api-key")
    assert_problem(api.merchant.get(f"/v1/collectives/{cid}"), 403, "forbidden-role")
    assert_problem(api.merchant.get(f"/v1/collectives/{cid}/proposals"), 403, "forbidden-role")
    assert_problem(api.checker.get(f"/v1/collectives/{cid}"), 403, "forbidden-role")
    body = {"payee": v.payee, "amount_fen": 100, "line": 0, "purpose": "x"}
    for role in ("operator", "regulator", "auditor", "merchant"):
        assert_problem(api.post(role, f"/v1/collectives/{cid}/proposals", body), 403, "forbidden-role")
    for role in ("operator", "auditor", "merchant"):
        assert_problem(
            api.post(role, f"/v1/collectives/{cid}/proposals/{pid}/approve"), 403, "forbidden-role"
        )
    assert_problem(v.post("alice", "/v1/collectives", {}), 403, "forbidden-role")
    assert_problem(v.post("alice", f"/v1/collectives/{cid}/freeze"), 403, "forbidden-role")
    income = {"payer": v.lessee, "amount_fen": 1}
    assert_problem(v.post("alice", f"/v1/collectives/{cid}/income", income), 403, "forbidden-role")
    # an officer reads only the collectives they are an officer of
    assert_problem(v.keys["dave"].get(f"/v1/collectives/{cid}"), 403, "not-your-collective")
    assert v.keys["alice"].get(f"/v1/collectives/{cid}").status_code == 200
    # officer keys speak for a wallet, and only officer, merchant and checker keys do
    assert_problem(api.admin.post("/v1/api-keys", json={"role": "officer"}), 422, "invalid-request")
    r = api.admin.post("/v1/api-keys", json={"role": "auditor", "wallet": v.alice})
    assert_problem(r, 422, "invalid-request")


def test_bad_input_is_a_422_problem(api: Api, village: Village) -> None:
    v = village
    cid = create(api, v)
    base = {
        "name": "x",
        "officers": [{"account": v.alice, "role": "committee"}],
        "tiers": TIERS,
        "proposal_lifetime_s": DAY,
        "year": 2025,
        "lines": LINES,
    }
    for bad in (
        {"tiers": []},
        {"lines": []},
        {"lines": [{"name": "x" * 33, "budget_fen": 1}]},
        {"officers": [{"account": v.alice, "role": "chairman"}]},
        {"proposal_lifetime_s": 400 * DAY},
        {"unknown": 1},
    ):
        assert_problem(api.post("regulator", "/v1/collectives", {**base, **bad}), 422, "invalid-request")
    # what only the contract knows
    r = api.post("regulator", "/v1/collectives", {**base, "tiers": [{"max_amount_fen": 100, "committee": 0}]})
    assert assert_problem(r, 422, "invalid-approval-tier")["error"]["name"] == "CollectiveInvalidTier"
    dup = [{"account": v.alice, "role": "committee"}, {"account": v.alice, "role": "treasurer"}]
    assert_problem(
        api.post("regulator", "/v1/collectives", {**base, "officers": dup}), 422, "invalid-officer"
    )

    url = f"/v1/collectives/{cid}/proposals"
    good = {"payee": v.payee, "amount_fen": 100, "line": 0, "purpose": "x"}
    for bad in (
        {"amount_fen": 0},
        {"evidence_sha256": "abc"},
        {"purpose": ""},
        {"payee": "0x12"},
        {"line": 8},
    ):
        assert_problem(v.post("alice", url, {**good, **bad}), 422, "invalid-request")
    assert_problem(v.post("alice", url, {**good, "line": 5}), 422, "unknown-budget-line")
    assert_problem(v.post("alice", url, {**good, "amount_fen": 10_000_01, "line": 1}), 409, "budget-exceeded")
    assert_problem(v.post("alice", url, {**good, "amount_fen": CEILING + 1}), 422, "amount-above-tiers")
    stranger = "0x" + "ab" * 20
    assert_problem(v.post("alice", url, {**good, "payee": stranger}), 422, "payee-not-registered")
    r = v.keys["alice"].post(url, json=good)  # no Idempotency-Key
    assert_problem(r, 400, "missing-idempotency-key")
    # a collective that does not exist: the same 403 as another's for an officer key (no oracle)
    assert_problem(v.post("alice", "/v1/collectives/999999/proposals", good), 403, "not-your-collective")
    assert_problem(api.auditor.get("/v1/collectives/999999"), 404, "collective-not-found")
    pid = propose(v, cid, 100)
    other = create(api, v)
    assert_problem(act(v, "bob", other, pid, "approve"), 404, "proposal-not-found")
    assert_problem(act(v, "bob", cid, 10**9, "approve"), 404, "proposal-not-found")
    assert_problem(pay_in(api, v, cid, 0), 422, "invalid-request")
    r = api.post(
        "operator", f"/v1/collectives/{cid}/income", {"payer": v.payee.lower(), "amount_fen": 49_000_00}
    )
    assert_problem(r, 422, "insufficient-balance")
    body = {"payer": "0x" + "cd" * 20, "amount_fen": 1}  # not a custodial wallet
    assert_problem(api.post("operator", f"/v1/collectives/{cid}/income", body), 422, "not-custodial")


def test_the_township_tier_waits_for_the_supervisor_and_the_public_notice(api: Api, village: Village) -> None:
    """Last in the file: it moves the chain's clock."""
    v = village
    cid = create(api, v)
    assert pay_in(api, v, cid, 40_000_00).status_code == 200
    pid = propose(v, cid, 20_000_00)
    assert act(v, "bob", cid, pid, "approve").status_code == 200
    assert act(v, "carol", cid, pid, "approve").status_code == 200
    body = assert_problem(act(v, "alice", cid, pid, "execute"), 409, "not-approved")
    assert body["error"]["args"]["townshipRequired"] is True
    r = api.post("regulator", f"/v1/collectives/{cid}/proposals/{pid}/approve")  # the township approves
    assert r.status_code == 200, r.text
    p = proposal(api, cid, pid)
    assert p["state"] == "timelocked" and p["executable_at"] == p["ready_at"] + NOTICE
    assert [(a["approver"], a["township"]) for a in p["approvals"]][-1] == (
        api.app.state.ctx.regulator.address,
        True,
    )
    body = assert_problem(act(v, "alice", cid, pid, "execute"), 409, "timelocked")
    assert body["error"]["args"]["executableAt"] == p["executable_at"]
    lapsing = propose(v, cid, 100_00)

    devtools.increase_time(api.w3, NOTICE)
    assert proposal(api, cid, pid)["state"] == "executable"
    before = balance(api, v.payee)
    assert act(v, "alice", cid, pid, "execute").status_code == 200
    assert balance(api, v.payee) == before + 20_000_00

    devtools.increase_time(api.w3, 30 * DAY)
    assert proposal(api, cid, lapsing)["state"] == "expired"
    assert_problem(act(v, "bob", cid, lapsing, "approve"), 409, "proposal-expired")
    page = api.auditor.get(f"/v1/collectives/{cid}/proposals").json()
    (total,) = page["totals"]
    assert (total["executed_fen"], total["lapsed"], total["open"]) == (20_000_00, 1, 0)


def test_a_frozen_treasurer_neither_proposes_nor_executes(api: Api, village: Village) -> None:
    """The red team's finding: a treasurer whose wallet the regulator froze proposed and executed,
    and the payee was paid. Now 409 officer-frozen; the approved proposal waits for another officer."""
    v = village
    cid = create(api, v)
    assert pay_in(api, v, cid, 10_000_00).status_code == 200
    pid = propose(v, cid, 1_000_00)
    assert act(v, "bob", cid, pid, "approve").status_code == 200
    assert act(v, "carol", cid, pid, "approve").status_code == 200
    assert api.post("regulator", "/v1/regulator/freeze", {"address": v.tom}).status_code == 200
    try:
        body = {"payee": v.payee, "amount_fen": 100, "line": 0, "purpose": "x"}
        assert_problem(v.post("tom", f"/v1/collectives/{cid}/proposals", body), 409, "officer-frozen")
        before = balance(api, v.payee)
        assert_problem(act(v, "tom", cid, pid, "execute"), 409, "officer-frozen")
        assert balance(api, v.payee) == before
        assert proposal(api, cid, pid)["state"] == "executable"
    finally:
        assert api.post("regulator", "/v1/regulator/unfreeze", {"address": v.tom}).status_code == 200
    assert act(v, "tom", cid, pid, "execute").status_code == 200
    assert balance(api, v.payee) == before + 1_000_00


def test_split_proposals_to_one_payee_need_the_tier_of_their_sum(api: Api, village: Village) -> None:
    """Two 3,000-yuan proposals to one payee: the second needs the township and its notice, as one
    6,000-yuan payment would; the township sets the split window; a frozen payee gets no proposal."""
    v = village
    cid = create(api, v)
    first, second = propose(v, cid, 3_000_00), propose(v, cid, 3_000_00, line=1)
    assert not proposal(api, cid, first)["township_required"]
    p = proposal(api, cid, second)
    assert (p["township_required"], p["committee_required"]) == (True, 2)
    assert_problem(api.post("regulator", "/v1/collectives/split-window", {"days": 0}), 422, "invalid-request")
    assert_problem(v.post("alice", "/v1/collectives/split-window", {"days": 7}), 403, "forbidden-role")
    r = api.post("regulator", "/v1/collectives/split-window", {"days": 7})
    assert r.status_code == 200, r.text
    assert api.app.state.ctx.collective.split_window_days() == 7
    assert api.post("regulator", "/v1/regulator/freeze", {"address": v.payee}).status_code == 200
    body = {"payee": v.payee, "amount_fen": 100, "line": 0, "purpose": "x"}
    assert_problem(v.post("alice", f"/v1/collectives/{cid}/proposals", body), 409, "payee-frozen")


def test_amounts_beyond_the_contracts_uint128_are_a_422_and_leave_nothing_pending(
    api: Api, village: Village
) -> None:
    """Red team: a proposal of 2**200 fen and a tier limit of 2**200 fen were a 500 and an
    operation the reconciler retried every 2 s forever."""
    from tests.services.test_prepaid_api import pending_operations

    v = village
    cid = create(api, v)
    body = {"payee": v.payee, "amount_fen": 2**200, "line": 0, "purpose": "x", "evidence_sha256": INVOICE}
    assert_problem(v.post("alice", f"/v1/collectives/{cid}/proposals", body), 422, "invalid-request")
    tiers = [{"max_amount_fen": 2**200, "committee": 2}]
    create_body = {
        "name": f"Too rich {uuid.uuid4().hex[:6]}",
        "officers": [
            {"account": v.alice, "role": "committee"},
            {"account": v.bob, "role": "committee"},
            {"account": v.tom, "role": "treasurer"},
        ],
        "tiers": tiers,
        "proposal_lifetime_s": 30 * DAY,
        "year": 2025,
        "lines": LINES,
    }
    assert_problem(api.post("regulator", "/v1/collectives", create_body), 422, "invalid-request")
    assert pending_operations(api, "collective.propose") == 0
    assert pending_operations(api, "collective.create") == 0
