"""Payroll and subsidy disbursement over HTTP: JSON and CSV batches, row validation, maker-checker,
execution with progress, exceptions, Merkle proofs, reclaim, roles. Real chain, real database."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from eth_account import Account

from chain import devtools
from chain.clients.disburse import Row
from tests.chain.test_merkle_standard import run_library
from tests.services.conftest import Api
from tests.services.test_operator_api import assert_problem

DAY = 86_400


def ends_in(api: Api, days: int) -> str:
    """An end date relative to the chain's clock (the tests move it)."""
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    return datetime.fromtimestamp(now + days * DAY, UTC).isoformat()


def balance(api: Api, address: str) -> int:
    return int(api.auditor.get(f"/v1/wallets/{address}").json()["balance_fen"])


@dataclass
class Payroll:
    employer: str
    checker_wallet: str
    checker: httpx.Client
    workers: list[str]  # custodial, registered with identity "worker-<i>-<tag>"
    tag: str


@pytest.fixture(scope="module")
def payroll(api: Api) -> Payroll:
    tag = uuid.uuid4().hex[:6]
    employer = api.new_wallet(kind="institution", tier=1, name="Gig platform")
    r = api.post("operator", "/v1/issuance", {"to": employer, "amount_fen": 10_000_000_00})
    assert r.status_code == 200, r.text
    checker_wallet = api.new_wallet(tier=2, name="Finance officer")
    key = api.admin.post("/v1/api-keys", json={"role": "checker", "wallet": checker_wallet}).json()["key"]
    checker = httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=60)
    r = api.post(
        "operator",
        f"/v1/disbursements/payers/{employer}/officers",
        {"account": checker_wallet, "role": "checker"},
    )
    assert r.status_code == 200, r.text
    workers = []
    for i in range(4):
        body = {"kind": "personal", "tier": 2, "display_name": f"worker {i}", "identity": f"worker-{i}-{tag}"}
        r = api.post("operator", "/v1/wallets", body)
        assert r.status_code == 201, r.text
        workers.append(r.json()["request"]["address"])
    return Payroll(employer, checker_wallet, checker, workers, tag)


def create(
    api: Api, p: Payroll, rows: list[dict], *, unit: str = "fen", mode: str = "explicit", ref: str = ""
) -> httpx.Response:
    body = {
        "reference": ref or f"payroll-{uuid.uuid4().hex[:10]}",
        "payer": p.employer,
        "purpose": "salary",
        "mode": mode,
        "ends_at": ends_in(api, 30),
        "unit": unit,
        "rows": rows,
    }
    return api.post("operator", "/v1/disbursements", body)


def approve(api: Api, p: Payroll, ref: str) -> httpx.Response:
    return p.checker.post(f"/v1/disbursements/{ref}/approve", headers={"Idempotency-Key": str(uuid.uuid4())})


def execute_and_wait(api: Api, ref: str, push: str = "all") -> dict:
    r = api.operator.post(f"/v1/disbursements/{ref}/execute", json={"push": push})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = api.operator.get(f"/v1/disbursements/{ref}").json()
        if status["status"] != "executing":
            return status
        time.sleep(0.2)
    raise AssertionError(f"batch {ref} still executing: {status}")


def test_a_frozen_checker_cannot_approve_and_the_batch_waits(api: Api, payroll: Payroll) -> None:
    """The red team's finding: a checker whose wallet the regulator froze approved (200) and the
    batch was paid. Now 409 checker-frozen; nothing leaves the payer; approved once unfrozen."""
    p = payroll
    r = create(api, p, [{"recipient": p.workers[0], "amount": 150}])
    assert r.status_code == 201, r.text
    ref = r.json()["reference"]
    before = balance(api, p.employer)
    assert api.post("regulator", "/v1/regulator/freeze", {"address": p.checker_wallet}).status_code == 200
    try:
        assert_problem(approve(api, p, ref), 409, "checker-frozen")
        assert api.operator.get(f"/v1/disbursements/{ref}").json()["status"] == "ready"
        assert balance(api, p.employer) == before
    finally:
        r = api.post("regulator", "/v1/regulator/unfreeze", {"address": p.checker_wallet})
        assert r.status_code == 200, r.text
    r = approve(api, p, ref)
    assert r.status_code == 200, r.text
    assert balance(api, p.employer) == before - 150


