"""POST /v1/offline-payments: terminals upload card-signed batches; each payment gets its outcome."""

from __future__ import annotations

import secrets
import threading
import uuid

import httpx
from sqlalchemy import event
from web3 import Web3
from web3.logs import DISCARD

from chain import devtools
from chain.clients.hardwallet import Payment, PaymentDomain, SignedPayment, sign_payment
from tests.gateway.conftest import Gateway
from tests.helpers import unrecoverable_signatures
from wallets.hardwallet import HardWallet

LOADED = 1_000_00


def body(*payments: SignedPayment) -> dict:
    return {"payments": [p.to_json() for p in payments]}


def upload(gw: Gateway, terminal: httpx.Client, *payments: SignedPayment, key: str | None = None) -> dict:
    r = gw.post(terminal, "/v1/offline-payments", body(*payments), key=key)
    assert r.status_code == 200, r.text
    return r.json()


def outcomes(answer: dict) -> list[tuple[str, str | None]]:
    return [(r["outcome"], r["reason"]) for r in answer["results"]]


class Shop:
    """A merchant with two terminals, and a loaded card."""

    def __init__(self, gw: Gateway, **card: object) -> None:
        self.merchant = gw.merchant()
        self.terminal_id, self.terminal = gw.terminal(self.merchant)
        _, self.terminal2 = gw.terminal(self.merchant, "counter 2")
        self.card, self.holder = gw.card(load=LOADED, **card)  # type: ignore[arg-type]

    def pay(self, gw: Gateway, amount: int) -> SignedPayment:
        return self.card.sign_payment(self.merchant, amount, gw.now())


