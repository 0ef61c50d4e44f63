"""Cards (issue, load, read) and door access (challenge, allow/deny, the decision log)."""

from __future__ import annotations

import time
import uuid

import httpx

from chain.accounts import GATEWAY_DEV_ACCOUNT, dev_account
from chain.clients.hardwallet import CardForm
from tests.gateway.conftest import OPERATOR, Gateway
from wallets.hardwallet import HardWallet


class Door:
    def __init__(self, gw: Gateway) -> None:
        r = gw.post("operator", "/v1/access-points", {"name": "north gate", "location": "plant 2"})
        assert r.status_code == 201, r.text
        self.id = r.json()["id"]
        self.reader: httpx.Client = gw.client(r.json()["key"])
        self.gw = gw

    def grant(self, **entry: str) -> dict:
        r = self.gw.post("operator", f"/v1/access-points/{self.id}/grants", entry)
        assert r.status_code == 201, r.text
        return r.json()

    def challenge(self) -> str:
        r = self.reader.post("/v1/access/challenges")
        assert r.status_code == 201, r.text
        return str(r.json()["challenge"])

    def present(
        self, card: HardWallet, challenge: str | None = None, signer: HardWallet | None = None
    ) -> dict:
        challenge = challenge or self.challenge()
        signature = (signer or card).sign_challenge(bytes.fromhex(challenge[2:]))
        body = {"card": card.address, "challenge": challenge, "signature": "0x" + signature.hex()}
        r = self.reader.post("/v1/access/decisions", json=body)
        assert r.status_code == 200, r.text
        return r.json()