def test_a_json_payroll_in_yuan_is_approved_and_paid_in_chunks_with_exceptions(
    api: Api, payroll: Payroll
) -> None:
    p = payroll
    strangers = [Account.create().address for _ in range(197)]  # not registered: exceptions
    rows = [{"identity": f"worker-{i}-{p.tag}", "amount": f"{1000 + i}.50"} for i in range(3)]
    rows.append({"recipient": p.workers[3], "amount": 88})
    rows += [{"recipient": s, "amount": "1.00"} for s in strangers]
    before = {w: balance(api, w) for w in p.workers}
    r = create(api, p, rows, unit="yuan")
    assert r.status_code == 201, r.text
    created = r.json()
    ref, total = created["reference"], created["total_fen"]
    assert total == 100_050 + 100_150 + 100_250 + 8_800 + 197 * 100
    assert (created["status"], created["rows_total"], created["rows_done"]) == ("ready", 201, 0)

    r = approve(api, p, ref)
    assert r.status_code == 200, r.text
    status = api.operator.get(f"/v1/disbursements/{ref}").json()
    assert status["status"] == "approved" and status["chain"]["funded_fen"] == total

    done = execute_and_wait(api, ref)
    assert done["status"] == "executed" and done["progress"] == "201 of 201 rows done"
    assert done["rows_by_status"] == {"paid": 4, "exception": 197}
    chain = done["chain"]
    assert chain["paid_fen"] == total - 197 * 100 and chain["exceptions_fen"] == 197 * 100
    assert chain["funded_fen"] == chain["paid_fen"] + chain["reclaimed_fen"] + chain["outstanding_fen"]
    paid = [100_050, 100_150, 100_250, 8_800]
    assert [balance(api, w) - before[w] for w in p.workers] == paid

    exceptions = api.auditor.get(f"/v1/disbursements/{ref}/exceptions").json()["exceptions"]
    assert {e["reason"] for e in exceptions} == {"WalletNotRegistered"}
    assert [e["index"] for e in exceptions] == list(range(4, 201))
    csv_text = api.auditor.get(f"/v1/disbursements/{ref}/exceptions", params={"format": "csv"}).text
    assert (
        csv_text.splitlines()[0] == "index,recipient,amount_fen,reason" and len(csv_text.splitlines()) == 198
    )

    again = execute_and_wait(api, ref)  # executing again pays nothing twice
    assert again["chain"]["paid_fen"] == chain["paid_fen"]
    assert [balance(api, w) - before[w] for w in p.workers] == paid


def test_a_frozen_recipient_is_held_as_an_exception_and_paid_after_unfreezing(
    api: Api, payroll: Payroll
) -> None:
    p = payroll
    rows = [{"recipient": w, "amount": 500} for w in p.workers[:2]]
    ref = create(api, p, rows).json()["reference"]
    assert approve(api, p, ref).status_code == 200
    frozen = p.workers[1]
    assert api.post("regulator", "/v1/regulator/freeze", {"address": frozen}).status_code == 200
    try:
        done = execute_and_wait(api, ref)
    finally:
        assert api.post("regulator", "/v1/regulator/unfreeze", {"address": frozen}).status_code == 200
    assert done["rows_by_status"] == {"paid": 1, "exception": 1}
    (held,) = api.auditor.get(f"/v1/disbursements/{ref}/exceptions").json()["exceptions"]
    assert (held["index"], held["recipient"], held["reason"]) == (1, frozen, "WalletFrozen")
    before = balance(api, frozen)
    key = str(uuid.uuid4())
    r = api.post("operator", f"/v1/disbursements/{ref}/exceptions/1/retry", key=key)
    assert r.status_code == 200, r.text
    assert balance(api, frozen) == before + 500
    status = api.operator.get(f"/v1/disbursements/{ref}").json()
    assert status["rows_by_status"] == {"paid": 2} and status["chain"]["outstanding_fen"] == 0
    # Retried again under another key: the row was an exception and is paid (409, naming the
    # operation that paid it; no transaction), not "no open exception" (404: red team, LOW).
    block = api.w3.eth.block_number
    again = api.post("operator", f"/v1/disbursements/{ref}/exceptions/1/retry")
    assert assert_problem(again, 409, "exception-already-retried")["operation_id"] == r.json()["id"]
    assert api.w3.eth.block_number == block
    same = api.post("operator", f"/v1/disbursements/{ref}/exceptions/1/retry", key=key)  # a replay
    assert (same.status_code, same.json()["id"]) == (200, r.json()["id"])
    assert_problem(  # a row that never was an exception
        api.post("operator", f"/v1/disbursements/{ref}/exceptions/0/retry"), 404, "exception-not-found"
    )
    assert balance(api, frozen) == before + 500


