"""Error bodies say what was refused and never echo node internals: a node's refusal of a
transaction carried the raw sender bytes and gas figures (py-evm: "Sender b'\\x..' cannot afford
txn gas 18375000021000 with account balance 0"), and an unreachable node its address and port."""

from __future__ import annotations

import re

import pytest
from eth_account import Account
from eth_utils.exceptions import ValidationError
from fastapi.testclient import TestClient

from chain.backends import in_process
from services.common.problems import node_refusal
from services.operator.app import create_app
from tests.processes import free_port
from tests.services.conftest import Api

INTERNALS = re.compile(r"b'\\x|\d{5,}|0x[0-9a-fA-F]{40}|127\.0\.0\.1|:\d{4,5}\b")


def _unfunded_send_refusal() -> ValidationError:
    """The real refusal of the embedded node (py-evm) for a sender without gas money."""
    w3 = in_process()
    a = Account.create()
    tx = {"to": a.address, "value": 1, "gas": 21_000, "gasPrice": 10**10, "nonce": 0}
    tx["chainId"] = w3.eth.chain_id
    with pytest.raises(ValidationError) as info:
        w3.eth.send_raw_transaction(a.sign_transaction(tx).raw_transaction)
    return info.value


def test_a_nodes_refusal_becomes_a_plain_reason_without_its_bytes_and_figures() -> None:
    exc = _unfunded_send_refusal()
    assert "cannot afford" in str(exc) and INTERNALS.search(str(exc))  # what the body echoed before
    detail = node_refusal(exc)
    assert detail == "the node refused the transaction: the sender cannot pay for the gas"
    assert not INTERNALS.search(detail)


@pytest.mark.parametrize(
    ("message", "meaning"),
    [
        ("nonce too low: next nonce 7, tx nonce 3", "its nonce is used already"),
        ("insufficient funds for gas * price + value: address 0xab have 0 want 21000", "cannot pay"),
        ("transaction underpriced: tip needed 1, tip permitted 0", "its fee is too low"),
        ("intrinsic gas too low: have 20000, want 21000", "gas limit"),
        ("something else entirely 123456789", "the node refused the transaction"),
    ],
)
def test_the_words_of_other_nodes_too(message: str, meaning: str) -> None:
    detail = node_refusal(ValueError(message))
    assert meaning in detail and not INTERNALS.search(detail)


def test_an_unreachable_node_is_a_503_that_does_not_say_where_the_node_is(api: Api) -> None:
    settings = api.app.state.ctx.settings.model_copy(update={"rpc_url": f"http://127.0.0.1:{free_port()}"})
    app = create_app(settings, background=False)  # no lifespan: it would refuse a node it cannot reach
    auditor = api.clients["auditor"].headers["X-API-Key"]
    r = TestClient(app).get("/v1/wallets/0x" + "00" * 19 + "01", headers={"X-API-Key": auditor})
    assert r.status_code == 503 and r.json()["type"] == "urn:xcpay:problem:node-unavailable", r.text
    assert not INTERNALS.search(r.json()["detail"]), r.text
    assert r.json()["request_id"] == r.headers["x-request-id"]