class TestCards:
    def test_issue_load_and_read(self, gateway: Gateway) -> None:
        card, holder = gateway.card(load=30_000, form=CardForm.WEARABLE)
        r = gateway.get("auditor", f"/v1/cards/{card.address}")
        assert r.status_code == 200, r.text
        info = r.json()
        assert (info["holder"], info["form"], info["status"]) == (holder, "wearable", "active")
        assert (info["reserve_fen"], info["loaded_fen"], info["last_counter_seen"]) == (30_000, 30_000, 0)
        assert info["lost_at"] is None and info["offline_cap_fen"] == 1_000_00
        assert gateway.ctx.cash.balance_of(holder) == 5_000_00 - 30_000

    def test_cards_are_registered_with_the_gateways_own_key(self, gateway: Gateway) -> None:
        """The gateway signs with its key (development account 10), never the operator service's:
        the two services never share a nonce."""
        gw_key, operator = dev_account(GATEWAY_DEV_ACCOUNT).address, OPERATOR.address
        assert gateway.ctx.operator.address == gw_key != operator
        holder = gateway.wallet()
        before = {a: gateway.w3.eth.get_transaction_count(a) for a in (gw_key, operator)}
        card = HardWallet.issue(gateway.ctx.hardwallet.domain)
        r = gateway.post("operator", "/v1/cards", {"card": card.address, "holder": holder, "form": "card"})
        assert r.status_code == 201, r.text
        after = {a: gateway.w3.eth.get_transaction_count(a) for a in (gw_key, operator)}
        assert (after[gw_key] - before[gw_key], after[operator] - before[operator]) == (1, 0)

    def test_issuing_a_card_twice_or_to_a_merchant_is_refused(self, gateway: Gateway) -> None:
        card, holder = gateway.card()
        again = gateway.post("operator", "/v1/cards", {"card": card.address, "holder": holder})
        assert again.status_code == 409 and again.json()["type"].endswith("card-exists")
        other = HardWallet.issue(gateway.ctx.hardwallet.domain)
        r = gateway.post("operator", "/v1/cards", {"card": other.address, "holder": gateway.merchant()})
        assert r.status_code == 422 and r.json()["type"].endswith("invalid-holder")
        assert gateway.get("operator", f"/v1/cards/{other.address}").status_code == 404

    def test_a_card_key_that_is_a_contract_the_holder_or_another_wallet_is_refused(
        self, gateway: Gateway
    ) -> None:
        # Red team (LOW): the contract admits any non-zero card address; these were registered.
        holder = gateway.wallet()
        cases = [
            (holder, "card-is-holder", "硬钱包卡的密钥不能是持有人自己的钱包"),
            (gateway.ctx.cash.token_address, "card-is-contract", "硬钱包卡的密钥不能是合约地址"),
            (gateway.ctx.hardwallet.contract.address, "card-is-contract", "硬钱包卡的密钥不能是合约地址"),
            (gateway.merchant(), "card-is-wallet", "硬钱包卡的密钥不能是已登记的钱包"),
            (gateway.wallet(), "card-is-wallet", "硬钱包卡的密钥不能是已登记的钱包"),
            # red team rt2 (LOW): the service's own signing keys and a precompile were registered
            (
                gateway.ctx.operator.address,
                "card-key-reserved",
                "硬钱包卡的密钥不能是本平台自身的账户或预编译合约地址",
            ),
            (
                "0x" + "0" * 39 + "1",
                "card-key-reserved",
                "硬钱包卡的密钥不能是本平台自身的账户或预编译合约地址",
            ),
        ]
        block = gateway.w3.eth.block_number
        for address, slug, title in cases:
            for lang in ("en", "zh-CN"):
                r = gateway.clients["operator"].post(
                    "/v1/cards",
                    json={"card": address, "holder": holder, "form": "card"},
                    headers={"Idempotency-Key": str(uuid.uuid4()), "Accept-Language": lang},
                )
                assert r.status_code == 422, (address, r.text)
                assert r.json()["type"] == f"urn:xcpay:problem:{slug}", r.text
                assert lang == "en" or r.json()["title"] == title
            assert gateway.get("operator", f"/v1/cards/{address}").status_code == 404
        assert gateway.w3.eth.block_number == block  # nothing sent
        card = HardWallet.issue(gateway.ctx.hardwallet.domain)  # a key of its own still passes
        r = gateway.post("operator", "/v1/cards", {"card": card.address, "holder": holder, "form": "card"})
        assert r.status_code == 201, r.text

    def test_a_load_above_the_reserve_cap_and_of_a_lost_card_is_refused(self, gateway: Gateway) -> None:
        card, holder = gateway.card()
        gateway.mint(holder, 10_000_00)
        r = gateway.post("operator", f"/v1/cards/{card.address}/loads", {"amount_fen": 10_000_01})
        assert r.status_code == 422 and r.json()["type"].endswith("reserve-cap-exceeded")
        assert gateway.post("operator", f"/v1/cards/{card.address}/report-lost").status_code == 200
        r = gateway.post("operator", f"/v1/cards/{card.address}/loads", {"amount_fen": 100})
        assert r.status_code == 409 and r.json()["type"].endswith("card-wrong-status")

    def test_only_readers_read_cards_and_only_the_operator_issues(self, gateway: Gateway) -> None:
        card, holder = gateway.card()
        merchant = gateway.merchant()
        _, terminal = gateway.terminal(merchant)
        assert terminal.get(f"/v1/cards/{card.address}").status_code == 403
        other = HardWallet.issue(gateway.ctx.hardwallet.domain)
        assert (
            gateway.post(terminal, "/v1/cards", {"card": other.address, "holder": holder}).status_code == 403
        )