def test_concurrent_retries_of_one_exception_pay_once_and_the_loser_gets_409(
    api: Api, payroll: Payroll
) -> None:
    p = payroll
    rows = [{"recipient": w, "amount": 400} for w in p.workers[:2]]
    ref = create(api, p, rows).json()["reference"]
    assert approve(api, p, ref).status_code == 200
    frozen = p.workers[1]
    assert api.post("regulator", "/v1/regulator/freeze", {"address": frozen}).status_code == 200
    try:
        assert execute_and_wait(api, ref)["rows_by_status"] == {"paid": 1, "exception": 1}
    finally:
        assert api.post("regulator", "/v1/regulator/unfreeze", {"address": frozen}).status_code == 200
    before = balance(api, frozen)
    answers: list[httpx.Response] = []
    start = threading.Barrier(3)

    def retry() -> None:
        start.wait()
        answers.append(api.post("operator", f"/v1/disbursements/{ref}/exceptions/1/retry"))

    threads = [threading.Thread(target=retry) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [200, 409, 409], [a.text for a in answers]
    (won,) = [a for a in answers if a.status_code == 200]
    for lost in (a for a in answers if a.status_code == 409):
        assert assert_problem(lost, 409, "exception-already-retried")["operation_id"] == won.json()["id"]
    assert balance(api, frozen) == before + 400


def test_a_batch_refused_during_a_pause_is_paid_after_the_unpause(api: Api, payroll: Payroll) -> None:
    """The red team found the chunk's stored refusal replayed for ever after the unpause."""
    p = payroll
    rows = [{"recipient": w, "amount": 300} for w in p.workers[:2]]
    ref = create(api, p, rows).json()["reference"]
    assert approve(api, p, ref).status_code == 200
    before = [balance(api, w) for w in p.workers[:2]]
    assert api.post("regulator", "/v1/regulator/pause").status_code == 200
    try:
        stopped = execute_and_wait(api, ref)
    finally:
        assert api.post("regulator", "/v1/regulator/unpause").status_code == 200
    assert stopped["status"] == "approved" and "EnforcedPause" in stopped["error"], stopped
    assert [balance(api, w) for w in p.workers[:2]] == before
    done = execute_and_wait(api, ref)
    assert done["status"] == "executed" and done["rows_by_status"] == {"paid": 2}, done
    assert [balance(api, w) - b for w, b in zip(p.workers[:2], before, strict=True)] == [300, 300]
    again = execute_and_wait(api, ref)  # and nothing is paid twice
    assert again["chain"]["paid_fen"] == 600
    assert [balance(api, w) - b for w, b in zip(p.workers[:2], before, strict=True)] == [300, 300]


def test_rows_are_validated_together_and_nothing_is_created(api: Api, payroll: Payroll) -> None:
    p = payroll
    rows = [
        {"recipient": p.workers[0], "amount": "12.345"},  # three decimals
        {"recipient": "0x1234", "amount": "1"},  # not an address
        {"identity": "nobody-has-this", "amount": "1"},  # unknown identity
        {"recipient": p.workers[1], "amount": "2"},
        {"recipient": p.workers[1], "amount": "3"},  # duplicate
        {"recipient": p.workers[2], "identity": f"worker-2-{p.tag}", "amount": "1"},  # both
        {"amount": "1"},  # no recipient
        {"recipient": p.workers[3], "amount": "-1"},
        {"recipient": _mangled(p.workers[0]), "amount": "1"},  # a letter's case changed
    ]
    ref = f"bad-{uuid.uuid4().hex[:8]}"
    body = assert_problem(create(api, p, rows, unit="yuan", ref=ref), 422, "invalid-rows")
    assert [(e["row"], e["field"]) for e in body["errors"]] == [
        (1, "amount"),
        (2, "recipient"),
        (3, "identity"),
        (5, "recipient"),
        (6, "recipient"),
        (7, "recipient"),
        (8, "amount"),
        (9, "recipient"),
    ]
    assert body["errors"][-1]["reason"] == "bad address checksum (EIP-55)"
    assert_problem(api.operator.get(f"/v1/disbursements/{ref}"), 404, "disbursement-not-found")
    # fen must be whole numbers
    bad_fen = assert_problem(
        create(api, p, [{"recipient": p.workers[0], "amount": "1.5"}]), 422, "invalid-rows"
    )
    assert bad_fen["errors"][0]["reason"].endswith("is not a whole number of fen")
    # the unit is required: no silent default
    body = {
        "reference": "x",
        "payer": p.employer,
        "purpose": "salary",
        "ends_at": ends_in(api, 1),
        "rows": [],
    }
    assert_problem(api.post("operator", "/v1/disbursements", body), 422, "invalid-request")


def _mangled(address: str) -> str:
    """``address`` with the case of its first letter changed: a wrong EIP-55 checksum."""
    i = next(i for i, c in enumerate(address) if i >= 2 and c.isalpha())
    return address[:i] + address[i].swapcase() + address[i + 1 :]


def post_csv(api: Api, p: Payroll, text: str, ref: str, mode: str = "explicit") -> httpx.Response:
    params = {
        "reference": ref,
        "payer": p.employer,
        "purpose": "subsidy",
        "ends_at": ends_in(api, 30),
        "mode": mode,
    }
    headers = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "text/csv"}
    return api.operator.post("/v1/disbursements/csv", params=params, content=text.encode(), headers=headers)


