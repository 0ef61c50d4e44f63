"""A creation refused on chain leaves nothing behind (issue 21): before, a batch whose payer the
contract refused (a personal wallet) stayed a ``draft`` that could never be cancelled, and its
reference was burnt."""

from __future__ import annotations

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
