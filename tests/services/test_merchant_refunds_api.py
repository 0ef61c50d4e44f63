"""Merchants' everyday needs over HTTP (issue 23): refunds of code payments (partial, full, never
more than paid, also concurrently; the voucher share back to the programme; a frozen payer),
daily statements in JSON and CSV that reconcile with the chain, and the spot-check robot.
Real chain, real database (both), real HTTP."""

from __future__ import annotations

import csv
import io
import threading
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from web3.logs import DISCARD

from services.operator.families.refunds.service import beijing_day
from tests.services.conftest import Api
from tests.services.test_operator_api import assert_problem
from tests.services.test_payment_codes_api import balance, client_for, custodial_payer, new_code, post


@pytest.fixture(scope="module")
def shop(api: Api) -> dict:
    merchant = api.new_wallet(kind="merchant", tier=2, category=5812, name="Noodle house")
    return {"address": merchant, "client": client_for(api, "merchant", merchant)}


def paid_bill(api: Api, merchant: str, fen: int, payer: str | None = None) -> tuple[dict, int, str]:
    """A dynamic code of ``fen`` paid by a custodial payer: (code, payment id, payer)."""
    payer = payer or custodial_payer(api)
    code = new_code(api, merchant, amount_fen=fen)
    r = post(api.operator, f"/v1/payment-codes/{code['id']}/pay", {"form": "custodial", "payer": payer})
    assert r.status_code == 200, r.text
    return code, r.json()["payments"][0]["id"], payer


def refund(
    client: httpx.Client, code: dict, payment: int, fen: int, key: str | None = None
) -> httpx.Response:
    return client.post(
        f"/v1/payment-codes/{code['id']}/payments/{payment}/refunds",
        json={"amount_fen": fen, "reason": "test"},
        headers={"Idempotency-Key": key or str(uuid.uuid4())},
    )


def test_a_merchant_refunds_part_of_a_bill_then_the_rest_and_no_more(api: Api, shop: dict) -> None:
    code, payment, payer = paid_bill(api, shop["address"], 3_000)
    before = balance(api, payer)
    r = refund(shop["client"], code, payment, 1_200)
    assert r.status_code == 201, r.text
    first = r.json()
    assert (
        first["status"],
        first["amount_fen"],
        first["cash_fen"],
        first["voucher_fen"],
        first["payer"],
    ) == (
        "confirmed",
        1_200,
        1_200,
        0,
        payer,
    )
    assert first["payment"] == str(payment) and first["code_id"] == code["id"]
    assert balance(api, payer) == before + 1_200
    assert_problem(refund(shop["client"], code, payment, 1_801), 409, "refund-exceeds-payment")
    assert refund(shop["client"], code, payment, 1_800).status_code == 201
    assert balance(api, payer) == before + 3_000
    r = refund(shop["client"], code, payment, 1)
    assert_problem(r, 409, "refund-exceeds-payment")
    assert (r.json()["paid_fen"], r.json()["refunded_fen"], r.json()["asked_fen"]) == (3_000, 3_000, 1)
    listed = shop["client"].get("/v1/refunds", params={"code_id": code["id"]}).json()["items"]
    assert [x["amount_fen"] for x in listed] == [1_200, 1_800]


def test_the_same_idempotency_key_answers_the_same_refund_once(api: Api, shop: dict) -> None:
    code, payment, payer = paid_bill(api, shop["address"], 1_000)
    before = balance(api, payer)
    key = str(uuid.uuid4())
    a = refund(shop["client"], code, payment, 400, key)
    b = refund(shop["client"], code, payment, 400, key)
    assert a.status_code == b.status_code == 201, (a.text, b.text)
    assert a.json()["id"] == b.json()["id"] and a.json()["operation_id"] == b.json()["operation_id"]
    assert balance(api, payer) == before + 400
    assert_problem(refund(shop["client"], code, payment, 500, key), 409, "idempotency-key-reused")


def test_two_concurrent_refunds_cannot_both_pass(api: Api, shop: dict) -> None:
    code, payment, payer = paid_bill(api, shop["address"], 1_000)
    before = balance(api, payer)
    answers: list[httpx.Response] = []
    go = threading.Barrier(2)

    def ask() -> None:
        go.wait()
        answers.append(refund(api.operator, code, payment, 600))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    loser = next(r for r in answers if r.status_code == 409)
    assert_problem(loser, 409, "refund-exceeds-payment")
    assert balance(api, payer) == before + 600