def test_a_csv_upload_reports_bad_rows_by_line_and_needs_a_unit_column(api: Api, payroll: Payroll) -> None:
    p = payroll
    ref = f"csv-{uuid.uuid4().hex[:8]}"
    ambiguous = f"recipient,amount\n{p.workers[0]},100\n"
    assert_problem(post_csv(api, p, ambiguous, ref), 422, "ambiguous-amount-unit")
    both = f"recipient,amount_fen,amount_yuan\n{p.workers[0]},100,1\n"
    assert_problem(post_csv(api, p, both, ref), 422, "ambiguous-amount-unit")
    bad = f"recipient,amount_yuan\n{p.workers[0]},10\n\n0xnot,5\n{p.workers[1]},abc\n{p.workers[2]},1,extra\n"
    body = assert_problem(post_csv(api, p, bad, ref), 422, "invalid-rows")
    assert [(e["row"], e["line"], e["field"]) for e in body["errors"]] == [
        (2, 4, "recipient"),
        (3, 5, "amount"),
        (4, 6, "row"),
    ]
    assert_problem(api.operator.get(f"/v1/disbursements/{ref}"), 404, "disbursement-not-found")


def test_a_csv_field_beyond_the_csv_modules_limit_is_a_422_naming_the_line(
    api: Api, payroll: Payroll
) -> None:
    """Python's csv refuses a field over 131,072 characters with csv.Error; that was a 500."""
    p = payroll
    ref = f"csv-{uuid.uuid4().hex[:8]}"
    text = f"recipient,amount_fen\n{p.workers[0]},100\n{p.workers[1]},{'9' * 200_000}\n"
    body = assert_problem(post_csv(api, p, text, ref), 422, "invalid-csv")
    assert "line 3" in body["detail"] and "field larger than field limit" in body["detail"]
    in_header = f"recipient,{'a' * 200_000}\n"
    assert "line 1" in assert_problem(post_csv(api, p, in_header, ref), 422, "invalid-csv")["detail"]