class TestDoorAccess:
    def test_a_listed_holder_passes_and_others_do_not(self, gateway: Gateway) -> None:
        door = Door(gateway)
        listed, holder = gateway.card()
        stranger, _ = gateway.card()
        door.grant(holder=holder)
        assert (d := door.present(listed))["allowed"] and d["reason"] == "on-access-list"
        assert d["holder"] == holder
        d = door.present(stranger)
        assert not d["allowed"] and d["reason"] == "not-on-access-list"

    def test_a_form_entry_admits_every_card_of_that_form(self, gateway: Gateway) -> None:
        door = Door(gateway)
        door.grant(form="wearable")
        band, _ = gateway.card(form=CardForm.WEARABLE)
        card, _ = gateway.card(form=CardForm.CARD)
        assert door.present(band)["allowed"]
        assert door.present(card)["reason"] == "not-on-access-list"

    def test_a_reused_challenge_is_denied(self, gateway: Gateway) -> None:
        door = Door(gateway)
        card, holder = gateway.card()
        door.grant(holder=holder)
        challenge = door.challenge()
        assert door.present(card, challenge)["allowed"]
        d = door.present(card, challenge)
        assert not d["allowed"] and d["reason"] == "challenge-used"

    def test_an_expired_challenge_is_denied(self, gateway: Gateway) -> None:
        door = Door(gateway)
        card, holder = gateway.card()
        door.grant(holder=holder)
        challenge = door.challenge()
        time.sleep(gateway.app.state.settings.access_challenge_ttl_s + 1.1)
        d = door.present(card, challenge)
        assert not d["allowed"] and d["reason"] == "challenge-expired"

    def test_a_challenge_of_another_door_or_never_issued_is_denied(self, gateway: Gateway) -> None:
        door, other = Door(gateway), Door(gateway)
        card, holder = gateway.card()
        door.grant(holder=holder)
        other.grant(holder=holder)
        assert door.present(card, other.challenge())["reason"] == "unknown-challenge"
        assert door.present(card, "0x" + "ab" * 32)["reason"] == "unknown-challenge"

    def test_a_signature_by_another_card_is_denied(self, gateway: Gateway) -> None:
        door = Door(gateway)
        card, holder = gateway.card()
        thief, _ = gateway.card()
        door.grant(holder=holder)
        d = door.present(card, signer=thief)
        assert not d["allowed"] and d["reason"] == "invalid-signature"

    def test_lost_and_unregistered_cards_are_denied(self, gateway: Gateway) -> None:
        door = Door(gateway)
        card, holder = gateway.card()
        door.grant(holder=holder)
        assert gateway.post("operator", f"/v1/cards/{card.address}/report-lost").status_code == 200
        assert door.present(card)["reason"] == "card-lost"
        unregistered = HardWallet.issue(gateway.ctx.hardwallet.domain)
        assert door.present(unregistered)["reason"] == "unknown-card"

    def test_a_signature_for_another_chain_is_denied(self, gateway: Gateway) -> None:
        from chain.clients.hardwallet import PaymentDomain

        door = Door(gateway)
        card, holder = gateway.card(private_key=b"\x07" * 32)
        door.grant(holder=holder)
        domain = gateway.ctx.hardwallet.domain
        elsewhere = HardWallet(b"\x07" * 32, PaymentDomain(domain.chain_id + 1, domain.verifying_contract))
        assert door.present(card, signer=elsewhere)["reason"] == "invalid-signature"

    def test_every_decision_is_logged_and_removing_a_grant_denies(self, gateway: Gateway) -> None:
        door = Door(gateway)
        card, holder = gateway.card()
        entry = door.grant(holder=holder)["grants"][0]
        assert door.present(card)["allowed"]
        r = gateway.clients["operator"].delete(f"/v1/access-points/{door.id}/grants/{entry['id']}")
        assert r.status_code == 200 and r.json()["grants"] == []
        assert not door.present(card)["allowed"]
        log = gateway.get("auditor", f"/v1/access-points/{door.id}/decisions").json()["items"]
        assert [(d["allowed"], d["reason"]) for d in log] == [
            (False, "not-on-access-list"),
            (True, "on-access-list"),
        ]
        assert door.reader.get(f"/v1/access-points/{door.id}/decisions").status_code == 403

    def test_only_access_point_keys_ask_for_challenges(self, gateway: Gateway) -> None:
        assert gateway.post("operator", "/v1/access/challenges").status_code == 403
        assert gateway.post("anonymous", "/v1/access/challenges").status_code == 401
