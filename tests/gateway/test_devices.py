"""Unattended devices through the gateway (issue 23), on both databases: a coffee machine
pre-authorises 10 yuan and completes 6.50, a failed dispense releases, an expired hold is released
by the worker, a recycling bin pays within the daily cap; offline duplicates get the first answer."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from web3 import Web3

from chain import devtools
from chain.clients.token import Kind
from services.gateway.families.devices.service import sweep_expired
from tests.gateway.conftest import OPERATOR, Gateway
from wallets.hardwallet import HardWallet


@dataclass
class Machine:
    merchant: str
    terminal: httpx.Client
    card: HardWallet
    holder: str


@pytest.fixture(scope="module")
def machine(gateway: Gateway) -> Machine:
    """A coffee machine (a terminal of a merchant) and alice's card (custodial, 500 yuan)."""
    merchant = gateway.merchant(5814)
    _, terminal = gateway.terminal(merchant, "coffee machine, lobby")
    holder = gateway.wallet()
    gateway.mint(holder, 500_00)
    card, _ = gateway.card(holder)
    return Machine(merchant, terminal, card, holder)


def _preauth(gateway: Gateway, m: Machine, amount: int = 10_00, key: str | None = None) -> httpx.Response:
    signed = m.card.sign_preauth(m.merchant, amount, gateway.ctx.devices.domain)
    return gateway.post(m.terminal, "/v1/devices/preauths", signed.to_json(), key)


def test_a_coffee_machine_preauthorises_and_completes_with_the_real_amount(
    gateway: Gateway, machine: Machine
) -> None:
    before = gateway.ctx.cash.balance_of(machine.holder)
    r = _preauth(gateway, machine)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["status"], body["authorized_fen"], body["holder"]) == ("open", 10_00, machine.holder)
    assert gateway.ctx.cash.balance_of(machine.holder) == before - 10_00
    r = gateway.post(machine.terminal, f"/v1/devices/preauths/{body['id']}/complete", {"amount_fen": 6_50})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["captured_fen"]) == ("completed", 6_50)
    assert gateway.ctx.cash.balance_of(machine.holder) == before - 6_50
    assert gateway.ctx.cash.balance_of(machine.merchant) >= 6_50
    again = gateway.post(machine.terminal, f"/v1/devices/preauths/{body['id']}/release")
    assert again.status_code == 409 and again.json()["type"] == "urn:xcpay:problem:preauth-not-open", (
        again.text
    )
    assert again.headers["content-type"].startswith("application/problem+json")


def test_a_completion_above_the_maximum_is_refused_and_a_failed_dispense_releases(
    gateway: Gateway, machine: Machine
) -> None:
    before = gateway.ctx.cash.balance_of(machine.holder)
    pid = _preauth(gateway, machine, 8_00).json()["id"]
    r = gateway.post(machine.terminal, f"/v1/devices/preauths/{pid}/complete", {"amount_fen": 8_01})
    assert r.status_code == 422 and r.json()["type"] == "urn:xcpay:problem:completion-above-authorized", (
        r.text
    )
    r = gateway.post(machine.terminal, f"/v1/devices/preauths/{pid}/release")
    assert r.status_code == 200 and r.json()["status"] == "released", r.text
    assert gateway.ctx.cash.balance_of(machine.holder) == before


def test_the_same_card_counter_uploaded_again_gets_its_first_answer(
    gateway: Gateway, machine: Machine
) -> None:
    signed = machine.card.sign_preauth(machine.merchant, 3_00, gateway.ctx.devices.domain)
    first = gateway.post(machine.terminal, "/v1/devices/preauths", signed.to_json())
    again = gateway.post(
        machine.terminal, "/v1/devices/preauths", signed.to_json()
    )  # a new key: offline retry
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json()["replayed"] is True and again.json()["id"] == first.json()["id"]
    assert again.json()["operation_id"] == first.json()["operation_id"]
    gateway.post(machine.terminal, f"/v1/devices/preauths/{first.json()['id']}/release")


