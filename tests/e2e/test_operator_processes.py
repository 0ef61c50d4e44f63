"""The operator as real processes: `make run`'s code path, a node that goes down, a service that
dies between signing, sending and recording. Each test drives the API with an HTTP client."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from chain.backends import http
from chain.paths import PROJECT_ROOT
from chain.processes import anvil_cmd, free_port, running, wait_for_http, wait_for_rpc

pytestmark = pytest.mark.slow

ADMIN = "xcp_e2e_admin_key_0123456789abcdefgh"


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    wait_for_http(f"{url}/healthz", proc, timeout_s)


def wait_run_up(log: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait for `make run`'s "xcpay is up." banner. The operator answering is not enough: the
    banner follows once the gateway answers too, and a test that stopped the stack before then
    found no banner in the log (seen in CI on a loaded machine)."""
    deadline = time.monotonic() + timeout_s
    while "xcpay is up." not in log.read_text(errors="replace"):
        if proc.poll() is not None:
            raise RuntimeError(f"`make run` exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no start-up banner after {timeout_s} s:\n{log.read_text()}")
        time.sleep(0.2)


# `make run` deploys every contract before the services start; on a loaded machine that takes minutes.
RUN_START_S = 300


class Client:
    def __init__(self, url: str, admin_key: str = ADMIN) -> None:
        self.url = url
        self.admin = httpx.Client(base_url=url, headers={"X-API-Key": admin_key}, timeout=60)
        self.keys: dict[str, str] = {}

    def key(self, role: str) -> str:
        if role not in self.keys:
            r = self.admin.post("/v1/api-keys", json={"role": role})
            assert r.status_code == 201, r.text
            self.keys[role] = r.json()["key"]
        return self.keys[role]

    def post(self, role: str, path: str, body: dict | None = None, key: str | None = None) -> httpx.Response:
        headers = {"X-API-Key": self.key(role), "Idempotency-Key": key or str(uuid.uuid4())}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=60)

    def get(self, role: str, path: str, timeout_s: float = 60) -> httpx.Response:
        return httpx.get(self.url + path, headers={"X-API-Key": self.key(role)}, timeout=timeout_s)

    def wallet(self, tier: int = 3) -> str:
        body = {"kind": "personal", "tier": tier, "display_name": "p", "identity": str(uuid.uuid4())}
        r = self.post("operator", "/v1/wallets", body)
        assert r.status_code == 201, r.text
        return str(r.json()["request"]["address"])

    def balance(self, address: str) -> int:
        return int(self.get("auditor", f"/v1/wallets/{address}").json()["balance_fen"])

    def wait_status(self, op_id: str, status: str, timeout_s: float = 60) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            op = self.get("auditor", f"/v1/operations/{op_id}").json()
            if op["status"] == status or time.monotonic() > deadline:
                return op
            time.sleep(0.3)


