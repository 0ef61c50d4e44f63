"""Issue 21, over real HTTP: a creation refused on chain leaves nothing behind (before, a batch
whose payer the contract refused, a personal wallet, stayed a ``draft`` that could never be
cancelled, and its reference was burnt); actions that need no body work without one."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.services.conftest import Api
from tests.services.test_operator_api import assert_problem


def _body(api: Api, ref: str, payer: str, worker: str) -> dict[str, Any]:
    ends = datetime.fromtimestamp(api.w3.eth.get_block("latest")["timestamp"] + 30 * 86_400, UTC)
    return {
        "reference": ref,
        "payer": payer,
        "purpose": "salary",
        "ends_at": ends.isoformat(),
        "unit": "fen",
        "rows": [{"recipient": worker, "amount": 100}],
    }


def test_a_batch_refused_on_chain_leaves_no_draft_and_frees_its_reference(api: Api) -> None:
    person = api.new_wallet(tier=2, name="not a payer")  # a custodial personal wallet
    payer = api.new_wallet(kind="institution", tier=1, name="the real payer")
    worker = api.new_wallet(tier=2, name="worker")
    ref = f"refused-{uuid.uuid4().hex[:8]}"
    refused = _body(api, ref, person, worker)
    r = api.post("operator", "/v1/disbursements", refused, key="first")
    assert_problem(r, 422, "invalid-payer")
    # nothing left behind: no batch, no listing entry
    assert_problem(api.auditor.get(f"/v1/disbursements/{ref}"), 404, "disbursement-not-found")
    listed = api.auditor.get("/v1/disbursements", params={"payer": person}).json()["items"]
    assert listed == []
    # the same request with the same key answers the same refusal (and still leaves nothing)
    assert_problem(
        api.post("operator", "/v1/disbursements", refused, key="first"),
        422,
        "invalid-payer",
    )
    assert_problem(api.auditor.get(f"/v1/disbursements/{ref}"), 404, "disbursement-not-found")
    # the reference is free again: the right payer uses it
    r = api.post("operator", "/v1/disbursements", _body(api, ref, payer, worker))
    assert r.status_code == 201, r.text
    assert r.json()["reference"] == ref and r.json()["status"] == "ready"
    # and the refused request, replayed now, leaves the new batch alone
    assert_problem(
        api.post("operator", "/v1/disbursements", refused, key="first"),
        422,
        "invalid-payer",
    )
    assert api.auditor.get(f"/v1/disbursements/{ref}").json()["payer"] == payer


def test_execute_and_a_refund_page_need_no_body(api: Api) -> None:
    """Before, both answered ``422 body: Field required`` unless the client sent ``{}``."""
    payer = api.new_wallet(kind="institution", tier=1, name="employer")
    assert api.post("operator", "/v1/issuance", {"to": payer, "amount_fen": 10_000}).status_code == 200
    worker = api.new_wallet(tier=2, name="worker")
    checker_wallet = api.checker.get("/v1/wallets", params={"limit": 1}).json()["items"][0]["address"]
    role = {"account": checker_wallet, "role": "checker"}
    assert api.post("operator", f"/v1/disbursements/payers/{payer}/officers", role).status_code == 200
    ref = f"bodyless-{uuid.uuid4().hex[:8]}"
    assert api.post("operator", "/v1/disbursements", _body(api, ref, payer, worker)).status_code == 201
    r = api.checker.post(f"/v1/disbursements/{ref}/approve", headers={"Idempotency-Key": "a1"})
    assert r.status_code == 200, r.text
    r = api.operator.post(f"/v1/disbursements/{ref}/execute")  # no body, no content type
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while api.operator.get(f"/v1/disbursements/{ref}").json()["status"] == "executing":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert api.operator.get(f"/v1/disbursements/{ref}").json()["rows_by_status"] == {"paid": 1}
    shop = api.new_wallet(kind="merchant", tier=2, category=8299, name="closed school")
    assert (
        api.post(
            "regulator", "/v1/prepaid/merchants", {"merchant": shop, "supervised_bps": 10_000}
        ).status_code
        == 200
    )
    assert api.post("regulator", f"/v1/prepaid/merchants/{shop}/close").status_code == 200
    r = api.post("operator", f"/v1/prepaid/merchants/{shop}/refunds")  # no body: the first page
    assert r.status_code == 200, r.text
    assert r.json()["request"]["offset"] == 0 and r.json()["request"]["limit"] == 100