def test_an_expired_hold_is_released_by_the_worker(gateway: Gateway, machine: Machine) -> None:
    before = gateway.ctx.cash.balance_of(machine.holder)
    pid = _preauth(gateway, machine, 5_00).json()["id"]
    assert sweep_expired(gateway.ctx, gateway.app.state.ops) == 0
    ttl, _ = gateway.ctx.devices.limits()
    devtools.increase_time(gateway.w3, ttl + 1)
    r = gateway.post(machine.terminal, f"/v1/devices/preauths/{pid}/complete", {"amount_fen": 1_00})
    assert r.status_code == 409 and r.json()["type"] == "urn:xcpay:problem:preauth-expired", r.text
    assert sweep_expired(gateway.ctx, gateway.app.state.ops) == 1
    assert sweep_expired(gateway.ctx, gateway.app.state.ops) == 0  # once
    assert gateway.get(machine.terminal, f"/v1/devices/preauths/{pid}").json()["status"] == "released"
    assert gateway.ctx.cash.balance_of(machine.holder) == before


def test_devices_act_only_for_their_own_merchant(gateway: Gateway, machine: Machine) -> None:
    other = gateway.merchant(5814)
    _, stranger = gateway.terminal(other)
    pid = _preauth(gateway, machine, 2_00).json()["id"]
    r = gateway.post(stranger, f"/v1/devices/preauths/{pid}/complete", {"amount_fen": 1_00})
    assert r.status_code == 403 and r.json()["type"] == "urn:xcpay:problem:not-your-preauth", r.text
    signed = machine.card.sign_preauth(machine.merchant, 1_00, gateway.ctx.devices.domain)
    r = gateway.post(stranger, "/v1/devices/preauths", signed.to_json())
    assert r.status_code == 403 and r.json()["type"] == "urn:xcpay:problem:payment-for-another-merchant", (
        r.text
    )
    gateway.post(machine.terminal, f"/v1/devices/preauths/{pid}/release")


def test_a_recycling_bin_pays_a_person_within_the_daily_cap(gateway: Gateway, machine: Machine) -> None:
    recycler = gateway.merchant(5093)
    _, bin_ = gateway.terminal(recycler, "recycling bin, block 3")
    sponsor = gateway.wallet(Kind.INSTITUTION, 4)
    gateway.mint(sponsor, 100_00)
    r = gateway.post(
        "operator",
        "/v1/devices/programmes",
        {"sponsor": sponsor, "merchant": recycler, "daily_cap_fen": 5_00},
    )
    assert r.status_code == 201, r.text
    pid = r.json()["programme_id"]
    r = gateway.post("operator", f"/v1/devices/programmes/{pid}/fund", {"amount_fen": 50_00})
    assert r.status_code == 200, r.text
    before = gateway.ctx.cash.balance_of(machine.holder)
    drop = {"programme": pid, "to": machine.card.address, "amount_fen": 3_00, "reference": "bin3-0001"}
    first = gateway.post(bin_, "/v1/devices/payouts", drop)
    assert first.status_code == 201, first.text
    assert (first.json()["person"], first.json()["paid_today_fen"]) == (machine.holder, 3_00)
    again = gateway.post(bin_, "/v1/devices/payouts", drop)  # the bin uploads the same drop again
    assert again.status_code == 200 and again.json()["replayed"] is True
    for other in ({"amount_fen": 2_00}, {"to": gateway.wallet()}):  # the same drop on other terms
        r = gateway.post(bin_, "/v1/devices/payouts", {**drop, **other})
        assert r.status_code == 409 and r.json()["type"] == "urn:xcpay:problem:payout-duplicate", r.text
        assert (r.json()["reference"], r.json()["to"], r.json()["amount_fen"]) == (
            "bin3-0001",
            machine.card.address,
            3_00,
        )
    over = gateway.post(bin_, "/v1/devices/payouts", {**drop, "reference": "bin3-0002"})
    assert over.status_code == 422 and over.json()["type"] == "urn:xcpay:problem:daily-cap-exceeded", (
        over.text
    )
    assert gateway.ctx.cash.balance_of(machine.holder) == before + 3_00
    programme = gateway.get("operator", f"/v1/devices/programmes/{pid}").json()
    assert (programme["budget_fen"], programme["paid_fen"]) == (47_00, 3_00)
    r = gateway.post(machine.terminal, "/v1/devices/payouts", {**drop, "reference": "x"})
    assert r.status_code == 403 and r.json()["type"] == "urn:xcpay:problem:not-your-programme", r.text


