"""Top-ups and redemptions through the bank with the operator service killed between the bank leg
and the chain leg, in both orders (issue 24): a top-up killed after the bank debited the account
and before anything was minted; a redemption killed after the burn and before the bank credited
the account. Each time the restarted service's reconciler finishes the transfer, exactly once: the
bank journal and the chain agree, and the caller's retry with the same Idempotency-Key gets the same
transfer. (A chain leg killed around its send is the operations' own case: test_operator_processes.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from chain.processes import anvil_cmd, free_port, running, wait_for_rpc
from tests.e2e.test_operator_processes import Client, deploy, operator_service, service_env

pytestmark = pytest.mark.slow


def _crash(env: dict[str, str], fault: str, api: Client, path: str, body: dict, key: str) -> None:
    with operator_service({**env, "XCPAY_FAULT": fault}) as proc:
        with pytest.raises(httpx.HTTPError):
            api.post("operator", path, body, key=key)
        assert proc.wait(timeout=30) == 97  # died at the fail point


def _account(api: Client, account: int) -> int:
    r = api.get("operator", f"/v1/bank/accounts/{account}")
    assert r.status_code == 200, r.text
    return int(r.json()["balance_fen"])


def test_killed_between_the_legs_the_transfer_finishes_exactly_once(tmp_path: Path) -> None:
    port, api_port = free_port(), free_port()
    rpc = f"http://127.0.0.1:{port}"
    with running(anvil_cmd(port)) as node:
        wait_for_rpc(rpc, node)
        deploy(rpc, tmp_path)
        env = service_env(tmp_path, rpc, api_port)
        api = Client(f"http://127.0.0.1:{api_port}")
        with operator_service(env):
            wallet = api.wallet()
            opened = httpx.post(
                f"{api.url}/v1/bank/accounts",
                json={"number": "6222020200012345678", "holder": "Mei", "opening_balance_fen": 1_000_00},
                headers={"X-API-Key": api.key("operator")},
            )
            assert opened.status_code == 201, opened.text
            account = opened.json()["id"]
            r = httpx.post(
                f"{api.url}/v1/wallets/{wallet}/bank-links",
                json={"account_id": account},
                headers={"X-API-Key": api.key("operator")},
            )
            assert r.status_code == 201, r.text
            api.key("auditor")
        body = {"wallet": wallet, "account_id": account, "amount_fen": 300_00}

        # 1. top-up: the bank debited the account, nothing was minted, the process died
        _crash(env, "after_bank_leg:banking.topup", api, "/v1/bank/top-ups", body, "top-crash")
        with operator_service(env):  # the reconciler runs on start
            r = api.post("operator", "/v1/bank/top-ups", body, key="top-crash")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "completed"
            assert (api.balance(wallet), _account(api, account)) == (300_00, 700_00)

        # 2. redemption: the chain burnt, the bank did not credit, the process died
        red = {**body, "amount_fen": 100_00}
        _crash(env, "after_chain_leg:banking.redeem", api, "/v1/bank/redemptions", red, "red-crash")
        with operator_service(env):
            r = api.post("operator", "/v1/bank/redemptions", red, key="red-crash")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "completed"
            assert (api.balance(wallet), _account(api, account)) == (200_00, 800_00)
            # the bank's side and the chain's side of institution #1 agree, nothing twice
            statement = api.get("operator", "/v1/institutions/1/statement").json()
            assert statement["totals"]["issued_fen"] == 300_00
            assert statement["totals"]["redeemed_fen"] == 100_00
            clearing = sum(
                line["amount_fen"] for line in statement["journal"] if line["account"] == "ISSUANCE-1"
            )
            assert clearing == 300_00 - 100_00
            assert api.get("auditor", "/v1/audit/reconciliation").json()["verdict"] == "clean"