def service_env(tmp: Path, rpc: str, api_port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XCPAY_")}
    env.update(
        XCPAY_RPC_URL=rpc,
        XCPAY_MANIFEST=str(tmp / "manifest.json"),
        XCPAY_DATABASE_URL=f"sqlite:///{tmp / 'operator.db'}",
        XCPAY_ADMIN_API_KEY=ADMIN,
        XCPAY_API_PORT=str(api_port),
        XCPAY_GATEWAY_PORT=str(free_port()),  # `make run` starts the gateway too; never on 8001 here
        XCPAY_RECONCILE_INTERVAL_S="0.5",
        XCPAY_INDEX_INTERVAL_S="0.5",
        XCPAY_RECEIPT_TIMEOUT_S="10",
        **extra,
    )
    return env


@contextmanager
def operator_service(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with running([sys.executable, "-m", "services.operator", "serve"], env) as proc:
        wait_healthy(f"http://127.0.0.1:{env['XCPAY_API_PORT']}", proc)
        yield proc


def deploy(rpc: str, tmp: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "chain", "deploy", "--rpc", rpc, "--out", str(tmp / "manifest.json")],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    )


@pytest.mark.long
def test_make_run_serves_the_operator_api_end_to_end(tmp_path: Path) -> None:
    """`make run` with a configured admin key. Kept for `make audit`: every check here is also made
    by the first start of test_make_run_restarts_with_the_chain_the_database_and_the_keys (in `make
    test`), and the configured key is how every other process test here starts the service."""
    node_port, api_port = free_port(), free_port()
    env = service_env(
        tmp_path, "", api_port, XCPAY_NODE_PORT=str(node_port), XCPAY_NODE_STATE=str(tmp_path / "chain.json")
    )
    del env["XCPAY_RPC_URL"]
    proc = subprocess.Popen(
        [sys.executable, "scripts/run.py"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{api_port}"
        wait_healthy(url, proc, RUN_START_S)
        api = Client(url)
        health = httpx.get(f"{url}/healthz").json()
        assert health["chain"]["reachable"] and "DigitalCash" in health["contracts"]
        alice, bob = api.wallet(), api.wallet()
        assert api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 10_000}).status_code == 200
        assert (
            api.post("operator", "/v1/transfers", {"from": alice, "to": bob, "amount_fen": 2_500}).status_code
            == 200
        )
        assert (api.balance(alice), api.balance(bob)) == (7_500, 2_500)
        events = api.get("auditor", "/v1/audit/events?name=Issued").json()
        assert events["total"] == 1 and events["items"][0]["args"]["amount"] == 10_000
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    text = out.decode()
    assert proc.returncode == 0, text
    assert f"operator API    http://127.0.0.1:{api_port}" in text and "JSON-RPC node" in text
    # a one-time sign-in link of the dashboard (tests/services/test_dashboard.py spends such links)
    assert f"sign in once    http://127.0.0.1:{api_port}/dashboard/login?token=xcl_" in text, text


def test_node_down_gives_503_and_the_reconciler_finishes_the_operation(tmp_path: Path) -> None:
    port, api_port = free_port(), free_port()
    rpc = f"http://127.0.0.1:{port}"
    anvil = anvil_cmd(port, state=tmp_path / "anvil")
    env = service_env(tmp_path, rpc, api_port)
    with running(anvil) as node:
        wait_for_rpc(rpc, node)
        deploy(rpc, tmp_path)
        with operator_service(env):
            api = Client(f"http://127.0.0.1:{api_port}")
            alice = api.wallet()
            api.key("auditor")
            node.send_signal(signal.SIGTERM)  # anvil writes its state and exits
            node.wait(timeout=30)

            r = api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 321}, key="down-1")
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            problem = r.json()
            assert problem["type"] == "urn:xcpay:problem:node-unavailable"
            op_id = problem["operation_id"]
            assert api.get("auditor", f"/v1/operations/{op_id}").json()["status"] == "pending"

            with running(anvil) as node_again:  # the same chain comes back
                wait_for_rpc(rpc, node_again)
                op = api.wait_status(op_id, "confirmed")
                assert op["status"] == "confirmed", op
                assert api.balance(alice) == 321
                # The caller retries with the same key: the same operation, nothing moves again.
                again = api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 321}, key="down-1")
                assert again.status_code == 200 and again.json()["id"] == op_id
                assert api.balance(alice) == 321


@pytest.mark.parametrize("fail_point", ["after_send", "before_send"])
def test_service_killed_around_send_finishes_once_after_restart(tmp_path: Path, fail_point: str) -> None:
    port, api_port = free_port(), free_port()
    rpc = f"http://127.0.0.1:{port}"
    with running(anvil_cmd(port)) as node:
        wait_for_rpc(rpc, node)
        deploy(rpc, tmp_path)
        env = service_env(tmp_path, rpc, api_port)
        with operator_service(env):
            api = Client(f"http://127.0.0.1:{api_port}")
            alice = api.wallet()
            for role in ("operator", "auditor"):
                api.key(role)

        crashing = dict(env, XCPAY_FAULT=f"{fail_point}:cash.issue")
        with operator_service(crashing) as proc:
            with pytest.raises(httpx.HTTPError):
                api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 777}, key="crash-1")
            assert proc.wait(timeout=30) == 97  # died at the fail point

        with operator_service(env):  # restart: the reconciler runs before serving
            r = api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 777}, key="crash-1")
            assert r.status_code == 200, r.text
            op = r.json()
            assert op["status"] == "confirmed"
            assert api.balance(alice) == 777  # moved exactly once
            issued = api.get("auditor", "/v1/audit/events?name=Issued").json()
            assert [e["tx_hash"] for e in issued["items"]] == [op["tx_hash"]]


