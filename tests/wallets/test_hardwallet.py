"""The hard-wallet simulator (secure element) and the offline terminal, without a chain."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Sequence

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from chain.clients.hardwallet import (
    Outcome,
    Payment,
    PaymentDomain,
    PaymentOutcome,
    RejectReason,
    SignedPayment,
    recover_card,
    sign_payment,
)
from wallets import keystore
from wallets.hardwallet import (
    CardForm,
    CardRefused,
    ExportRefused,
    HardWallet,
    InsufficientOfflineBalance,
    OverOfflineCap,
)
from wallets.terminal import Terminal, TerminalError

N = 2**10
ISSUER = b"issuer-secret-of-the-test-cards"
KEY = bytes.fromhex("8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f")
DOMAIN = PaymentDomain(131277322940537, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
OTHER_CHAIN = PaymentDomain(1, DOMAIN.verifying_contract)
OTHER_CONTRACT = PaymentDomain(DOMAIN.chain_id, "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
SHOP = Account.from_key(b"\x05" * 32).address
OTHER_SHOP = Account.from_key(b"\x06" * 32).address


def card(balance: int = 500_00, cap: int = 200_00, form: CardForm = CardForm.CARD) -> HardWallet:
    hw = HardWallet(KEY, DOMAIN, form=form, offline_cap=cap, serial="HW-TEST", issuer_secret=ISSUER)
    if balance:
        hw.credit(balance)
    return hw


class TestSecureElement:
    def test_no_method_or_attribute_returns_the_key(self) -> None:
        hw = card()
        secrets_ = {KEY, KEY.hex(), "0x" + KEY.hex()}
        for name in dir(hw):
            if name.startswith("_"):
                continue
            value = getattr(hw, name)
            assert value not in secrets_, name
            if callable(value):
                continue
            assert KEY.hex() not in str(value), name
        assert KEY.hex() not in repr(hw) and not hasattr(hw, "__dict__")

    def test_cannot_be_pickled_or_copied(self) -> None:
        hw = card()
        with pytest.raises(TypeError, match="pickled"):
            pickle.dumps(hw)
        for clone in (copy.copy, copy.deepcopy):
            with pytest.raises(TypeError, match="copied"):
                clone(hw)

    def test_issue_generates_a_key_inside_the_card(self) -> None:
        a, b = HardWallet.issue(DOMAIN, form=CardForm.WEARABLE), HardWallet.issue(DOMAIN, form=CardForm.SIM)
        assert a.address != b.address and a.form is CardForm.WEARABLE and b.form is CardForm.SIM
        assert a.counter == 0 and a.offline_balance == 0

    def test_address_is_the_keys(self) -> None:
        assert card().address == Account.from_key(KEY).address


class TestSigning:
    def test_every_signature_increments_the_counter(self) -> None:
        hw = card()
        counters = [hw.sign_payment(SHOP, 10_00, 1_700_000_000).payment.counter for _ in range(5)]
        assert counters == [1, 2, 3, 4, 5] and hw.counter == 5
        assert hw.offline_balance == 500_00 - 5 * 10_00

    def test_signs_eip712_bound_to_chain_and_contract(self) -> None:
        hw = card()
        signed = hw.sign_payment(SHOP, 12_34, 1_700_000_123)
        p = signed.payment
        assert (p.card, p.merchant, p.amount, p.counter, p.time) == (
            hw.address,
            SHOP,
            12_34,
            1,
            1_700_000_123,
        )
        assert recover_card(signed, DOMAIN) == hw.address
        assert recover_card(signed, OTHER_CHAIN) != hw.address
        assert recover_card(signed, OTHER_CONTRACT) != hw.address

    def test_digest_matches_eth_account_typed_data(self) -> None:
        p = Payment(Account.from_key(KEY).address, SHOP, 99_00, 7, 1_700_000_000)
        signed = Account.sign_message(encode_typed_data(full_message=p.typed_data(DOMAIN)), KEY)
        assert bytes(signed.message_hash) == p.digest(DOMAIN)
        assert sign_payment(KEY, p, DOMAIN).signature == bytes(signed.signature)

    def test_refuses_above_the_offline_cap(self) -> None:
        hw = card(cap=200_00)
        with pytest.raises(OverOfflineCap) as info:
            hw.sign_payment(SHOP, 200_01)
        assert (info.value.cap, info.value.amount) == (200_00, 200_01)
        assert hw.counter == 0 and hw.offline_balance == 500_00
        hw.sign_payment(SHOP, 200_00)  # at the cap is fine

    def test_refuses_beyond_the_offline_balance(self) -> None:
        hw = card(balance=150_00)
        hw.sign_payment(SHOP, 100_00)
        with pytest.raises(InsufficientOfflineBalance) as info:
            hw.sign_payment(SHOP, 50_01)
        assert (info.value.balance, info.value.amount) == (50_00, 50_01)
        assert hw.counter == 1 and hw.offline_balance == 50_00

    def test_refuses_zero_and_negative_amounts(self) -> None:
        hw = card()
        for amount in (0, -1):
            with pytest.raises(CardRefused):
                hw.sign_payment(SHOP, amount)
        assert hw.counter == 0

    def test_credit_must_be_positive(self) -> None:
        with pytest.raises(ValueError):
            card().credit(0)


class TestSaveRestore:
    @pytest.mark.parametrize("cipher", [keystore.AES_256_GCM, keystore.SM4_GCM])
    def test_restored_card_carries_on(self, cipher: str) -> None:
        hw = card(form=CardForm.SIM)
        hw.sign_payment(SHOP, 10_00, 1)
        image = hw.save("pin-1234", issuer_secret=ISSUER, cipher=cipher, scrypt_n=N)
        assert image["cipher"] == cipher and KEY.hex() not in json.dumps(image)
        back = HardWallet.restore(json.dumps(image), "pin-1234", issuer_secret=ISSUER)
        assert (
            back.address,
            back.form,
            back.counter,
            back.offline_balance,
            back.offline_cap,
            back.serial,
        ) == (
            hw.address,
            CardForm.SIM,
            1,
            490_00,
            200_00,
            "HW-TEST",
        )
        assert back.domain == DOMAIN
        assert back.sign_payment(SHOP, 1_00, 2).payment.counter == 2

    def test_wrong_pin_tampered_and_truncated_images_fail_clearly(self) -> None:
        image = card().save("pin-1234", issuer_secret=ISSUER, scrypt_n=N)
        with pytest.raises(keystore.WrongPassword):
            HardWallet.restore(image, "pin-0000", issuer_secret=ISSUER)
        altered = {
            **image,
            "ciphertext": image["ciphertext"][:-2] + format(int(image["ciphertext"][-2:], 16) ^ 1, "02x"),
        }
        with pytest.raises(keystore.KeystoreTampered):
            HardWallet.restore(altered, "pin-1234", issuer_secret=ISSUER)
        with pytest.raises(keystore.KeystoreCorrupt):
            HardWallet.restore(json.dumps(image)[:-5], "pin-1234", issuer_secret=ISSUER)

    def test_a_key_keystore_is_not_a_card_image(self) -> None:
        with pytest.raises(keystore.UnsupportedKeystore):
            key_file = keystore.encrypt_key(KEY, "pin-1234", scrypt_n=N)
            HardWallet.restore(key_file, "pin-1234", issuer_secret=ISSUER)


def fake_uploader(outcomes: dict[tuple[str, int], PaymentOutcome], sent: list[int]):
    def send(batch: Sequence[SignedPayment]) -> list[PaymentOutcome]:
        sent.append(len(batch))
        return [outcomes.get(s.key) or settled(s) for s in batch]

    return send


def settled(s: SignedPayment) -> PaymentOutcome:
    p = s.payment
    return PaymentOutcome(p.card, p.counter, p.merchant, p.amount, Outcome.SETTLED, p.amount)


class TestTerminal:
    def test_collects_offline_and_uploads_in_batches(self) -> None:
        hw, term = card(balance=1_000_00), Terminal(SHOP, DOMAIN, batch_size=3, clock=lambda: 1_700_000_000)
        for _ in range(7):
            term.charge(hw, 1_00)
        assert len(term.pending) == 7 and term.pending[0].payment.time == 1_700_000_000
        sent: list[int] = []
        outcomes = term.upload(fake_uploader({}, sent))
        assert sent == [3, 3, 1] and len(outcomes) == 7 and term.pending == []

    def test_keeps_payments_the_merchant_could_not_receive(self) -> None:
        hw, term = card(), Terminal(SHOP, DOMAIN)
        a, b = term.charge(hw, 1_00), term.charge(hw, 2_00)
        refused = PaymentOutcome(
            hw.address, 2, SHOP, 2_00, Outcome.REJECTED, reason=RejectReason.MERCHANT_REFUSED
        )
        term.upload(fake_uploader({b.key: refused}, []))
        assert term.pending == [b] and term.results[a.key].outcome is Outcome.SETTLED

    def test_a_failed_upload_keeps_the_queue(self) -> None:
        hw, term = card(), Terminal(SHOP, DOMAIN)
        term.charge(hw, 1_00)

        def down(batch: Sequence[SignedPayment]) -> list[PaymentOutcome]:
            raise ConnectionError("no network")

        with pytest.raises(ConnectionError):
            term.upload(down)
        assert len(term.pending) == 1

    def test_refuses_forged_misdirected_and_foreign_domain_payments(self) -> None:
        hw, term = card(), Terminal(SHOP, DOMAIN)
        good = hw.sign_payment(SHOP, 1_00, 1)
        forged = SignedPayment(Payment(hw.address, SHOP, 9_00, 1, 1), good.signature)
        impostor = sign_payment(b"\x09" * 32, Payment(hw.address, SHOP, 1_00, 2, 1), DOMAIN)
        foreign = sign_payment(KEY, Payment(hw.address, SHOP, 1_00, 3, 1), OTHER_CHAIN)
        for bad in (forged, impostor, foreign):
            with pytest.raises(TerminalError, match="not the card's"):
                term.accept(bad)
        with pytest.raises(TerminalError, match="not "):
            Terminal(OTHER_SHOP, DOMAIN).accept(good)
        truncated = SignedPayment(good.payment, good.signature[:64])
        with pytest.raises(TerminalError, match="unreadable"):
            term.accept(truncated)

    def test_the_same_payment_is_queued_once(self) -> None:
        hw, term = card(), Terminal(SHOP, DOMAIN)
        signed = term.charge(hw, 1_00)
        assert term.accept(signed) is False and len(term.pending) == 1

    def test_card_refusals_pass_through_and_queue_nothing(self) -> None:
        hw, term = card(cap=10_00), Terminal(SHOP, DOMAIN)
        with pytest.raises(OverOfflineCap):
            term.charge(hw, 10_01)
        assert term.pending == []

    def test_queue_moves_between_devices_as_json_lines(self, tmp_path) -> None:
        hw, a, b = card(), Terminal(SHOP, DOMAIN), Terminal(SHOP, DOMAIN)
        for amount in (1_00, 2_00):
            a.charge(hw, amount)
        a.save_queue(tmp_path / "queue.jsonl")
        assert b.load_queue(tmp_path / "queue.jsonl") == 2 and b.pending == a.pending
        assert b.import_lines(a.export().splitlines()) == 0


class TestIssuerSecret:
    """The simulator's save/restore door needs the issuer's secret, so a demo cannot clone a card
    by accident; a card personalised without one never exports its key (as a secure element)."""

    def test_a_card_without_an_issuer_secret_never_exports(self) -> None:
        for hw in (HardWallet(KEY, DOMAIN), HardWallet.issue(DOMAIN)):
            with pytest.raises(ExportRefused, match="without an issuer secret"):
                hw.save("pin-1234", issuer_secret=ISSUER, scrypt_n=N)

    def test_the_wrong_issuer_secret_neither_saves_nor_restores(self) -> None:
        hw = card()
        with pytest.raises(ExportRefused, match="wrong issuer secret"):
            hw.save("pin-1234", issuer_secret=b"not-the-issuer-secret", scrypt_n=N)
        image = hw.save("pin-1234", issuer_secret=ISSUER, scrypt_n=N)
        with pytest.raises(ExportRefused, match="wrong issuer secret"):
            HardWallet.restore(image, "pin-1234", issuer_secret=b"not-the-issuer-secret")

    def test_a_restored_card_keeps_needing_the_secret(self) -> None:
        image = card().save("pin-1234", issuer_secret=ISSUER, scrypt_n=N)
        back = HardWallet.restore(image, "pin-1234", issuer_secret=ISSUER)
        with pytest.raises(ExportRefused):
            back.save("pin-1234", issuer_secret=b"x" * 16, scrypt_n=N)
        assert back.save("pin-1234", issuer_secret=ISSUER, scrypt_n=N)["kind"] == "xcpay-hardwallet"

    def test_the_docstring_says_it_is_a_simulator(self) -> None:
        import wallets.hardwallet as module

        assert module.__doc__ is not None and "SIMULATOR" in module.__doc__
        assert "secure element" in module.__doc__