class TestUpload:
    def test_settles_and_pays_the_merchant(self, gateway: Gateway) -> None:
        shop = Shop(gateway)
        p1, p2 = shop.pay(gateway, 1_500), shop.pay(gateway, 2_500)
        answer = upload(gateway, shop.terminal, p1, p2)
        assert answer["status"] == "confirmed" and not answer["replayed"]
        assert outcomes(answer) == [("settled", None), ("settled", None)]
        assert [r["paid_fen"] for r in answer["results"]] == [1_500, 2_500]
        assert answer["counts"] == {"settled": 2, "duplicate": 0, "rejected": 0, "shortfall": 0}
        assert gateway.ctx.cash.balance_of(shop.merchant) == 4_000
        card = gateway.get("operator", f"/v1/cards/{shop.card.address}").json()
        assert (card["reserve_fen"], card["settled_fen"], card["last_counter_seen"]) == (
            LOADED - 4_000,
            4_000,
            2,
        )

    def test_the_same_batch_twice_returns_the_same_results_and_sends_nothing(self, gateway: Gateway) -> None:
        shop = Shop(gateway)
        payments = [shop.pay(gateway, 100 * (i + 1)) for i in range(3)]
        idem = str(uuid.uuid4())
        first = upload(gateway, shop.terminal, *payments, key=idem)
        block = gateway.w3.eth.block_number
        again = upload(gateway, shop.terminal, *payments, key=idem)  # same key, same body
        other_key = upload(gateway, shop.terminal, *payments)  # same batch, new key
        assert gateway.w3.eth.block_number == block  # no new transaction
        for answer in (again, other_key):
            assert answer["replayed"] and answer["results"] == first["results"]
            assert answer["tx_hash"] == first["tx_hash"]
        assert gateway.ctx.cash.balance_of(shop.merchant) == 600

    def test_the_same_payment_in_another_batch_or_from_another_terminal_is_a_duplicate(
        self, gateway: Gateway
    ) -> None:
        shop = Shop(gateway)
        p1, p2 = shop.pay(gateway, 1_000), shop.pay(gateway, 2_000)
        assert outcomes(upload(gateway, shop.terminal, p1)) == [("settled", None)]
        assert outcomes(upload(gateway, shop.terminal, p1, p2)) == [("duplicate", None), ("settled", None)]
        assert outcomes(upload(gateway, shop.terminal2, p2, p1)) == [("duplicate", None), ("duplicate", None)]
        assert gateway.ctx.cash.balance_of(shop.merchant) == 3_000

    def test_out_of_order_counters_all_settle(self, gateway: Gateway) -> None:
        shop = Shop(gateway)
        p1, p2, p3 = (shop.pay(gateway, 100) for _ in range(3))
        assert outcomes(upload(gateway, shop.terminal2, p3)) == [("settled", None)]
        assert outcomes(upload(gateway, shop.terminal, p2, p1)) == [("settled", None)] * 2
        assert gateway.get("operator", f"/v1/cards/{shop.card.address}").json()["last_counter_seen"] == 3

    def test_a_reused_counter_with_other_content_is_a_duplicate(self, gateway: Gateway) -> None:
        key = secrets.token_bytes(32)
        shop = Shop(gateway, private_key=key)
        p1 = shop.pay(gateway, 500)
        upload(gateway, shop.terminal, p1)
        clone = sign_payment(
            key, Payment(shop.card.address, shop.merchant, 9_000, 1, gateway.now()), shop.card.domain
        )
        answer = upload(gateway, shop.terminal, clone)
        assert outcomes(answer) == [("duplicate", None)] and answer["results"][0]["paid_fen"] == 0
        assert gateway.ctx.cash.balance_of(shop.merchant) == 500

    def test_a_frozen_holders_payment_is_rejected_not_final_and_settles_once_unfrozen(
        self, gateway: Gateway
    ) -> None:
        shop = Shop(gateway)
        p1 = shop.pay(gateway, 900)
        ctx = gateway.ctx
        ctx.cash.freeze(ctx.regulator, shop.holder)
        answer = upload(gateway, shop.terminal, p1)
        (result,) = answer["results"]
        assert (result["outcome"], result["reason"], result["final"]) == ("rejected", "holder-refused", False)
        assert result["detail"] == "0x" + bytes(Web3.keccak(text="WalletFrozen(address)")[:4]).hex()
        assert ctx.cash.balance_of(shop.merchant) == 0
        ctx.cash.unfreeze(ctx.regulator, shop.holder)
        assert outcomes(upload(gateway, shop.terminal2, p1)) == [("settled", None)]
        assert ctx.cash.balance_of(shop.merchant) == 900

    def test_the_same_batch_from_the_same_terminal_settles_what_was_refused_for_a_frozen_holder(
        self, gateway: Gateway
    ) -> None:
        """A terminal that simply sends its batch again (a new key) once the holder is unfrozen gets
        the refused payment settled (red team 10: the same-batch replay answered the old refusal
        for ever); the one settled before comes back a duplicate, nothing is paid twice; once every
        outcome is final, the same batch replays that latest answer and sends nothing."""
        ctx = gateway.ctx
        payer, frozen = Shop(gateway), Shop(gateway)
        ok = payer.pay(gateway, 300)
        refused = frozen.card.sign_payment(payer.merchant, 400, gateway.now())  # to the same merchant
        ctx.cash.freeze(ctx.regulator, frozen.holder)
        first = upload(gateway, payer.terminal, ok, refused)
        assert outcomes(first) == [("settled", None), ("rejected", "holder-refused")]
        ctx.cash.unfreeze(ctx.regulator, frozen.holder)
        again = upload(gateway, payer.terminal, ok, refused)  # the same batch, a new key
        assert not again["replayed"] and again["tx_hash"] != first["tx_hash"]
        assert outcomes(again) == [("duplicate", None), ("settled", None)]
        assert ctx.cash.balance_of(payer.merchant) == 700
        block = gateway.w3.eth.block_number
        third = upload(gateway, payer.terminal, ok, refused)
        assert third["replayed"] and third["results"] == again["results"]
        assert gateway.w3.eth.block_number == block and ctx.cash.balance_of(payer.merchant) == 700

    def test_a_forged_signature_is_rejected(self, gateway: Gateway) -> None:
        shop = Shop(gateway)
        genuine = shop.pay(gateway, 700)
        forged_payment = Payment(shop.card.address, shop.merchant, 70_000, 2, gateway.now())
        forged = sign_payment(secrets.token_bytes(32), forged_payment, shop.card.domain)
        tampered = SignedPayment(
            Payment(shop.card.address, shop.merchant, 7_000, genuine.payment.counter, genuine.payment.time),
            genuine.signature,
        )
        block = gateway.w3.eth.block_number
        answer = upload(gateway, shop.terminal, forged, tampered)
        assert outcomes(answer) == [("rejected", "invalid-signature")] * 2
        assert all(r["final"] for r in answer["results"])
        # refused by the gateway before sending (red team, LOW): no transaction, no gas
        assert (answer["status"], answer["tx_hash"], gateway.w3.eth.block_number) == (
            "confirmed",
            None,
            block,
        )
        assert outcomes(upload(gateway, shop.terminal, genuine)) == [("settled", None)]

    def test_a_signature_with_no_recoverable_signer_is_rejected_without_a_transaction(
        self, gateway: Gateway
    ) -> None:
        """r or s zero or beyond the curve order, a point off the curve, the high-s twin of the
        card's own signature: the contract's ECDSA.tryRecover finds no signer in any, so the
        gateway refuses them before sending (red team: an upload of 100 such cost 1.17M gas)."""
        shop = Shop(gateway)
        genuine = shop.pay(gateway, 900)
        bad = unrecoverable_signatures(genuine.signature)
        block = gateway.w3.eth.block_number
        answer = upload(gateway, shop.terminal, *(SignedPayment(genuine.payment, b) for b in bad))
        assert outcomes(answer) == [("rejected", "invalid-signature")] * len(bad)
        assert (answer["tx_hash"], gateway.w3.eth.block_number) == (None, block)
        assert outcomes(upload(gateway, shop.terminal, genuine)) == [("settled", None)]  # counter free

    def test_a_signature_for_another_chain_or_contract_is_rejected(self, gateway: Gateway) -> None:
        key = secrets.token_bytes(32)
        shop = Shop(gateway, private_key=key)
        domain = shop.card.domain
        payment = Payment(shop.card.address, shop.merchant, 800, 1, gateway.now())
        other_chain = sign_payment(
            key, payment, PaymentDomain(domain.chain_id + 1, domain.verifying_contract)
        )
        other_contract = sign_payment(
            key, payment, PaymentDomain(domain.chain_id, gateway.ctx.quickpay.contract.address)
        )
        block = gateway.w3.eth.block_number
        answer = upload(gateway, shop.terminal, other_chain, other_contract)
        assert outcomes(answer) == [("rejected", "invalid-signature")] * 2
        assert gateway.ctx.cash.balance_of(shop.merchant) == 0
        assert (answer["tx_hash"], gateway.w3.eth.block_number) == (None, block)

    def test_over_the_offline_cap_is_rejected(self, gateway: Gateway) -> None:
        cap = gateway.ctx.hardwallet.limits().offline_cap
        shop = Shop(gateway, offline_cap=cap * 2)  # a card that would sign above the contract's cap
        shop.card.credit(cap + 1)  # the card spent its offline balance on the rejected one
        answer = upload(gateway, shop.terminal, shop.pay(gateway, cap + 1))
        assert outcomes(answer) == [("rejected", "over-offline-cap")]
        assert outcomes(upload(gateway, shop.terminal, shop.pay(gateway, cap))) == [("settled", None)]

    def test_a_cloned_card_over_spending_its_reserve_gets_a_shortfall_and_is_blocked(
        self, gateway: Gateway
    ) -> None:
        key = secrets.token_bytes(32)
        shop = Shop(gateway, private_key=key)
        clone = HardWallet(key, shop.card.domain, offline_balance=LOADED)
        a = shop.pay(gateway, 80_000)
        b = clone.sign_payment(shop.merchant, 50_000, gateway.now())  # counter 1 again: duplicate
        c = sign_payment(
            key, Payment(shop.card.address, shop.merchant, 50_000, 2, gateway.now()), shop.card.domain
        )
        d = sign_payment(
            key, Payment(shop.card.address, shop.merchant, 10_000, 3, gateway.now()), shop.card.domain
        )
        answer = upload(gateway, shop.terminal, a, b, c, d)
        assert outcomes(answer) == [
            ("settled", None),
            ("duplicate", None),
            ("shortfall", None),
            ("shortfall", None),
        ]
        assert [r["paid_fen"] for r in answer["results"]] == [80_000, 0, 20_000, 0]
        card = gateway.get("operator", f"/v1/cards/{shop.card.address}").json()
        assert (card["status"], card["reserve_fen"], card["shortfall_fen"]) == ("blocked", 0, 40_000)
        assert gateway.ctx.cash.balance_of(shop.merchant) == LOADED

    def test_a_lost_card_before_and_after_the_grace_period(self, gateway: Gateway) -> None:
        shop = Shop(gateway)
        before = [shop.pay(gateway, 1_000) for _ in range(2)]
        devtools.increase_time(gateway.w3, 5)
        r = gateway.post("operator", f"/v1/cards/{shop.card.address}/report-lost")
        assert r.status_code == 200, r.text
        devtools.increase_time(gateway.w3, 5)
        after = shop.pay(gateway, 1_000)  # a thief's payment, signed after the report
        answer = upload(gateway, shop.terminal, before[0], after)
        assert outcomes(answer) == [("settled", None), ("rejected", "card-lost")]
        card = gateway.get("operator", f"/v1/cards/{shop.card.address}").json()
        assert card["status"] == "lost" and card["grace_ends_at"] > card["lost_at"]
        early = gateway.post("operator", f"/v1/cards/{shop.card.address}/return-reserve")
        assert early.status_code == 409 and early.json()["type"].endswith("grace-not-over")

        devtools.increase_time(gateway.w3, gateway.ctx.hardwallet.limits().grace_period + 1)
        assert outcomes(upload(gateway, shop.terminal, before[1])) == [("rejected", "grace-expired")]
        r = gateway.post("operator", f"/v1/cards/{shop.card.address}/return-reserve")
        assert r.status_code == 200, r.text
        assert gateway.ctx.cash.balance_of(shop.holder) == 5_000_00 - 1_000
        assert gateway.get("operator", f"/v1/cards/{shop.card.address}").json()["status"] == "closed"

    def test_times_that_cannot_be_true_are_refused_for_good(self, gateway: Gateway) -> None:
        """The signed time is the terminal's clock: ahead of the chain by more than an hour, before
        the card's registration, or (a lost card) before the upload window: rejected, final, the
        counter unused, nothing paid (red team, MEDIUM: back-dating past the lost-card check)."""
        shop = Shop(gateway)
        hw = gateway.ctx.hardwallet
        registered_at = hw.card(shop.card.address).registered_at
        future = shop.card.sign_payment(shop.merchant, 1_000, gateway.now() + 3_600 + 60)
        early = shop.card.sign_payment(shop.merchant, 1_000, registered_at - 1)
        answer = upload(gateway, shop.terminal, future, early)
        assert [
            (r["outcome"], r["reason"], r["detail"], r["final"], r["paid_fen"]) for r in answer["results"]
        ] == [
            ("rejected", "time-in-future", None, True, 0),
            ("rejected", "time-before-registration", None, True, 0),
        ]
        card = gateway.get("operator", f"/v1/cards/{shop.card.address}").json()
        assert (card["last_counter_seen"], card["reserve_fen"]) == (0, LOADED)
        assert not hw.is_counter_used(shop.card.address, future.payment.counter)

        window = hw.upload_window()
        devtools.increase_time(gateway.w3, window + 60)
        r = gateway.post("operator", f"/v1/cards/{shop.card.address}/report-lost")
        assert r.status_code == 200, r.text
        signed_from = hw.card(shop.card.address).signed_from
        lost_at = hw.card(shop.card.address).lost_at
        assert signed_from == lost_at - window > registered_at
        back_dated = shop.card.sign_payment(shop.merchant, 2_000, signed_from - 1)  # the thief's
        in_window = shop.card.sign_payment(shop.merchant, 3_000, signed_from)
        answer = upload(gateway, shop.terminal, back_dated, in_window)
        assert [(r["outcome"], r["reason"], r["final"]) for r in answer["results"]] == [
            ("rejected", "time-before-upload-window", True),
            ("settled", None, True),
        ]
        assert gateway.ctx.cash.balance_of(shop.merchant) == 3_000
        card = gateway.get("operator", f"/v1/cards/{shop.card.address}").json()
        assert (card["last_counter_seen"], card["reserve_fen"]) == (in_window.payment.counter, LOADED - 3_000)

    def test_an_unknown_card_is_rejected(self, gateway: Gateway) -> None:
        shop = Shop(gateway)
        stranger = HardWallet.issue(shop.card.domain)
        stranger.credit(1_900)
        block = gateway.w3.eth.block_number
        answer = upload(gateway, shop.terminal, stranger.sign_payment(shop.merchant, 1_000, gateway.now()))
        assert outcomes(answer) == [("rejected", "unknown-card")]
        assert (answer["tx_hash"], gateway.w3.eth.block_number) == (None, block)
        again = upload(gateway, shop.terminal, stranger.sign_payment(shop.merchant, 900, gateway.now()))
        assert gateway.get(shop.terminal, f"/v1/offline-payments/{again['id']}").json() == {
            **again,
            "replayed": False,
        }

    def test_what_the_contract_would_reject_for_certain_is_not_sent_and_keeps_its_place(
        self, gateway: Gateway
    ) -> None:
        # Red team (LOW): an invalid signature, an unknown card or a zero amount went on chain
        # (gas and a transaction) to be rejected there. The gateway rejects them itself, in the
        # contract's words and in upload order; only the rest is sent, in one transaction.
        key = secrets.token_bytes(32)
        shop = Shop(gateway, private_key=key)
        first = shop.pay(gateway, 1_000)
        forged = sign_payment(
            secrets.token_bytes(32),
            Payment(shop.card.address, shop.merchant, 500, 90, gateway.now()),
            shop.card.domain,
        )
        stranger = HardWallet.issue(shop.card.domain)
        stranger.credit(100)
        unknown = stranger.sign_payment(shop.merchant, 100, gateway.now())
        zero = sign_payment(
            key, Payment(shop.card.address, shop.merchant, 0, 91, gateway.now()), shop.card.domain
        )
        last = shop.pay(gateway, 2_000)
        sent_before = gateway.w3.eth.get_transaction_count(gateway.ctx.operator.address)
        answer = upload(gateway, shop.terminal, first, forged, unknown, zero, last)
        assert outcomes(answer) == [
            ("settled", None),
            ("rejected", "invalid-signature"),
            ("rejected", "unknown-card"),
            ("rejected", "zero-amount"),
            ("settled", None),
        ]
        assert [r["index"] for r in answer["results"]] == [0, 1, 2, 3, 4]
        assert [(r["counter"], r["amount_fen"], r["paid_fen"]) for r in answer["results"]] == [
            (first.payment.counter, 1_000, 1_000),
            (90, 500, 0),
            (unknown.payment.counter, 100, 0),
            (91, 0, 0),
            (last.payment.counter, 2_000, 2_000),
        ]
        assert answer["counts"] == {"settled": 2, "duplicate": 0, "rejected": 3, "shortfall": 0}
        assert all(r["final"] for r in answer["results"])
        assert gateway.w3.eth.get_transaction_count(gateway.ctx.operator.address) == sent_before + 1
        receipt = gateway.w3.eth.get_transaction_receipt(answer["tx_hash"])
        processed = gateway.ctx.hardwallet.contract.events.BatchProcessed()
        (batch,) = processed.process_receipt(receipt, errors=DISCARD)
        assert (batch.args.size, batch.args.settled) == (2, 2)  # only the two were sent
        assert gateway.ctx.cash.balance_of(shop.merchant) == 3_000
        # the same batch again (another key): the stored answer, nothing sent
        again = upload(gateway, shop.terminal, first, forged, unknown, zero, last)
        assert again["replayed"] and again["results"] == answer["results"]
        assert gateway.w3.eth.get_transaction_count(gateway.ctx.operator.address) == sent_before + 1

    def test_a_zero_amount_with_a_used_counter_is_left_to_the_chain_a_duplicate(
        self, gateway: Gateway
    ) -> None:
        key = secrets.token_bytes(32)
        shop = Shop(gateway, private_key=key)
        paid = shop.pay(gateway, 300)
        assert outcomes(upload(gateway, shop.terminal, paid)) == [("settled", None)]
        zero = sign_payment(
            key,
            Payment(shop.card.address, shop.merchant, 0, paid.payment.counter, gateway.now()),
            shop.card.domain,
        )
        assert outcomes(upload(gateway, shop.terminal, zero)) == [("duplicate", None)]


