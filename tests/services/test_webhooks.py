"""Webhooks against a real local HTTP receiver: signed deliveries, retries with backoff while the
receiver is down, nothing lost across a restart of the service, replay, the keys' scopes, and the
events the disbursement runner and the reconciliation write. Real chain, real databases (SQLite,
and PostgreSQL when present), the operator API over real HTTP."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from sqlalchemy import select
from web3 import Web3

from chain import devtools
from chain.backends import in_process
from chain.compiler import CompileResult
from chain.deploy import deploy_all
from services.common import webhooks
from services.common.db import Database, upgrade
from services.common.models import WebhookDelivery
from services.operator.app import create_app
from services.operator.settings import OperatorSettings
from tests.databases import fresh_database
from tests.processes import free_port
from tests.receiver import Receiver, verify
from tests.services.conftest import ADMIN_KEY, Api, ServerThread
from tests.services.test_operator_api import assert_problem

# Small, so that a retry comes within a second; the test polls with a deadline, never sleeps long.
FAST = {
    "webhook_poll_s": 0.05,
    "webhook_backoff_s": 0.3,
    "webhook_backoff_max_s": 0.6,
    "webhook_max_attempts": 4,
    "webhook_timeout_s": 3.0,
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def until(check: Callable[[], Any], what: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- a service that can be restarted ------------------------------------------------------------


@dataclass
class Stack:
    """One chain and one database; the operator API can be served, stopped and served again."""

    tmp: Path
    db_url: str
    w3: Web3
    keys: dict[str, str] = field(default_factory=dict)
    wallets: dict[str, str] = field(default_factory=dict)

    def settings(self) -> OperatorSettings:
        return OperatorSettings(
            database_url=self.db_url,
            manifest=self.tmp / "manifest.json",
            rpc_url="in-process",
            admin_api_key=ADMIN_KEY,
            receipt_timeout_s=10,
            **FAST,  # type: ignore[arg-type]
        )

    @contextmanager
    def serve(self, deliver: bool = True) -> Iterator[Api]:
        """The operator API; ``deliver``: with its webhook worker running."""
        app = create_app(self.settings(), w3=self.w3, background=False)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with ServerThread(app, port):
            if deliver:
                app.state.webhooks.start()
            clients = {
                role: httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60)
                for role, key in {"admin": ADMIN_KEY, **self.keys}.items()
            }
            try:
                yield Api(url, self.w3, app, clients)
            finally:
                for c in clients.values():
                    c.close()


@pytest.fixture(scope="module")
def stack(db_kind: str, compiled: CompileResult, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("webhooks")
    w3 = in_process()
    deploy_all(w3, compiled=compiled).save(tmp / "manifest.json")
    with fresh_database(db_kind, tmp) as db_url:
        upgrade(db_url)
        stack = Stack(tmp, db_url, w3)
        with stack.serve(deliver=False) as api:
            for role in ("operator", "regulator", "auditor"):
                stack.keys[role] = api.admin.post("/v1/api-keys", json={"role": role}).json()["key"]
            api.clients["operator"] = httpx.Client(
                base_url=api.url, headers={"X-API-Key": stack.keys["operator"]}, timeout=60
            )
            for shop in ("shop_a", "shop_b"):
                wallet = api.new_wallet(kind="merchant", tier=2, category=5812, name=shop)
                body = {"role": "merchant", "wallet": wallet}
                stack.keys[shop] = api.admin.post("/v1/api-keys", json=body).json()["key"]
                stack.wallets[shop] = wallet
        yield stack


def register(client: httpx.Client, url: str, *events: str) -> dict[str, Any]:
    r = client.post("/v1/webhooks", json={"url": url, "events": list(events) or ["payment_code.paid"]})
    assert r.status_code == 201, r.text
    return dict(r.json())


def pay_code(api: Api, merchant: str, fen: int = 1_234) -> str:
    """A custodial payer pays a new bill of ``merchant``; returns the code's id."""
    payer = api.new_wallet(tier=2, name="payer")
    assert api.post("operator", "/v1/issuance", {"to": payer, "amount_fen": 100_000}).status_code == 200
    body = {"merchant": merchant, "amount_fen": fen, "reference": f"bill-{uuid.uuid4().hex[:8]}"}
    code = api.operator.post("/v1/payment-codes", json=body)
    assert code.status_code == 201, code.text
    r = api.post(
        "operator", f"/v1/payment-codes/{code.json()['id']}/pay", {"form": "custodial", "payer": payer}
    )
    assert r.status_code == 200, r.text
    return str(code.json()["id"])