def test_the_voucher_share_returns_to_the_programme_the_cash_to_the_payer(api: Api, shop: dict) -> None:
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
    code = new_code(api, shop["address"], amount_fen=4_000)
    r = post(
        api.operator,
        f"/v1/payment-codes/{code['id']}/pay",
        {"form": "voucher", "payer": holder, "programme_id": pid},
    )
    assert r.status_code == 200, r.text
    payment = r.json()["payments"][0]["id"]
    issuer_before, holder_before = balance(api, issuer), balance(api, holder)
    r = refund(shop["client"], code, payment, 2_000)  # half the bill: half the voucher's 1,000
    assert r.status_code == 201, r.text
    assert (r.json()["cash_fen"], r.json()["voucher_fen"]) == (1_500, 500)
    assert balance(api, issuer) == issuer_before + 500
    assert balance(api, holder) == holder_before + 1_500
    # the reconciliation of these refunds (expected events, conservation): the spot-check test's, below


def test_a_refund_to_a_frozen_payer_waits(api: Api, shop: dict) -> None:
    code, payment, payer = paid_bill(api, shop["address"], 500)
    assert api.post("regulator", "/v1/regulator/freeze", {"address": payer}).status_code == 200
    r = refund(shop["client"], code, payment, 100)
    assert_problem(r, 409, "refund-payer-frozen")
    assert api.post("regulator", "/v1/regulator/unfreeze", {"address": payer}).status_code == 200
    assert refund(shop["client"], code, payment, 100).status_code == 201


def test_only_the_merchant_or_the_operator_refunds_and_reads(api: Api, shop: dict) -> None:
    code, payment, _ = paid_bill(api, shop["address"], 500)
    assert_problem(refund(api.merchant, code, payment, 100), 403, "not-your-merchant")  # another shop
    assert_problem(refund(api.auditor, code, payment, 100), 403, "forbidden-role")
    assert_problem(refund(api.merchant, {"id": "nosuchcode123"}, 1, 100), 403, "not-your-merchant")
    assert_problem(refund(api.operator, code, 999_999, 100), 404, "payment-not-found")
    r = refund(api.operator, code, payment, 100)
    assert r.status_code == 201, r.text
    assert_problem(api.merchant.get(f"/v1/refunds/{r.json()['id']}"), 403, "not-your-merchant")
    assert shop["client"].get(f"/v1/refunds/{r.json()['id']}").status_code == 200
    assert api.merchant.get("/v1/refunds").json()["items"] == []
    assert_problem(
        api.merchant.get("/v1/refunds", params={"merchant": shop["address"]}), 403, "not-your-merchant"
    )
    day = beijing_day(datetime.now(UTC))
    assert_problem(
        api.merchant.get(f"/v1/merchants/{shop['address']}/statements/{day}"), 403, "not-your-merchant"
    )


def _transfers(api: Api, txs: list[str], merchant: str) -> int:
    """What the merchant's wallet gained in these transactions, from the token's Transfer events."""
    cash = api.app.state.ctx.cash.cash
    net = 0
    for h in txs:
        for log in cash.events.Transfer().process_receipt(
            api.w3.eth.get_transaction_receipt(h), errors=DISCARD
        ):
            if log["args"]["to"] == merchant:
                net += log["args"]["value"]
            if log["args"]["from"] == merchant:
                net -= log["args"]["value"]
    return net