def test_a_csv_merkle_subsidy_pushes_custodial_claims_and_serves_proofs(api: Api, payroll: Payroll) -> None:
    p = payroll
    ctx = api.app.state.ctx
    self_custody = Account.create()
    r = api.post(
        "operator",
        "/v1/wallets",
        {
            "kind": "personal",
            "tier": 2,
            "display_name": "self custody",
            "identity": f"self-{p.tag}",
            "custody": "self",
            "address": self_custody.address,
        },
    )
    assert r.status_code == 201, r.text
    text = "identity,amount_yuan\n" + "".join(f"worker-{i}-{p.tag},{20 + i}\n" for i in range(4))
    text += f"self-{p.tag},30\n"
    ref = f"subsidy-{uuid.uuid4().hex[:8]}"
    r = post_csv(api, p, text, ref, mode="merkle")
    assert r.status_code == 201, r.text
    assert r.json()["root"] and r.json()["mode"] == "merkle"
    assert approve(api, p, ref).status_code == 200
    done = execute_and_wait(api, ref, push="custodial")
    assert done["status"] == "executed" and done["rows_by_status"] == {"paid": 4, "pending": 1}

    row = api.auditor.get(f"/v1/disbursements/{ref}/rows/4").json()
    assert (row["recipient"], row["amount_fen"], row["status"]) == (self_custody.address, 3_000, "pending")
    bid = bytes.fromhex(done["batch_id"][2:])
    proof = [bytes.fromhex(x[2:]) for x in row["proof"]]
    ctx.disburse.claim(ctx.operator, bid, 4, Row(self_custody.address, 3_000), proof)  # anyone may submit it
    assert balance(api, self_custody.address) == 3_000
    pushed = api.auditor.get(f"/v1/disbursements/{ref}/rows/3").json()
    assert pushed["status"] == "paid"
    # the published tree (5 leaves) is StandardMerkleTree's dump: the npm library loads it, gives
    # the root committed on chain and the proofs served per row
    tree = api.auditor.get(f"/v1/disbursements/{ref}/tree")
    assert tree.status_code == 200, tree.text
    assert f'filename="{ref}-tree.json"' in tree.headers["content-disposition"]
    loaded = run_library(tree.json())
    assert loaded["loadedRoot"] == loaded["builtRoot"] == "0x" + bytes(ctx.disburse.batch(bid).root).hex()
    assert loaded["proofs"][4] == row["proof"] and loaded["proofs"][3] == pushed["proof"]


def test_maker_checker_and_roles(api: Api, payroll: Payroll) -> None:
    p = payroll
    ref = create(api, p, [{"recipient": p.workers[0], "amount": 100}]).json()["reference"]
    # an operator key (the maker's role) cannot approve
    assert_problem(api.post("operator", f"/v1/disbursements/{ref}/approve"), 403, "forbidden-role")
    # a checker key speaking for the payer's own wallet (the key that drafted it on chain) is refused
    own = api.admin.post("/v1/api-keys", json={"role": "checker", "wallet": p.employer}).json()["key"]
    r = httpx.post(
        f"{api.url}/v1/disbursements/{ref}/approve",
        headers={"X-API-Key": own, "Idempotency-Key": str(uuid.uuid4())},
    )
    body = assert_problem(r, 403, "maker-checker")
    assert body["error"]["name"] == "DisburseSelfApproval"
    # a checker the payer never appointed
    stranger_wallet = api.new_wallet(tier=2, name="not a checker")
    key = api.admin.post("/v1/api-keys", json={"role": "checker", "wallet": stranger_wallet}).json()["key"]
    r = httpx.post(
        f"{api.url}/v1/disbursements/{ref}/approve",
        headers={"X-API-Key": key, "Idempotency-Key": str(uuid.uuid4())},
    )
    # refused before the contract is asked: its not-a-checker error named the payer's wallet
    body = assert_problem(r, 403, "not-your-payer")
    assert p.employer[2:].lower() not in r.text.lower()
    # a checker key without a wallet, or with one the service does not hold, is refused at creation
    assert_problem(api.admin.post("/v1/api-keys", json={"role": "checker"}), 422, "invalid-request")
    unknown = "0x" + "00" * 19 + "99"
    r = api.admin.post("/v1/api-keys", json={"role": "checker", "wallet": unknown})
    assert_problem(r, 422, "not-a-custodial-wallet")
    # execution before approval
    assert_problem(api.operator.post(f"/v1/disbursements/{ref}/execute", json={}), 409, "batch-not-approved")
    # merchants cannot create; nobody anonymous reads
    assert_problem(api.post("merchant", "/v1/disbursements", {}), 403, "forbidden-role")
    assert_problem(api.anonymous.get(f"/v1/disbursements/{ref}"), 401, "missing-api-key")
    assert api.auditor.get(f"/v1/disbursements/{ref}").json()["status"] == "ready"


def test_a_reference_is_used_once_and_a_replayed_request_changes_nothing(api: Api, payroll: Payroll) -> None:
    p = payroll
    ref = f"once-{uuid.uuid4().hex[:8]}"
    body = {
        "reference": ref,
        "payer": p.employer,
        "purpose": "bonus",
        "ends_at": ends_in(api, 10),
        "unit": "fen",
        "rows": [{"recipient": p.workers[0], "amount": 700}],
    }
    first = api.post("operator", "/v1/disbursements", body, key=f"k-{ref}")
    replay = api.post("operator", "/v1/disbursements", body, key=f"k-{ref}")
    assert first.status_code == replay.status_code == 201, replay.text
    assert first.json()["operation_id"] == replay.json()["operation_id"]
    assert_problem(api.post("operator", "/v1/disbursements", body), 409, "batch-exists")


