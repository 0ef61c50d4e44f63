"""POST /v1/wallets/batch: many wallets registered 200 to a transaction, each as POST /v1/wallets
would, idempotent, every bad row named in one 422 before anything is registered."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from eth_account import Account

from chain.clients.token import Kind
from services.common.models import ChainEvent, Wallet
from services.operator.families.cash import service as wallet_service
from tests.services.conftest import Api
from tests.services.test_operator_api import assert_problem


def person(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "personal",
        "tier": 3,
        "display_name": f"worker {i}",
        "identity": f"id-{uuid.uuid4()}",
        **extra,
    }


class TestWalletBatch:
    def test_registers_custodial_and_self_custody_wallets_across_groups(
        self, api: Api, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(wallet_service, "GROUP", 4)  # 200 on a real batch; the same code path
        own = Account.create().address
        wallets = [person(i) for i in range(10)]
        wallets[5] = person(5, custody="self", address=own)
        wallets[8] = {**person(8), "kind": "merchant", "tier": 2, "merchant_category": 5812}
        r = api.post("operator", "/v1/wallets/batch", {"wallets": wallets})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "confirmed" and len(body["operations"]) == 3  # 4 + 4 + 2
        assert [w["row"] for w in body["wallets"]] == list(range(1, 11))
        assert body["wallets"][5]["address"] == own
        cash = api.app.state.ctx.cash
        for row, sent in zip(body["wallets"], wallets, strict=True):
            info = cash.wallet(row["address"])
            assert info.registered and info.tier == sent["tier"]
            assert info.kind == (Kind.MERCHANT if sent["kind"] == "merchant" else Kind.PERSONAL)
        with api.app.state.ctx.db.session() as s:
            stored = s.get(Wallet, body["wallets"][0]["address"])
            assert stored is not None and stored.custody == "custodial" and stored.keystore is not None
            assert s.get(Wallet, own).custody == "self"  # type: ignore[union-attr]
            # the operation's own events went to the event index as it was confirmed
            indexed = s.query(ChainEvent).filter(ChainEvent.name == "WalletRegistered").count()
        assert indexed >= 10
        # a custodial wallet of the batch can act: it got its gas money
        worker = body["wallets"][0]["address"]
        assert api.w3.eth.get_balance(worker) > 0
        one = api.auditor.get(f"/v1/wallets/{worker}")
        assert one.status_code == 200 and one.json()["display_name"] == "worker 0"

    def test_a_replay_answers_the_same_wallets_and_registers_nothing_more(self, api: Api) -> None:
        wallets = [person(i) for i in range(3)] + [
            person(3, custody="self", address=Account.create().address)
        ]
        key = str(uuid.uuid4())
        first = api.post("operator", "/v1/wallets/batch", {"wallets": wallets}, key=key)
        assert first.status_code == 201, first.text
        again = api.post("operator", "/v1/wallets/batch", {"wallets": wallets}, key=key)
        assert again.status_code == 201, again.text
        assert again.json()["wallets"] == first.json()["wallets"]
        other = api.post("operator", "/v1/wallets/batch", {"wallets": wallets[:2]}, key=key)
        assert_problem(other, 409, "idempotency-key-reused")

    def test_every_bad_row_is_named_and_nothing_is_registered(self, api: Api) -> None:
        taken = api.new_wallet()
        twice = Account.create().address
        wallets = [
            person(0),
            person(1, custody="self", address=twice),
            person(2, custody="self", address=twice),
            person(3, custody="self", address=taken),
        ]
        with api.app.state.ctx.db.session() as s:
            before = s.query(Wallet).count()
        r = api.post("operator", "/v1/wallets/batch", {"wallets": wallets})
        body = assert_problem(r, 422, "invalid-wallets")
        assert [(e["row"], e["field"]) for e in body["errors"]] == [(3, "address"), (4, "address")]
        assert "row 2" in body["errors"][0]["reason"]
        with api.app.state.ctx.db.session() as s:
            assert s.query(Wallet).count() == before

    def test_a_wallet_registered_on_chain_outside_the_service_is_named(self, api: Api) -> None:
        outside = Account.create().address
        ctx = api.app.state.ctx
        ctx.cash.register(ctx.operator, outside, Kind.PERSONAL, 3, 0, b"\1" * 32)
        r = api.post(
            "operator",
            "/v1/wallets/batch",
            {"wallets": [person(0), person(1, custody="self", address=outside)]},
        )
        body = assert_problem(r, 422, "invalid-wallets")
        assert body["errors"] == [
            {"row": 2, "field": "address", "reason": f"{outside} is registered already"}
        ]

    def test_schema_errors_are_422_and_the_route_takes_operator_keys_only(self, api: Api) -> None:
        assert api.post("operator", "/v1/wallets/batch", {"wallets": []}).status_code == 422
        bad = [{**person(0), "kind": "merchant"}]  # a merchant without its category
        assert api.post("operator", "/v1/wallets/batch", {"wallets": bad}).status_code == 422
        r = api.post("auditor", "/v1/wallets/batch", {"wallets": [person(0)]})
        assert r.status_code == 403, r.text

    def test_a_row_refused_on_chain_is_named_with_its_row_and_reason(
        self, api: Api, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A wallet registered on chain between the check and the transaction (the check is
        skipped here to stand for that race): the group reverts whole, naming the row."""
        monkeypatch.setattr(wallet_service, "GROUP", 2)
        monkeypatch.setattr(wallet_service, "check_batch", lambda ctx, wallets: None)
        outside = Account.create().address
        ctx = api.app.state.ctx
        ctx.cash.register(ctx.operator, outside, Kind.PERSONAL, 3, 0, b"\2" * 32)
        wallets = [person(0), person(1), person(2), person(3, custody="self", address=outside)]
        r = api.post("operator", "/v1/wallets/batch", {"wallets": wallets})
        body = assert_problem(r, 422, "wallet-batch-row-refused")
        assert (body["row"], body["reason"], body["rows_registered"]) == (4, "WalletAlreadyRegistered", 2)