def test_the_days_statement_per_code_in_json_and_csv_reconciles_with_the_chain(api: Api) -> None:
    merchant = api.new_wallet(kind="merchant", tier=2, category=5411, name="Grocer")
    client = client_for(api, "merchant", merchant)
    start = balance(api, merchant)
    a, pa, _ = paid_bill(api, merchant, 2_500)
    b, pb, _ = paid_bill(api, merchant, 1_000)
    assert refund(client, a, pa, 700).status_code == 201
    assert refund(client, b, pb, 1_000).status_code == 201
    day = beijing_day(datetime.now(UTC))
    r = client.get(f"/v1/merchants/{merchant}/statements/{day}")
    assert r.status_code == 200, r.text
    st = r.json()
    t = st["totals"]
    assert (t["payments"], t["paid_fen"], t["refunds"], t["refunded_fen"], t["net_fen"]) == (
        2,
        3_500,
        2,
        1_700,
        1_800,
    )
    assert (t["paid_yuan"], t["refunded_yuan"], t["net_yuan"]) == ("35.00", "17.00", "18.00")
    by_code = {ln["id"]: ln["net_fen"] for ln in st["lines"]}
    assert by_code == {a["id"]: 1_800, b["id"]: 0}
    # the chain agrees: the balance moved by the net, and the listed transactions say so
    assert balance(api, merchant) - start == t["net_fen"]
    assert _transfers(api, st["transactions"], merchant) == t["net_fen"]
    assert len(st["transactions"]) == 4
    r = client.get(f"/v1/merchants/{merchant}/statements/{day}", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert (
        rows[-1]["kind"] == "total" and int(rows[-1]["net_fen"]) == 1_800 and rows[-1]["net_yuan"] == "18.00"
    )
    assert sorted(row["id"] for row in rows[:-1]) == sorted([a["id"], b["id"]])
    # another day has nothing; a bad day is a 422
    empty = client.get(f"/v1/merchants/{merchant}/statements/2020-01-01").json()
    assert empty["lines"] == [] and empty["totals"]["net_fen"] == 0
    assert client.get(f"/v1/merchants/{merchant}/statements/2020-13-01").status_code == 422


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1969-12-31"])
def test_a_day_outside_the_calendar_the_service_can_compute_is_a_422_not_a_500(api: Api, day: str) -> None:
    """Red team 8 LOW-2: a Beijing day's UTC bounds overflowed Python's datetime (a 500 that also
    dropped the connection) for the first and last days of the calendar."""
    merchant = api.new_wallet(kind="merchant", tier=2, category=5411, name="Edge grocer")
    client = client_for(api, "merchant", merchant)
    for path in (f"/v1/merchants/{merchant}/statements/{day}", f"/v1/spot-checks/{day}"):
        r = (client if "merchants" in path else api.auditor).get(path)
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("amount", [True, "100", 1.5])
def test_a_refund_amount_must_be_a_json_integer(api: Api, shop: dict, amount: object) -> None:
    """Red team 8 LOW-3: ``true`` refunded 1 fen and ``"100"`` 100 fen (lax coercion); money
    amounts are JSON integers only, as on /v1/transfers."""
    code, payment, _ = paid_bill(api, shop["address"], 300)
    r = shop["client"].post(
        f"/v1/payment-codes/{code['id']}/payments/{payment}/refunds",
        json={"amount_fen": amount, "reason": "test"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert r.status_code == 422, r.text


def test_the_spot_check_robot_probes_every_active_static_code_once_a_day(api: Api) -> None:
    merchant = api.new_wallet(kind="merchant", tier=2, category=5499, name="Fruit stall")
    code = new_code(api, merchant)
    start = balance(api, merchant)
    r = api.post("operator", "/v1/spot-checks/run")
    assert r.status_code == 200, r.text
    report = r.json()
    mine = [c for c in report["checks"] if c["target_id"] == code["id"]]
    assert [(c["outcome"], c["area"], c["category"]) for c in mine] == [("passed", "unassigned", 5499)]
    assert report["by_category"]["5499"]["pass_rate"] == 1.0
    assert report["coverage"] == 1.0 and report["pass_rate"] == 1.0 and report["meets_target"]
    assert balance(api, merchant) == start  # paid 1 fen, refunded 1 fen
    statement = api.auditor.get(f"/v1/merchants/{merchant}/statements/{report['day']}").json()
    assert (statement["totals"]["paid_fen"], statement["totals"]["refunded_fen"]) == (1, 1)
    # idempotent per day: a second run probes nothing it probed already
    again = api.post("operator", "/v1/spot-checks/run").json()
    assert [c for c in again["checks"] if c["target_id"] == code["id"]] == mine
    assert len(api.auditor.get(f"/v1/payment-codes/{code['id']}").json()["payments"]) == 1
    assert api.auditor.get(f"/v1/spot-checks/{report['day']}").json()["checks"] == again["checks"]
    assert_problem(api.post("merchant", "/v1/spot-checks/run"), 403, "forbidden-role")
    report = api.auditor.get("/v1/audit/reconciliation").json()  # every refund of this module so far
    assert report["verdict"] == "clean", report["discrepancies"]
    assert report["totals"]["refunded_by_merchant_fen"], report["totals"]


def test_the_spot_check_runs_as_a_worker_of_the_service_when_configured(api: Api) -> None:
    """``spot_check_interval_s`` adds the robot to the operator's workers; a round probes a new code."""
    import time

    from services.operator.app import _parts
    from services.operator.settings import OperatorSettings

    settings: OperatorSettings = api.app.state.settings
    off = _parts(settings)(api.app.state.ctx, api.app.state.ops)
    assert "xcpay-spot-check" not in [getattr(w, "name", "") for w in off.workers]  # off by default
    on = _parts(settings.model_copy(update={"spot_check_interval_s": 0.2}))(
        api.app.state.ctx, api.app.state.ops
    )
    (robot,) = [w for w in on.workers if getattr(w, "name", "") == "xcpay-spot-check"]
    merchant = api.new_wallet(kind="merchant", tier=2, category=5462, name="Bakery")
    code = new_code(api, merchant)
    robot.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            day = beijing_day(datetime.now(UTC))
            checks = api.auditor.get(f"/v1/spot-checks/{day}").json()["checks"]
            if any(c["target_id"] == code["id"] and c["outcome"] == "passed" for c in checks):
                break
            assert time.monotonic() < deadline, checks
            time.sleep(0.2)
    finally:
        robot.stop()


def _terminal(api: Api, merchant: str, location: str) -> str:
    """A gateway terminal of ``merchant`` (registered as the gateway does: the shared database)."""
    from services.gateway.families.hardwallet.schemas import TerminalIn
    from services.gateway.families.hardwallet.service.terminals import register_terminal
    from services.operator.families.refunds.spotcheck import robot_key

    ctx = api.app.state.ctx
    return register_terminal(ctx, robot_key(ctx), TerminalIn(merchant=merchant, location=location)).id


def test_the_robot_probes_every_terminal_with_its_card_and_skips_a_frozen_merchants(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import func, select

    from services.common.refunds import MerchantRefund
    from services.gateway.families.hardwallet.models import OfflineUpload
    from services.gateway.families.hardwallet.service import refunds as card_refunds
    from services.operator.families.refunds import spotcheck

    ctx = api.app.state.ctx
    good = api.new_wallet(kind="merchant", tier=2, category=5812, name="Canteen")
    frozen = api.new_wallet(kind="merchant", tier=2, category=5411, name="Grocer")
    t_good, t_frozen = _terminal(api, good, "Huangqiao park"), _terminal(api, frozen, "Yuanhe street")
    assert api.post("regulator", "/v1/regulator/freeze", {"address": frozen}).status_code == 200
    start = balance(api, good)
    report = api.post("operator", "/v1/spot-checks/run").json()
    checks = {c["target_id"]: c for c in report["checks"]}
    assert (checks[t_good]["outcome"], checks[t_good]["detail"]) == ("passed", None)
    # a frozen merchant is not probed (its acceptance is not what failed): skipped, apart in coverage
    assert (checks[t_frozen]["outcome"], checks[t_frozen]["detail"]) == ("skipped", "frozen")
    assert report["by_area"]["Huangqiao park"] == {
        "targets": 1, "skipped": 0, "skipped_by_reason": {}, "probed": 1, "passed": 1,
        "refund_pending": 0, "coverage": 1.0, "pass_rate": 1.0,
    }  # fmt: skip
    assert report["by_area"]["Yuanhe street"] == {
        "targets": 1, "skipped": 1, "skipped_by_reason": {"frozen": 1}, "probed": 0, "passed": 0,
        "refund_pending": 0, "coverage": 0.0, "pass_rate": 0.0,
    }  # fmt: skip
    assert report["by_category"]["5411"]["skipped"] >= 1 and report["coverage"] == 1.0
    assert balance(api, good) == start  # paid 1 fen by the card, refunded 1 fen
    (refund,) = api.auditor.get("/v1/refunds", params={"merchant": good}).json()["items"]
    wallet = spotcheck.probe_wallet(ctx, api.app.state.ops, spotcheck.robot_key(ctx))
    card = ctx.hardwallet.card(refund["payment"].split(":")[0])
    assert (refund["payment_kind"], refund["terminal_id"], refund["payer"]) == ("card", t_good, wallet)
    # one fen left the card (to the good merchant; the frozen one got nothing), came back to the wallet
    assert (card.holder, card.settled, card.reserve) == (wallet, 1, card.loaded - 1)
    assert api.auditor.get("/v1/refunds", params={"merchant": frozen}).json()["items"] == []

    # a restart mid-probe (after the settlement, before the refund) probes nothing twice
    late = api.new_wallet(kind="merchant", tier=2, category=5812, name="Tea house")
    t_late = _terminal(api, late, "Huangqiao park")
    start = balance(api, late)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the process stopped")

    monkeypatch.setattr(card_refunds, "refund_card_payment", crash)
    with pytest.raises(RuntimeError):
        spotcheck.run(ctx, api.app.state.ops)
    assert balance(api, late) == start + 1  # settled, not refunded yet
    monkeypatch.undo()
    report = api.post("operator", "/v1/spot-checks/run").json()
    assert [c["outcome"] for c in report["checks"] if c["target_id"] == t_late] == ["passed"]
    assert report["by_area"]["Huangqiao park"]["passed"] == 2
    assert balance(api, late) == start
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).where(OfflineUpload.terminal_id == t_late)) == 1
        assert s.scalar(select(func.count()).where(MerchantRefund.terminal_id == t_late)) == 1
    assert ctx.hardwallet.card(refund["payment"].split(":")[0]).settled == 2
    assert api.post("regulator", "/v1/regulator/unfreeze", {"address": frozen}).status_code == 200
    again = api.post("operator", "/v1/spot-checks/run").json()  # the day's skip stands: not probed again
    assert [c["outcome"] for c in again["checks"] if c["target_id"] == t_frozen] == ["skipped"]
    recon = api.auditor.get("/v1/audit/reconciliation").json()
    assert recon["verdict"] == "clean", recon["discrepancies"]


def _hold(api: Api, wallet: str, fen: int) -> int:
    body = {"wallet": wallet, "amount_fen": fen, "reason": "court order", "case_number": "(2026)苏0507执1号"}
    r = api.post("regulator", "/v1/regulator/holds", body)
    assert r.status_code == 201, r.text
    return int(r.json()["hold_id"])


def _probe_refunds(api: Api, merchant: str) -> list[dict]:
    return api.auditor.get("/v1/refunds", params={"merchant": merchant}).json()["items"]


def test_a_held_merchant_is_skipped_and_a_hold_after_the_probe_keeps_its_refund_waiting(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merchant under a hold is not probed (its fen could not come back); a hold that arrives
    between the probe and its refund leaves the refund waiting, retried every round until the
    hold is lifted, and refunded once: whether the hold came before the robot's check (no
    transaction sent) or between the check and the refund (the chain refused it: AmountFrozen)."""
    from services.operator.families.refunds import spotcheck

    ctx, ops = api.app.state.ctx, api.app.state.ops
    held = api.new_wallet(kind="merchant", tier=2, category=5999, name="Held shop")
    early = api.new_wallet(kind="merchant", tier=2, category=5999, name="Hold before the check")
    late = api.new_wallet(kind="merchant", tier=2, category=5999, name="Hold after the check")
    codes = {m: new_code(api, m)["id"] for m in (held, early, late)}
    first = _hold(api, held, 500)
    holds: dict[str, int] = {}
    real_refund, real_check = spotcheck._refund_probe, spotcheck._can_refund

    def hold_after_probe(ctx: object, ops: object, key: object, card: object, row_id: int) -> object:
        with api.app.state.ctx.db.session() as s:
            merchant = s.get(spotcheck.SpotCheck, row_id).merchant
        if merchant == early and early not in holds:
            holds[early] = _hold(api, early, 500)
        return real_refund(ctx, ops, key, card, row_id)  # type: ignore[arg-type]

    def hold_after_check(ctx: object, merchant: str) -> str | None:
        why = real_check(ctx, merchant)  # type: ignore[arg-type]
        if merchant == late and late not in holds:
            holds[late] = _hold(api, late, 500)
        return why

    monkeypatch.setattr(spotcheck, "_refund_probe", hold_after_probe)
    monkeypatch.setattr(spotcheck, "_can_refund", hold_after_check)
    report = spotcheck.run(ctx, ops)
    monkeypatch.undo()
    checks = {c["target_id"]: c for c in report.model_dump()["checks"]}
    assert (checks[codes[held]]["outcome"], checks[codes[held]]["detail"]) == ("skipped", "held")
    assert balance(api, held) == 0  # not probed: nothing went to it
    assert checks[codes[early]]["outcome"] == "refund-pending"
    assert checks[codes[early]]["detail"] == "refund waits: the merchant is held"
    # (the late one's refund was sent and refused; the round's retry of waiting refunds then read the hold)
    assert checks[codes[late]]["outcome"] == "refund-pending"
    assert checks[codes[late]]["detail"] == "refund waits: the merchant is held"
    assert (balance(api, early), balance(api, late)) == (1, 1)  # the fen stays, held
    assert _probe_refunds(api, early) == []  # no transaction was sent for it
    assert [r["status"] for r in _probe_refunds(api, late)] == ["failed"]  # the chain refused it
    assert report.refund_pending >= 2 and report.skipped_by_reason["held"] >= 1

    # the next round (the worker's, or the route): still held, still waiting, nothing sent
    again = api.post("operator", "/v1/spot-checks/run").json()
    outcome = {c["target_id"]: c["outcome"] for c in again["checks"]}
    assert (outcome[codes[early]], outcome[codes[late]], outcome[codes[held]]) == (
        "refund-pending", "refund-pending", "skipped"
    )  # fmt: skip
    assert _probe_refunds(api, early) == [] and len(_probe_refunds(api, late)) == 1

    for hold_id in (first, holds[early], holds[late]):
        assert api.post("regulator", f"/v1/regulator/holds/{hold_id}/lift").status_code == 200
    done = api.post("operator", "/v1/spot-checks/run").json()
    outcome = {c["target_id"]: c["outcome"] for c in done["checks"]}
    assert (outcome[codes[early]], outcome[codes[late]], outcome[codes[held]]) == (
        "passed",
        "passed",
        "skipped",
    )
    assert (balance(api, early), balance(api, late), balance(api, held)) == (0, 0, 0)
    assert [r["status"] for r in _probe_refunds(api, early)] == ["confirmed"]
    assert sorted(r["status"] for r in _probe_refunds(api, late)) == ["confirmed", "failed"]
    # once refunded, never again: another round sends nothing
    api.post("operator", "/v1/spot-checks/run")
    assert len(_probe_refunds(api, early)) == 1 and len(_probe_refunds(api, late)) == 2
    assert (balance(api, early), balance(api, late)) == (0, 0)
    recon = api.auditor.get("/v1/audit/reconciliation").json()
    assert recon["verdict"] == "clean", recon["discrepancies"]


def test_a_refund_queues_a_payment_refunded_event_for_the_merchant(api: Api) -> None:
    merchant = api.new_wallet(kind="merchant", tier=2, category=5812, name="Dumplings")
    client = client_for(api, "merchant", merchant)
    r = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hooks", "events": ["payment.refunded"]})
    assert r.status_code == 201, r.text
    endpoint = r.json()["id"]
    code, payment, payer = paid_bill(api, merchant, 900)
    refunded = refund(client, code, payment, 250).json()
    (delivery,) = client.get(f"/v1/webhooks/{endpoint}/deliveries").json()["items"]
    assert delivery["event_type"] == "payment.refunded"
    data = client.get(f"/v1/webhooks/deliveries/{delivery['id']}").json()["payload"]
    assert (data["merchant"], data["payer"], data["amount_fen"], data["refunded_total_fen"]) == (
        merchant,
        payer,
        250,
        250,
    )
    assert (data["code_id"], data["payment"], data["refund_id"]) == (code["id"], str(payment), refunded["id"])


def test_a_card_payment_of_a_code_is_refunded_to_the_cards_holder_wallet(api: Api, shop: dict) -> None:
    from chain.clients.hardwallet import CardForm
    from wallets.hardwallet import HardWallet

    ctx = api.app.state.ctx
    holder = custodial_payer(api)
    card = HardWallet.issue(ctx.hardwallet.domain)
    ctx.hardwallet.register_card(ctx.operator, card.address, holder, CardForm.CARD)  # as the gateway does
    ctx.hardwallet.load(ctx.custodial(holder), card.address, 5_000)
    card.credit(5_000)
    code = new_code(api, shop["address"], amount_fen=1_200)
    signed = card.sign_payment(shop["address"], 1_200, int(api.w3.eth.get_block("latest")["timestamp"]))
    r = post(
        shop["client"], f"/v1/payment-codes/{code['id']}/pay", {"form": "card", "payment": signed.to_json()}
    )
    assert r.status_code == 200, r.text
    payment = r.json()["payments"][0]["id"]
    before = balance(api, holder)
    r = refund(shop["client"], code, payment, 1_200)
    assert r.status_code == 201, r.text
    assert (r.json()["payer"], r.json()["cash_fen"]) == (holder, 1_200)
    assert balance(api, holder) == before + 1_200  # to the wallet; the card's reserve stays as it was
    assert ctx.hardwallet.card(card.address).reserve == 3_800


def test_a_purse_paid_card_payment_of_a_code_refunds_the_purse_part_to_its_funder(
    api: Api, shop: dict
) -> None:
    """A card paying a code from its earmarked purse: the refund returns the purse part to the
    purse's funder, never to the holder as cash."""
    from chain.clients.hardwallet import CardForm
    from wallets.hardwallet import HardWallet

    ctx = api.app.state.ctx
    holder, funder = custodial_payer(api), custodial_payer(api)
    card = HardWallet.issue(ctx.hardwallet.domain)
    ctx.hardwallet.register_card(ctx.operator, card.address, holder, CardForm.CARD)
    ctx.hardwallet.load(ctx.custodial(holder), card.address, 3_500)  # the route wants it to cover
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    pid = uuid.uuid4().int % 2**31 + 1
    ctx.hardwallet.create_purse_programme(ctx.operator, pid, funder, 5_000, now + 86_400, False, [5812])
    ctx.hardwallet.fund_purse(ctx.custodial(funder), card.address, pid, 3_000)
    card.credit(6_500)
    code = new_code(api, shop["address"], amount_fen=3_500)  # 3_000 from the purse, 500 cash
    signed = card.sign_payment(shop["address"], 3_500, now)
    r = post(
        shop["client"], f"/v1/payment-codes/{code['id']}/pay", {"form": "card", "payment": signed.to_json()}
    )
    assert r.status_code == 200, r.text
    payment = r.json()["payments"][0]["id"]
    holder_before, funder_before = balance(api, holder), balance(api, funder)
    r = refund(shop["client"], code, payment, 3_500)
    assert r.status_code == 201, r.text
    assert (r.json()["cash_fen"], r.json()["voucher_fen"]) == (500, 3_000)
    assert balance(api, holder) == holder_before + 500
    assert balance(api, funder) == funder_before + 3_000
    assert ctx.hardwallet.card(card.address).reserve == 3_000  # the purse paid first
    from services.operator.reconciliation import reconcile

    assert [d for d in reconcile(ctx).discrepancies if d.kind == "purse-refundable-as-cash"] == []


def test_a_frozen_robot_probes_nothing_and_fails_no_merchant(api: Api) -> None:
    """Red team 8 LOW-4: with the robot's own wallet frozen every merchant probed that day was
    marked failed, for good. Now the run is refused (409 ``spot-check-robot-blocked``), nothing is
    recorded against the merchants, and the next run after the unfreeze probes them."""
    from services.operator.families.refunds import spotcheck

    ctx = api.app.state.ctx
    robot = spotcheck.probe_wallet(ctx, api.app.state.ops, spotcheck.robot_key(ctx))
    merchant = api.new_wallet(kind="merchant", tier=2, category=5812, name="Tea shop")
    terminal = _terminal(api, merchant, "Yuanhe street")
    assert api.post("regulator", "/v1/regulator/freeze", {"address": robot}).status_code == 200
    try:
        r = api.operator.post("/v1/spot-checks/run")
        assert_problem(r, 409, "spot-check-robot-blocked")
    finally:
        assert api.post("regulator", "/v1/regulator/unfreeze", {"address": robot}).status_code == 200
    report = api.post("operator", "/v1/spot-checks/run").json()
    mine = [c for c in report["checks"] if c["target_kind"] == "terminal" and c["target_id"] == terminal]
    assert [c["outcome"] for c in mine] == ["passed"], mine