def test_the_payer_reclaims_after_the_end_date_only(api: Api, payroll: Payroll) -> None:
    """Last in the module: it moves the chain's clock."""
    p = payroll
    stranger = Account.create().address  # never registered: stays an exception
    r = create(api, p, [{"recipient": p.workers[0], "amount": 100}, {"recipient": stranger, "amount": 900}])
    ref = r.json()["reference"]
    assert approve(api, p, ref).status_code == 200
    execute_and_wait(api, ref)
    assert_problem(api.post("operator", f"/v1/disbursements/{ref}/reclaim"), 409, "batch-not-ended")
    before = balance(api, p.employer)
    devtools.increase_time(api.w3, 31 * DAY)
    assert_problem(api.post("operator", f"/v1/disbursements/{ref}/exceptions/1/retry"), 409, "batch-ended")
    r = api.post("operator", f"/v1/disbursements/{ref}/reclaim")
    assert r.status_code == 200, r.text
    assert balance(api, p.employer) == before + 900
    status = api.auditor.get(f"/v1/disbursements/{ref}").json()
    assert status["status"] == "closed" and status["rows_by_status"] == {"paid": 1, "reclaimed": 1}
    chain = status["chain"]
    assert (chain["status"], chain["reclaimed_fen"], chain["outstanding_fen"]) == ("closed", 900, 0)
    assert_problem(api.post("operator", f"/v1/disbursements/{ref}/reclaim"), 409, "batch-wrong-status")


def test_an_identity_resolves_only_among_personal_wallets_and_never_to_one_of_several(
    api: Api, payroll: Payroll
) -> None:
    """Red team: a second wallet registered with a victim's identity used to receive the rows
    addressed to that identity. Merchant and institution wallets never match an identity; two
    personal wallets with one identity make every row naming it an ``identity-ambiguous`` error."""
    p, ident = payroll, f"victim-{uuid.uuid4().hex[:8]}"
    victim = api.post(
        "operator", "/v1/wallets", {"kind": "personal", "tier": 2, "display_name": "v", "identity": ident}
    )
    assert victim.status_code == 201, victim.text
    victim_address = victim.json()["request"]["address"]
    shop = {"kind": "merchant", "tier": 1, "display_name": "m", "identity": ident, "merchant_category": 1}
    r = api.post("operator", "/v1/wallets", shop)  # registered after the victim, same identity
    assert r.status_code == 201, r.text
    r = create(api, p, [{"identity": ident, "amount": "5"}])
    assert r.status_code == 201, r.text
    ref = r.json()["reference"]
    assert api.operator.get(f"/v1/disbursements/{ref}/rows/0").json()["recipient"] == victim_address
    attacker = {
        "kind": "personal",
        "tier": 2,
        "display_name": "a",
        "identity": ident,
        "custody": "self",
        "address": Account.create().address,
    }
    # One person, one identity (issue 22): the chain refuses a second personal wallet of the identity
    # in the same tier; in another tier it is accepted, and the identity no longer names one wallet.
    r = api.post("operator", "/v1/wallets", attacker)
    assert_problem(r, 409, "identity-wallet-limit")
    assert r.json()["error"]["name"] == "IdentityWalletLimit"
    r = api.post("operator", "/v1/wallets", {**attacker, "tier": 3, "address": Account.create().address})
    assert r.status_code == 201, r.text
    body = assert_problem(create(api, p, [{"identity": ident, "amount": "5"}]), 422, "invalid-rows")
    assert body["errors"] == [
        {
            "row": 1,
            "field": "identity",
            "code": "identity-ambiguous",
            "reason": "identity-ambiguous: 2 personal wallets are registered with this identity",
        }
    ]


def test_the_zero_address_cannot_be_appointed_an_officer(api: Api, payroll: Payroll) -> None:
    r = api.post(
        "operator",
        f"/v1/disbursements/payers/{payroll.employer}/officers",
        {"account": "0x0000000000000000000000000000000000000000", "role": "checker"},
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "the zero address cannot be an officer" in r.text and "account" in r.text