class TestTerminals:
    def test_a_terminal_uploads_only_for_its_own_merchant(self, gateway: Gateway) -> None:
        shop, other = Shop(gateway), gateway.merchant()
        payment = shop.card.sign_payment(other, 100, gateway.now())
        block = gateway.w3.eth.block_number
        r = gateway.post(shop.terminal, "/v1/offline-payments", body(payment))
        assert r.status_code == 403 and r.json()["type"].endswith("payment-for-another-merchant")
        assert gateway.w3.eth.block_number == block

    def test_uploads_need_a_terminal_key_and_an_idempotency_key(self, gateway: Gateway) -> None:
        shop = Shop(gateway)
        payment = body(shop.pay(gateway, 100))
        assert gateway.post("anonymous", "/v1/offline-payments", payment).status_code == 401
        assert gateway.post("operator", "/v1/offline-payments", payment).status_code == 403
        assert shop.terminal.post("/v1/offline-payments", json=payment).status_code == 400

    def test_a_revoked_terminal_cannot_upload(self, gateway: Gateway) -> None:
        shop = Shop(gateway)
        r = gateway.post("operator", f"/v1/terminals/{shop.terminal_id}/revoke")
        assert r.status_code == 200 and r.json()["revoked"]
        assert (
            gateway.post(shop.terminal, "/v1/offline-payments", body(shop.pay(gateway, 100))).status_code
            == 401
        )

    def test_a_batch_holds_one_to_a_hundred_payments(self, gateway: Gateway) -> None:
        shop = Shop(gateway)
        assert gateway.post(shop.terminal, "/v1/offline-payments", {"payments": []}).status_code == 422
        p = shop.pay(gateway, 1).to_json()
        assert gateway.post(shop.terminal, "/v1/offline-payments", {"payments": [p] * 101}).status_code == 422

    def test_a_counter_the_gateway_cannot_record_is_refused_before_anything_is_sent(
        self, gateway: Gateway
    ) -> None:
        # A (cloned or hostile) card whose counter reached 2**63: validly signed, so before the fix
        # it settled on chain and then the gateway failed to store the counter (a 500, retried
        # for ever). Now a 422 names the field and no transaction is sent.
        shop = Shop(gateway)
        shop.card._counter = 2**63 - 1  # the simulator signs the next counter: 2**63
        hostile = shop.pay(gateway, 100)
        assert hostile.payment.counter == 2**63
        block = gateway.w3.eth.block_number
        r = gateway.post(shop.terminal, "/v1/offline-payments", body(shop.pay(gateway, 50), hostile))
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "counter" in r.text
        assert gateway.w3.eth.block_number == block
        assert gateway.ctx.cash.balance_of(shop.merchant) == 0

    def test_an_amount_that_is_not_an_integer_is_refused_before_anything_is_sent(
        self, gateway: Gateway
    ) -> None:
        # Red team (LOW): "amount": 10.0 was accepted (pydantic's lax mode made it 10). The card
        # signed an integer; 10.0, "10" or true is not what it signed: 422, nothing sent.
        shop = Shop(gateway)
        signed = shop.pay(gateway, 10).to_json()
        block = gateway.w3.eth.block_number
        for field in ("amount", "counter", "time"):
            for value in (float(signed[field]), str(signed[field]), True):
                r = gateway.post(
                    shop.terminal, "/v1/offline-payments", {"payments": [{**signed, field: value}]}
                )
                assert r.status_code == 422, (field, value, r.text)
                assert r.json()["type"] == "urn:xcpay:problem:invalid-request"
                assert r.json()["errors"][0]["loc"] == ["body", "payments", 0, field]
        assert gateway.w3.eth.block_number == block
        assert outcomes(upload(gateway, shop.terminal, shop.pay(gateway, 10))) == [("settled", None)]

    def test_a_canteen_terminal_is_a_merchant_of_the_canteen_category(self, gateway: Gateway) -> None:
        canteen = gateway.merchant(category=5812)
        terminal_id, _ = gateway.terminal(canteen, "staff canteen")
        r = gateway.get("operator", "/v1/terminals?category=5812&limit=200")
        assert r.status_code == 200
        found = {t["id"]: t for t in r.json()["items"]}
        assert found[terminal_id]["canteen"] and found[terminal_id]["merchant"] == canteen
        person = gateway.wallet()
        r = gateway.post("operator", "/v1/terminals", {"merchant": person, "location": "x"})
        assert r.status_code == 422 and r.json()["type"].endswith("not-a-merchant-wallet")