def deliveries(client: httpx.Client, endpoint_id: int, **params: Any) -> list[dict[str, Any]]:
    r = client.get(f"/v1/webhooks/{endpoint_id}/deliveries", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


# -- tests ------------------------------------------------------------------------------------


def test_a_paid_code_is_delivered_signed_and_listed_with_its_attempt(
    stack: Stack, receiver: Receiver
) -> None:
    with stack.serve() as api:
        shop = stack.wallets["shop_a"]
        hook = register(api.operator, receiver.url)
        assert hook["secret"].startswith("whsec_") and hook["wallet"] is None
        assert "secret" not in api.operator.get(f"/v1/webhooks/{hook['id']}").json()  # shown once

        code_id = pay_code(api, shop)
        until(lambda: receiver.got, "the delivery")
        headers, body = receiver.got[0]
        assert verify(hook["secret"], headers["x-xcpay-signature"], body)
        assert not verify(hook["secret"], headers["x-xcpay-signature"], body.replace(b"1234", b"1235"))
        assert not verify("whsec_another", headers["x-xcpay-signature"], body)
        event = json.loads(body)
        assert event["type"] == headers["x-xcpay-event"] == "payment_code.paid"
        data = event["data"]
        assert (data["code_id"], data["merchant"], data["amount_fen"], data["form"]) == (
            code_id,
            shop,
            1_234,
            "custodial",
        )
        assert data["reference"].startswith("bill-") and data["tx_hash"].startswith("0x")

        [listed] = until(lambda: deliveries(api.operator, hook["id"], status="delivered"), "delivered")
        assert listed["event_id"] == event["id"] == headers["x-xcpay-event-id"]
        assert [a["status_code"] for a in listed["attempt_log"]] == [200] and listed["attempts"] == 1
        assert listed["next_attempt_at"] is None and listed["delivered_at"]
        assert len(receiver.got) == 1


def test_a_receiver_that_is_down_gets_it_after_backoff_when_it_comes_back(stack: Stack) -> None:
    down = Receiver()  # its port is free: connections are refused
    with stack.serve() as api:
        hook = register(api.operator, down.url)
        pay_code(api, stack.wallets["shop_a"])

        def two_failures() -> list[dict[str, Any]] | None:
            [d] = deliveries(api.operator, hook["id"])
            return d if d["attempts"] >= 2 else None

        pending = until(two_failures, "two refused attempts")
        assert pending["status"] == "pending" and pending["last_error"]
        first, second = (a for a in pending["attempt_log"][:2])
        assert first["status_code"] is None and "Connect" in first["error"]
        gap = _seconds(second["at"]) - _seconds(first["at"])
        assert gap >= FAST["webhook_backoff_s"] * 0.9, gap  # it waited, and did not hammer

        down.start()
        try:
            [done] = until(lambda: deliveries(api.operator, hook["id"], status="delivered"), "delivered")
            assert done["attempt_log"][-1]["status_code"] == 200
            assert all(a["status_code"] is None for a in done["attempt_log"][:-1])
            assert len(down.got) == 1
        finally:
            down.stop()


def test_a_failing_receiver_ends_failed_after_the_last_attempt_and_a_replay_delivers_it(
    stack: Stack, receiver: Receiver
) -> None:
    receiver.status = 500
    with stack.serve() as api:
        hook = register(api.operator, receiver.url)
        pay_code(api, stack.wallets["shop_a"])
        [failed] = until(lambda: deliveries(api.operator, hook["id"], status="failed"), "failed")
        assert failed["attempts"] == FAST["webhook_max_attempts"] == len(receiver.got)
        assert [a["status_code"] for a in failed["attempt_log"]] == [500] * 4
        assert failed["last_error"] == "HTTP 500"
        # the backoff doubles up to its cap: 0.3, 0.6, 0.6 s between the four attempts
        times = [_seconds(a["at"]) for a in failed["attempt_log"]]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps[1] >= 0.6 * 0.9 and gaps[0] >= 0.3 * 0.9, gaps

        receiver.status = 200
        r = api.operator.post(f"/v1/webhooks/deliveries/{failed['id']}/replay")
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "pending" and r.json()["attempts"] == 0
        done = until(
            lambda: (
                api.operator.get(f"/v1/webhooks/deliveries/{failed['id']}").json()["status"] == "delivered"
            ),
            "the replay",
        )
        assert done
        d = api.operator.get(f"/v1/webhooks/deliveries/{failed['id']}").json()
        assert [a["status_code"] for a in d["attempt_log"]] == [500, 500, 500, 500, 200]
        bodies = {body for _, body in receiver.got}
        assert len(bodies) == 1  # the same event, byte for byte, each time


def test_nothing_is_lost_across_a_restart_between_the_event_and_its_delivery(stack: Stack) -> None:
    late = Receiver()
    with stack.serve(deliver=False) as api:  # the worker never runs in this life of the service
        hook = register(api.operator, late.url)
        pay_code(api, stack.wallets["shop_a"])
        [queued] = deliveries(api.operator, hook["id"])
        assert queued["status"] == "pending" and queued["attempt_log"] == []
        replay = api.operator.post(f"/v1/webhooks/deliveries/{queued['id']}/replay")
        assert_problem(replay, 409, "delivery-pending")
    # stopped: the outbox row is all that is left of the event
    late.start()
    try:
        with stack.serve() as api:
            [done] = until(lambda: deliveries(api.operator, hook["id"], status="delivered"), "delivered")
            assert done["id"] == queued["id"] and len(late.got) == 1
            assert json.loads(late.got[0][1])["id"] == queued["event_id"]
    finally:
        late.stop()


def test_a_merchant_key_sees_only_its_own_endpoints_and_its_wallets_events(
    stack: Stack, receiver: Receiver
) -> None:
    with stack.serve() as api:
        mine = register(api.shop_a, receiver.url)
        assert mine["wallet"] == stack.wallets["shop_a"]
        everything = register(api.operator, receiver.url)
        pay_code(api, stack.wallets["shop_b"])  # not shop A's
        pay_code(api, stack.wallets["shop_a"])
        until(lambda: len(deliveries(api.operator, everything["id"], status="delivered")) == 2, "two")
        [own] = until(lambda: deliveries(api.shop_a, mine["id"], status="delivered"), "shop A's one")
        assert own["payload"]["merchant"] == stack.wallets["shop_a"]
        assert len(deliveries(api.shop_a, mine["id"])) == 1

        # another key's endpoint and deliveries: 403; a missing one: 404
        assert_problem(api.shop_b.get(f"/v1/webhooks/{mine['id']}"), 403, "not-yours")
        assert_problem(api.shop_b.get(f"/v1/webhooks/{mine['id']}/deliveries"), 403, "not-yours")
        assert_problem(api.shop_b.get(f"/v1/webhooks/deliveries/{own['id']}"), 403, "not-yours")
        assert_problem(api.shop_b.post(f"/v1/webhooks/deliveries/{own['id']}/replay"), 403, "not-yours")
        assert_problem(api.operator.get(f"/v1/webhooks/{mine['id']}"), 403, "not-yours")
        assert_problem(api.shop_b.get("/v1/webhooks/999999"), 404, "webhook-not-found")
        assert_problem(api.shop_b.get("/v1/webhooks/deliveries/999999"), 404, "delivery-not-found")
        assert [h["id"] for h in api.shop_b.get("/v1/webhooks").json()["items"]] == []
        assert mine["id"] in [h["id"] for h in api.shop_a.get("/v1/webhooks").json()["items"]]
        assert everything["id"] not in [h["id"] for h in api.shop_a.get("/v1/webhooks").json()["items"]]

        # a merchant key may not subscribe to the system's events; the admin key to none
        body = {"url": receiver.url, "events": ["reconciliation.verdict_changed"]}
        assert_problem(api.shop_a.post("/v1/webhooks", json=body), 403, "forbidden-event")
        assert_problem(api.admin.post("/v1/webhooks", json=body), 403, "forbidden-role")

        # removed: no new deliveries; its listing stays
        assert api.shop_a.delete(f"/v1/webhooks/{mine['id']}").json()["active"] is False
        pay_code(api, stack.wallets["shop_a"])
        until(lambda: len(deliveries(api.operator, everything["id"], status="delivered")) == 3, "three")
        assert len(deliveries(api.shop_a, mine["id"])) == 1
        assert_problem(api.shop_a.post(f"/v1/webhooks/deliveries/{own['id']}/replay"), 409, "webhook-removed")


def test_a_rotated_key_keeps_its_endpoints_and_a_revoked_ones_receive_nothing(
    stack: Stack, receiver: Receiver
) -> None:
    with stack.serve() as api:
        key = api.admin.post("/v1/api-keys", json={"role": "auditor"}).json()
        auditor = httpx.Client(base_url=api.url, headers={"X-API-Key": key["key"]}, timeout=60)
        hook = register(auditor, receiver.url)
        rotated = auditor.post(f"/v1/api-keys/{key['id']}/rotate").json()
        auditor = httpx.Client(base_url=api.url, headers={"X-API-Key": rotated["key"]}, timeout=60)
        assert auditor.get(f"/v1/webhooks/{hook['id']}").status_code == 200
        assert api.admin.post(f"/v1/api-keys/{rotated['id']}/revoke").status_code == 200
        pay_code(api, stack.wallets["shop_a"])
        with api.app.state.ctx.db.session() as s:
            queued = s.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == hook["id"])).all()
        assert queued == []


