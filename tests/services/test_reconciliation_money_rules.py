"""The auditor's reconciliation names money-rule breaches produced on chain, where today's contracts
still let them through: a frozen card holder's payment settled from the card's reserve, a frozen
prepaid consumer's sessions consumed, a card payment settled to a personal wallet. Once the
contracts refuse such a payment (issue 17's one payment policy), there is nothing to name, and each
test then checks that the refusal left the reconciliation free of it; either way the report never
stays silent about a breach the chain holds.

Its own module (its own chain and database): these breaches stay on chain for good, which the exact
discrepancy lists of tests/services/test_reconciliation.py must not see. Real chain, real database
(SQLite and PostgreSQL), real HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain.accounts import dev_account
from chain.clients.hardwallet import CardForm, Outcome
from chain.exceptions import ContractError
from tests.services.conftest import Api
from tests.services.test_reconciliation import reconciliation


def _self_custody(api: Api, fen: int) -> LocalAccount:
    ctx = api.app.state.ctx
    account = Account.create()
    body = {
        "kind": "personal",
        "tier": 2,
        "display_name": "card holder",
        "identity": f"h-{uuid.uuid4()}",
        "custody": "self",
        "address": account.address,
    }
    assert api.post("operator", "/v1/wallets", body).status_code == 201
    assert api.post("operator", "/v1/issuance", {"to": account.address, "amount_fen": fen}).status_code == 200
    ctx.tx.send_value(ctx.operator, account.address, 10**17)  # gas
    return account


@pytest.fixture(scope="module")
def world(api: Api) -> dict[str, Any]:
    """A canteen, a keeper (an outside account the deployer made a card registrar; it also uploads
    card payments, as anyone may), and a self-custody holder whose card holds 5,000 fen: nothing
    here is sent by a key the service holds, so each breach below is the report's only finding."""
    from wallets.hardwallet import HardWallet

    ctx = api.app.state.ctx
    canteen = api.new_wallet(kind="merchant", tier=2, category=5812, name="canteen")
    keeper = Account.create()
    ctx.tx.send_value(ctx.operator, keeper.address, 10**17)
    settlement = ctx.hardwallet.contract
    role = settlement.functions.OPERATOR_ROLE().call()
    ctx.tx.transact(dev_account(0), settlement.functions.grantRole(role, keeper.address))
    settler = settlement.functions.SETTLER_ROLE().call()
    ctx.tx.transact(dev_account(0), settlement.functions.grantRole(settler, keeper.address))
    holder = _self_custody(api, 10_000)
    card = HardWallet.issue(ctx.hardwallet.domain)
    ctx.hardwallet.register_card(keeper, card.address, holder.address, CardForm.CARD)
    ctx.hardwallet.load(holder, card.address, 5_000)
    card.credit(5_000)
    assert reconciliation(api)["verdict"] == "clean"
    return {"canteen": canteen, "keeper": keeper, "holder": holder, "card": card}


def _freeze(api: Api, address: str, frozen: bool) -> None:
    r = api.post("regulator", f"/v1/regulator/{'freeze' if frozen else 'unfreeze'}", {"address": address})
    assert r.status_code == 200, r.text


def _named(api: Api, tx_hash: str) -> list[dict[str, Any]]:
    return [d for d in reconciliation(api)["discrepancies"] if d["tx_hash"] == tx_hash]


def _settle(api: Api, world: dict, payee: str, amount: int) -> tuple[str | None, bool]:
    """Upload one card payment: (its transaction, whether it settled)."""
    ctx = api.app.state.ctx
    now = int(api.w3.eth.get_block("latest")["timestamp"])
    signed = world["card"].sign_payment(payee, amount, now)
    try:
        result = ctx.hardwallet.settle(world["keeper"], [signed])
    except ContractError:
        return None, False
    return result.tx.tx_hash, result.outcomes[0].outcome is Outcome.SETTLED


def test_a_card_payment_settled_for_a_frozen_holder_is_named(api: Api, world: dict) -> None:
    holder = world["holder"].address
    _freeze(api, holder, True)
    try:
        tx_hash, settled = _settle(api, world, world["canteen"], 300)
    finally:
        _freeze(api, holder, False)
    found = _named(api, tx_hash) if tx_hash else []
    if not settled:  # the contracts refuse it now: nothing moved, nothing to name
        assert found == []
        return
    assert [d["kind"] for d in found] == ["paid-for-frozen-owner"], found
    assert holder in found[0]["detail"] and "HardWalletSettlement.PaymentSettled" in found[0]["detail"]


def test_a_card_payment_settled_to_a_personal_wallet_is_named(api: Api, world: dict) -> None:
    person = api.new_wallet(tier=2, name="a friend")
    tx_hash, settled = _settle(api, world, person, 200)
    found = _named(api, tx_hash) if tx_hash else []
    if not settled:
        assert found == []
        return
    assert [d["kind"] for d in found] == ["payee-not-a-merchant"], found
    assert person in found[0]["detail"] and "a personal wallet" in found[0]["detail"]


def test_sessions_consumed_for_a_frozen_prepaid_consumer_are_named(api: Api, world: dict) -> None:
    gym = api.new_wallet(kind="merchant", tier=2, category=7997, name="gym")
    enrol = {"merchant": gym, "supervised_bps": 10_000}
    assert api.post("regulator", "/v1/prepaid/merchants", enrol).status_code == 200
    consumer = api.new_wallet(tier=2, name="consumer")
    assert api.post("operator", "/v1/issuance", {"to": consumer, "amount_fen": 50_000}).status_code == 200
    package = {
        "consumer": consumer,
        "merchant": gym,
        "sessions": 4,
        "unit_price_fen": 1_000,
        "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
    }
    r = api.post("operator", "/v1/prepaid/packages", package)
    assert r.status_code == 201, r.text
    (prepaid,) = [e for e in r.json()["result"]["events"] if e["name"] == "PackagePrepaid"]
    _freeze(api, consumer, True)
    try:
        consumed = api.post(
            "operator", f"/v1/prepaid/packages/{prepaid['args']['id']}/consume", {"sessions": 1}
        )
    finally:
        _freeze(api, consumer, False)
    if consumed.status_code != 200:  # the contracts refuse it now
        assert consumed.status_code == 409, consumed.text
        assert reconciliation(api)["verdict"] == "clean"
        return
    found = _named(api, consumed.json()["tx_hash"])
    assert [d["kind"] for d in found] == ["paid-for-frozen-owner"], found
    assert consumer in found[0]["detail"] and "PrepaidEscrow.SessionsConsumed" in found[0]["detail"]


def test_nothing_else_is_named(api: Api, world: dict) -> None:
    """Every finding in this module's chain is one of the breaches above: none is a false alarm."""
    kinds = {d["kind"] for d in reconciliation(api)["discrepancies"]}
    assert kinds <= {"paid-for-frozen-owner", "payee-not-a-merchant"}, kinds