class TestUploadCost:
    """What one upload costs the database on its request path (issue 19: the load test is
    CPU-bound, and each statement and durable commit is CPU in the gateway and the database)."""

    def test_an_upload_of_two_cards_makes_a_bounded_number_of_statements_and_commits(
        self, gateway: Gateway
    ) -> None:
        shop = Shop(gateway)
        other, _ = gateway.card(load=LOADED)
        payments = [shop.pay(gateway, 100), other.sign_payment(shop.merchant, 200, gateway.now())]
        payments.append(shop.pay(gateway, 300))
        statements: list[str] = []
        durable: list[bool] = []  # each commit: flushed to disk on its own?
        deferring = [False]

        def on_request_path() -> bool:  # the request's worker thread, not the background loops
            return threading.current_thread().name.startswith("AnyIO worker")

        def statement(conn: object, cursor: object, text: str, *args: object) -> None:
            if not on_request_path():
                return
            if "synchronous" in text:  # a deferred session (services/common/db.py), not a statement
                deferring[0] = True
            else:
                statements.append(" ".join(text.split()[:4]))

        def commit(conn: object) -> None:
            if on_request_path():
                durable.append(not deferring[0])
                deferring[0] = False

        engine = gateway.ctx.db.engine
        event.listen(engine, "before_cursor_execute", statement)
        event.listen(engine, "commit", commit)
        try:
            answer = upload(gateway, shop.terminal, *payments)
        finally:
            event.remove(engine, "before_cursor_execute", statement)
            event.remove(engine, "commit", commit)
        assert outcomes(answer) == [("settled", None)] * 3
        card = gateway.get("operator", f"/v1/cards/{shop.card.address}").json()
        assert card["last_counter_seen"] == 2
        # Both cards' counters in one statement, the results stored with them; the upload's row
        # and its operation read once after the settlement, the claim's row flushed to disk with
        # the next commit (before: 23 statements, 5 of the 6 commits durable).
        assert sum(s.startswith("UPDATE gateway_cards") for s in statements) == 1, statements
        assert len(statements) <= 20, statements
        assert durable.count(True) <= 4, durable