@pytest.mark.parametrize(
    ("url", "slug"),
    [
        ("ftp://127.0.0.1/x", "invalid-webhook-url"),
        ("file:///etc/passwd", "invalid-webhook-url"),
        ("http://user:pw@127.0.0.1/x", "invalid-webhook-url"),
        ("http://127.0.0.1:99999/x", "invalid-webhook-url"),
        ("http:///x", "invalid-webhook-url"),
        ("http://169.254.169.254/latest/meta-data", "webhook-host-not-allowed"),
        ("https://example.org/hook", "webhook-host-not-allowed"),
        ("http://127.0.0.1\t:9911/", "invalid-webhook-url"),  # red team: accepted, never sendable
        ("http://127.0.0.1/a b", "invalid-webhook-url"),
        ("http://127.0.0.1/x\x7f", "invalid-webhook-url"),
        ("http://127.0.0.1/x\n", "invalid-webhook-url"),
    ],
)
def test_a_bad_url_is_a_422(stack: Stack, url: str, slug: str) -> None:
    with stack.serve(deliver=False) as api:
        assert_problem(
            api.operator.post("/v1/webhooks", json={"url": url, "events": ["card.blocked"]}), 422, slug
        )


def test_bad_events_and_bodies_are_422(stack: Stack) -> None:
    with stack.serve(deliver=False) as api:
        url = "http://localhost:9/hooks"
        for body in (
            {"url": url, "events": ["payment.paid"]},
            {"url": url, "events": []},
            {"url": url},
            {"url": url, "events": ["card.blocked"], "extra": 1},
        ):
            assert_problem(api.operator.post("/v1/webhooks", json=body), 422, "invalid-request")
        assert_problem(api.operator.get("/v1/webhooks", params={"cursor": "nonsense"}), 422, "invalid-cursor")
        assert register(api.operator, "http://[::1]:9/x", "card.blocked")["url"] == "http://[::1]:9/x"