ZERO = "0x" + "0" * 40


class TestRefusedAddresses:
    """Red team: contract addresses registered as wallets (cash sent to them is lost), the zero
    address, ghost rows of a group the chain refused, and a 500 on two concurrent batches."""

    def test_a_contract_address_is_refused_singly_and_per_row_of_a_batch(self, api: Api) -> None:
        ctx = api.app.state.ctx
        token, registry = ctx.cash.cash.address, ctx.cash.registry.address
        quickpay = ctx.manifest.contract(api.w3, "QuickPay").address
        # QuickPay is registered at deploy (an institution wallet, so that its pulls pass): the
        # refusals must leave each contract's registry entry as it was.
        on_chain = {a: ctx.cash.wallet(a) for a in (token, registry, quickpay)}
        for address, kind in ((registry, "personal"), (quickpay, "merchant")):
            body = person(0, custody="self", address=address, kind=kind)
            if kind == "merchant":
                body["merchant_category"] = 5812
            r = api.post("operator", "/v1/wallets", body)
            assert_problem(r, 422, "wallet-is-contract")
        wallets = [person(0), person(1, custody="self", address=token)]
        with ctx.db.session() as s:
            before = s.query(Wallet).count()
        body = assert_problem(
            api.post("operator", "/v1/wallets/batch", {"wallets": wallets}), 422, "invalid-wallets"
        )
        assert [(e["row"], e["field"], e["code"]) for e in body["errors"]] == [
            (2, "address", "wallet-is-contract")
        ]
        with ctx.db.session() as s:
            assert s.query(Wallet).count() == before
        assert {a: ctx.cash.wallet(a) for a in on_chain} == on_chain
        assert not on_chain[token].registered and not on_chain[registry].registered

    def test_a_hard_wallet_cards_key_is_refused_singly_and_per_row_of_a_batch(self, api: Api) -> None:
        """Red team rt2 (LOW): a self-custody wallet was registered at an active card's key (the
        gateway refuses the converse, a card at a wallet's address: card-is-wallet)."""
        from chain.clients.hardwallet import CardForm
        from wallets.hardwallet import HardWallet

        ctx = api.app.state.ctx
        card = HardWallet.issue(ctx.hardwallet.domain)
        ctx.hardwallet.register_card(ctx.operator, card.address, api.new_wallet(), CardForm.CARD)
        r = api.post("operator", "/v1/wallets", person(0, custody="self", address=card.address))
        assert_problem(r, 422, "wallet-is-card")
        body = assert_problem(
            api.post(
                "operator",
                "/v1/wallets/batch",
                {"wallets": [person(1, custody="self", address=card.address)]},
            ),
            422,
            "invalid-wallets",
        )
        assert [(e["row"], e["code"]) for e in body["errors"]] == [(1, "wallet-is-card")]
        assert not ctx.cash.wallet(card.address).registered

    def test_the_zero_address_is_refused_at_validation(self, api: Api) -> None:
        r = api.post("operator", "/v1/wallets/batch", {"wallets": [person(0, custody="self", address=ZERO)]})
        assert_problem(r, 422, "invalid-request")
        r = api.post("operator", "/v1/wallets", person(0, custody="self", address=ZERO))
        assert_problem(r, 422, "invalid-request")
        assert_problem(api.auditor.get(f"/v1/wallets/{ZERO}"), 404, "wallet-not-found")

    def test_a_group_refused_on_chain_leaves_no_wallet_rows(
        self, api: Api, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(wallet_service, "GROUP", 2)
        monkeypatch.setattr(wallet_service, "check_batch", lambda ctx, wallets: None)
        outside = Account.create().address
        ctx = api.app.state.ctx
        ctx.cash.register(ctx.operator, outside, Kind.PERSONAL, 3, 0, b"\3" * 32)
        wallets = [person(0), person(1), person(2), person(3, custody="self", address=outside)]
        with ctx.db.session() as s:
            before = s.query(Wallet).count()
        r = api.post("operator", "/v1/wallets/batch", {"wallets": wallets})
        assert_problem(r, 422, "wallet-batch-row-refused")
        with ctx.db.session() as s:
            assert s.query(Wallet).count() == before + 2  # the first group only
            assert s.get(Wallet, outside) is None

    def test_two_concurrent_batches_sharing_an_address_give_one_201_and_one_named_409(self, api: Api) -> None:
        from concurrent.futures import ThreadPoolExecutor

        a, c, d = (Account.create().address for _ in range(3))
        first = [person(0, custody="self", address=a), person(1, custody="self", address=d)]
        second = [person(0, custody="self", address=a), person(1, custody="self", address=c)]
        for _ in range(3):  # the race is not won the same way each time; none may be a 500
            with ThreadPoolExecutor(2) as pool:
                answers = list(
                    pool.map(
                        lambda w: api.post("operator", "/v1/wallets/batch", {"wallets": w}), [first, second]
                    )
                )
            statuses = sorted(r.status_code for r in answers)
            assert 500 not in statuses, [r.text for r in answers]
            if statuses == [201, 409]:
                break
            a, c, d = (Account.create().address for _ in range(3))
            first = [person(0, custody="self", address=a), person(1, custody="self", address=d)]
            second = [person(0, custody="self", address=a), person(1, custody="self", address=c)]
        loser = next(r for r in answers if r.status_code != 201)
        assert loser.status_code in (409, 422), loser.text
        if loser.status_code == 409:
            body = assert_problem(loser, 409, "wallet-already-registered")
            assert body["row"] == 1 and a in body["detail"]


def test_one_identity_however_it_is_written_is_one_person(api: Api) -> None:
    """Found from outside: ``"id-a"``, ``" ID-A"`` and full-width ``"ＩＤ-Ａ"`` registered as three
    people in one tier. An identity is normalized (NFKC, no whitespace, upper case) before it is
    hashed, so the second spelling is the same person and the chain refuses a second wallet."""
    tag = uuid.uuid4().hex[:8].upper()
    first = {"kind": "personal", "tier": 2, "display_name": "甲", "identity": f"ID-{tag}"}
    r = api.post("operator", "/v1/wallets", first)
    assert r.status_code == 201, r.text
    for spelling in (f"id-{tag.lower()}", f" ID-{tag} ", "ＩＤ-" + tag.translate(_FULLWIDTH)):
        again = api.post("operator", "/v1/wallets", {**first, "display_name": "乙", "identity": spelling})
        assert again.status_code in (409, 422), again.text
        assert "IdentityWalletLimit" in again.text
    blank = api.post("operator", "/v1/wallets", {**first, "identity": " \u3000 "})
    assert blank.status_code == 422, blank.text
    found = api.operator.get("/v1/wallets", params={"identity": f"  id-{tag.lower()}"})
    assert found.status_code == 200, found.text
    assert r.json()["request"]["address"] in [w["address"] for w in found.json()["items"]]


_FULLWIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}