def test_service_refuses_a_database_of_another_chain(tmp_path: Path) -> None:
    api_port = free_port()
    for attempt in range(2):
        port = free_port()
        rpc = f"http://127.0.0.1:{port}"
        with running(anvil_cmd(port)) as node:  # a new chain each time: another genesis
            wait_for_rpc(rpc, node)
            deploy(rpc, tmp_path)
            env = service_env(tmp_path, rpc, api_port)
            if attempt == 0:
                with operator_service(env):
                    pass
            else:
                done = subprocess.run(
                    [sys.executable, "-m", "services.operator", "serve"],
                    cwd=PROJECT_ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert done.returncode != 0
                assert "belongs to chain" in done.stderr


def test_make_run_restarts_with_the_chain_the_database_and_the_keys(tmp_path: Path) -> None:
    """`make run` twice on its own node: the second start loads the chain the first one saved, reuses
    the contracts, keeps the records, the API keys and the custodial wallets' keys; the bootstrap
    admin key is printed once, when it is created."""
    node_port, api_port = free_port(), free_port()
    env = service_env(
        tmp_path, "", api_port, XCPAY_NODE_PORT=str(node_port), XCPAY_NODE_STATE=str(tmp_path / "chain.json")
    )
    del env["XCPAY_RPC_URL"], env["XCPAY_ADMIN_API_KEY"]
    url = f"http://127.0.0.1:{api_port}"

    def run_once(log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "scripts/run.py"],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_run_up(log, proc, RUN_START_S)
        except BaseException:
            proc.send_signal(signal.SIGINT)  # never leave a stack behind
            proc.wait(timeout=120)
            raise
        return proc

    def stop_run(proc: subprocess.Popen[bytes], log: Path) -> str:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        text = log.read_text()
        assert proc.returncode == 0, text
        return text

    first = run_once(tmp_path / "first.log")
    try:
        (admin_key,) = re.findall(
            r"bootstrap admin API key \(shown once, stored hashed\): (\S+)",
            (tmp_path / "first.log").read_text(),
        )
        api = Client(url, admin_key)
        health = httpx.get(f"{url}/healthz").json()
        assert health["chain"]["reachable"] and "DigitalCash" in health["contracts"]
        contracts = health["contracts"]
        alice, bob = api.wallet(), api.wallet()
        assert api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 1_000}).status_code == 200
        r = api.post("operator", "/v1/transfers", {"from": alice, "to": bob, "amount_fen": 100})
        assert r.status_code == 200, r.text
        assert (api.balance(alice), api.balance(bob)) == (900, 100)
        events = api.get("auditor", "/v1/audit/events?name=Issued").json()
        assert events["total"] == 1 and events["items"][0]["args"]["amount"] == 1_000
    finally:
        out = stop_run(first, tmp_path / "first.log")
    assert "deployed on chain 31337" in out and "a new chain" in out and "chain saved to" in out
    assert f"operator API    http://127.0.0.1:{api_port}" in out and "JSON-RPC node" in out
    # a one-time sign-in link of the dashboard (tests/services/test_dashboard.py spends such links)
    assert f"sign in once    http://127.0.0.1:{api_port}/dashboard/login?token=xcl_" in out, out

    second = run_once(tmp_path / "second.log")
    try:
        assert httpx.get(f"{url}/healthz").json()["contracts"] == contracts  # reused, not redeployed
        assert api.balance(alice) == 900  # the chain and the API keys created before the restart
        r = api.post("operator", "/v1/transfers", {"from": alice, "to": bob, "amount_fen": 400})
        assert r.status_code == 200, r.text  # alice's custodial key survived too
        assert api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 1}).status_code == 200
        assert (api.balance(alice), api.balance(bob)) == (501, 500)
    finally:
        out = stop_run(second, tmp_path / "second.log")
    assert "reused on chain 31337" in out and "loading the chain" in out
    assert "bootstrap admin API key" not in out


def test_service_on_a_node_that_mines_on_a_clock_waits_for_confirmations(tmp_path: Path) -> None:
    """No reliance on eth-tester's instant mining: anvil mines a block a second, the service
    waits for the receipt and for XCPAY_CONFIRMATIONS blocks on top of it."""
    port, api_port = free_port(), free_port()
    rpc = f"http://127.0.0.1:{port}"
    with running(anvil_cmd(port)) as node:
        wait_for_rpc(rpc, node)
        deploy(rpc, tmp_path)  # mined at once: a deployment on a 1 s clock took a minute
        for method, params in (("evm_setAutomine", [False]), ("evm_setIntervalMining", [1])):
            answer = httpx.post(rpc, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
            assert "error" not in answer.json(), answer.text
        start = http(rpc).eth.block_number
        time.sleep(2.5)
        assert 2 <= http(rpc).eth.block_number - start <= 3, "anvil is not mining on a 1 s clock"
        env = service_env(tmp_path, rpc, api_port, XCPAY_CONFIRMATIONS="2")
        with operator_service(env):
            api = Client(f"http://127.0.0.1:{api_port}")
            alice = api.wallet()
            r = api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 5})
            assert r.status_code == 200, r.text
            op = r.json()
            assert http(rpc).eth.block_number >= op["block_number"] + 2
            assert api.balance(alice) == 5