def test_listings_page_by_cursor(stack: Stack) -> None:
    with stack.serve(deliver=False) as api:
        made = [register(api.regulator, f"http://localhost:9/{i}", "card.blocked")["id"] for i in range(5)]
        seen, cursor = [], None
        while True:
            page = api.regulator.get(
                "/v1/webhooks", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
            )
            assert page.status_code == 200, page.text
            seen += [h["id"] for h in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == made


def test_a_finished_batch_and_its_exceptions_are_events(stack: Stack, receiver: Receiver) -> None:
    with stack.serve() as api:
        hook = register(api.operator, receiver.url, "disbursement.finished", "disbursement.exception")
        employer = api.new_wallet(kind="institution", tier=1, name="employer")
        assert (
            api.post("operator", "/v1/issuance", {"to": employer, "amount_fen": 1_000_000}).status_code == 200
        )
        checker_wallet = api.new_wallet(tier=2, name="checker")
        body = {"role": "checker", "wallet": checker_wallet}
        checker_key = api.admin.post("/v1/api-keys", json=body).json()["key"]
        checker = httpx.Client(base_url=api.url, headers={"X-API-Key": checker_key}, timeout=60)
        officer = {"account": checker_wallet, "role": "checker"}
        assert (
            api.post("operator", f"/v1/disbursements/payers/{employer}/officers", officer).status_code == 200
        )
        worker = api.new_wallet(tier=2, name="worker")
        stranger = Account.create().address  # not registered: a payout exception
        now = int(api.w3.eth.get_block("latest")["timestamp"])
        ref = f"payroll-{uuid.uuid4().hex[:8]}"
        batch = {
            "reference": ref,
            "payer": employer,
            "purpose": "salary",
            "mode": "explicit",
            "ends_at": datetime.fromtimestamp(now + 30 * 86_400, UTC).isoformat(),
            "unit": "fen",
            "rows": [{"recipient": worker, "amount": 500}, {"recipient": stranger, "amount": 300}],
        }
        r = api.post("operator", "/v1/disbursements", batch)
        assert r.status_code == 201, r.text
        r = checker.post(f"/v1/disbursements/{ref}/approve", headers={"Idempotency-Key": str(uuid.uuid4())})
        assert r.status_code == 200, r.text
        assert api.operator.post(f"/v1/disbursements/{ref}/execute", json={"push": "all"}).status_code == 202

        def both() -> dict[str, dict[str, Any]] | None:
            got = {d["event_type"]: d for d in deliveries(api.operator, hook["id"], status="delivered")}
            return got if len(got) == 2 else None

        got = until(both, "the batch's two events")
        assert got["disbursement.exception"]["payload"]["rows"] == [
            {"index": 1, "recipient": stranger, "amount_fen": 300}
        ]
        finished = got["disbursement.finished"]["payload"]
        assert (finished["ref"], finished["payer"], finished["paid"], finished["exceptions"]) == (
            ref,
            employer,
            1,
            1,
        )
        # executing again finds nothing new: no second event
        assert api.operator.post(f"/v1/disbursements/{ref}/execute", json={"push": "all"}).status_code in (
            202,
            409,
        )
        time.sleep(0.5)
        assert len(deliveries(api.operator, hook["id"])) == 2


def test_a_changed_reconciliation_verdict_is_an_event_and_an_unchanged_one_is_not(stack: Stack) -> None:
    with stack.serve(deliver=False) as api:
        hook = register(api.auditor, "http://localhost:9/recon", "reconciliation.verdict_changed")
        r = api.auditor.get("/v1/audit/reconciliation")
        assert r.status_code == 200 and r.json()["verdict"] == "clean", r.text
        assert deliveries(api.auditor, hook["id"]) == []  # clean, as before: nothing changed
        db = Database(stack.db_url)
        try:
            report = {
                "verdict": "discrepancies",
                "discrepancies": [{"kind": "supply-mismatch"}],
                "to_block": 9,
            }
            webhooks.note_verdict(db, report)
            webhooks.note_verdict(db, report)  # the same verdict again: no event
            webhooks.note_verdict(db, {"verdict": "clean", "discrepancies": []})
        finally:
            db.dispose()
        got = [d["payload"] for d in deliveries(api.auditor, hook["id"])]
        assert [(p["previous"], p["verdict"], p["discrepancies"]) for p in got] == [
            ("clean", "discrepancies", 1),
            ("discrepancies", "clean", 0),
        ]
        assert got[0]["kinds"] == ["supply-mismatch"]


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_a_closed_voucher_programme_is_an_event_once(stack: Stack, receiver: Receiver) -> None:
    """Last in the module: it moves the chain's clock."""
    with stack.serve() as api:
        hook = register(api.regulator, receiver.url, "voucher.programme_closed")
        issuer = api.new_wallet(kind="institution", tier=1, name="commerce office")
        assert api.post("operator", "/v1/issuance", {"to": issuer, "amount_fen": 100_000}).status_code == 200
        now = int(api.w3.eth.get_block("latest")["timestamp"])
        body = {
            "issuer": issuer,
            "name": "spring vouchers",
            "mode": "grant-list",
            "budget_fen": 50_000,
            "per_person_cap_fen": 10_000,
            "starts_at": datetime.fromtimestamp(now - 60, UTC).isoformat(),
            "expires_at": datetime.fromtimestamp(now + 2 * 86_400, UTC).isoformat(),
            "categories": [5812],
        }
        r = api.post("operator", "/v1/voucher-programs", body)
        assert r.status_code == 201, r.text
        (created,) = [e for e in r.json()["result"]["events"] if e["name"] == "ProgrammeCreated"]
        pid = int(created["args"]["id"])
        devtools.increase_time(api.w3, 3 * 86_400)
        assert api.post("operator", f"/v1/voucher-programs/{pid}/close").status_code == 200
        assert_problem(api.post("operator", f"/v1/voucher-programs/{pid}/close"), 409, "nothing-to-return")
        [done] = until(lambda: deliveries(api.regulator, hook["id"], status="delivered"), "delivered")
        data = done["payload"]
        assert (data["programme_id"], data["issuer"], data["returned_budget_fen"]) == (pid, issuer, 50_000)
        assert len(deliveries(api.regulator, hook["id"])) == 1 and len(receiver.got) == 1


def test_a_delivery_that_cannot_even_be_sent_backs_off_and_ends_failed(
    stack: Stack, receiver: Receiver
) -> None:
    """An endpoint whose stored URL httpx refuses to send to (one registered before URLs were
    checked for control characters) counts each try as a failed attempt: no delivery stays
    pending forever with an error logged every round."""
    from services.common.models import WebhookEndpoint

    with stack.serve() as api:
        hook = register(api.operator, receiver.url)
        with api.app.state.ctx.db.session() as s:
            row = s.get(WebhookEndpoint, hook["id"])
            row.url = receiver.url.replace("127.0.0.1", "127.0.0.1\t")
            s.commit()
        pay_code(api, stack.wallets["shop_a"])
        [failed] = until(lambda: deliveries(api.operator, hook["id"], status="failed"), "failed")
        assert failed["attempts"] == FAST["webhook_max_attempts"]
        assert "InvalidURL" in failed["last_error"]
        assert receiver.got == []