def test_holds_of_a_recovered_wallet_go_to_its_successor(gateway: Gateway) -> None:
    """Red team F3: frank's wallet is recovered while 8 and 6 yuan are held; the machine still
    completes the first (it delivered) and the worker releases the other after the deadline, both
    to frank's successor, instead of 409 WalletFrozen(lost) and 14 yuan locked for good."""
    merchant = gateway.merchant(5814)
    _, terminal = gateway.terminal(merchant, "vending machine, hall")
    frank = gateway.wallet()
    gateway.mint(frank, 100_00)
    card, _ = gateway.card(frank)
    m = Machine(merchant, terminal, card, frank)
    first, second = (_preauth(gateway, m, amount).json()["id"] for amount in (8_00, 6_00))
    cash = gateway.ctx.cash
    new = Web3.to_checksum_address("0x" + "6f" * 20)
    result = cash.tx.transact(OPERATOR, cash.propose_recovery_call(frank, new, Web3.keccak(text="file 3")))
    rid = int(result.named("RecoveryProposed")[0]["id"])
    cash.tx.transact(gateway.ctx.regulator, cash.approve_recovery_call(rid))
    r = gateway.post(terminal, f"/v1/devices/preauths/{first}/complete", {"amount_fen": 5_00})
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text
    ttl, _ = gateway.ctx.devices.limits()
    devtools.increase_time(gateway.w3, ttl + 1)
    assert sweep_expired(gateway.ctx, gateway.app.state.ops) >= 1
    assert gateway.get(terminal, f"/v1/devices/preauths/{second}").json()["status"] == "released"
    assert cash.balance_of(new) == 100_00 - 5_00
    assert cash.balance_of(merchant) == 5_00


def test_no_new_mandate_or_card_for_a_retired_wallet(gateway: Gateway) -> None:
    """Red team F5: after a recovery the retired wallet gets no new mandate and no new card: 410
    ``wallet-retired`` naming the successor, nothing sent (both were confirmed on chain)."""
    cash = gateway.ctx.cash
    gone = gateway.wallet()
    new = Web3.to_checksum_address("0x" + "7a" * 20)
    result = cash.tx.transact(OPERATOR, cash.propose_recovery_call(gone, new, Web3.keccak(text="file 5")))
    cash.tx.transact(
        gateway.ctx.regulator, cash.approve_recovery_call(int(result.named("RecoveryProposed")[0]["id"]))
    )
    merchant = gateway.merchant(4111)
    mandate = {
        "holder": gone,
        "merchant": merchant,
        "per_payment_cap_fen": 5_000,
        "daily_cap_fen": 8_000,
        "expires_at": gateway.now() + 86_400,
    }
    card = HardWallet.issue(gateway.ctx.hardwallet.domain)
    before = gateway.w3.eth.block_number
    for path, body in (
        ("/v1/mandates", mandate),
        ("/v1/cards", {"card": card.address, "holder": gone, "form": "card"}),
    ):
        r = gateway.post("operator", path, body)
        assert r.status_code == 410 and r.json()["type"] == "urn:xcpay:problem:wallet-retired", r.text
        assert new in r.json()["detail"]
    assert gateway.w3.eth.block_number == before


@pytest.mark.parametrize(
    ("field", "value"),
    [("counter", 2**63), ("counter", "7"), ("max_amount_fen", True), ("max_amount_fen", "1000")],
)
def test_a_preauthorisation_with_an_unstorable_counter_or_a_non_integer_amount_is_a_422(
    gateway: Gateway, machine: Machine, field: str, value: object
) -> None:
    """Red team 8 LOW-1/LOW-3: a counter from 2**63 on answered 500 (the signed 64-bit column),
    and ``true``/``"1000"`` were taken as amounts. Nothing is held either way."""
    before = gateway.ctx.cash.balance_of(machine.holder)
    body = machine.card.sign_preauth(machine.merchant, 1_00, gateway.ctx.devices.domain).to_json()
    body[field] = value
    r = gateway.post(machine.terminal, "/v1/devices/preauths", body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert gateway.ctx.cash.balance_of(machine.holder) == before
