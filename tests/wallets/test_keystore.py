"""Keystores: scrypt + AES-256-GCM / SM4-GCM, Ethereum v3, and every way a file can go wrong."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from eth_account import Account

from wallets import keystore
from wallets.keystore import (
    AES_256_GCM,
    SM4_GCM,
    KeystoreCorrupt,
    KeystoreError,
    KeystoreTampered,
    UnsupportedKeystore,
    WrongPassword,
)

N = 2**10  # fast scrypt for tests; the default is 2**17
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = Account.from_key(KEY).address
PASSWORD = "correct horse battery staple"


def flip_hex(value: str, index: int = 0) -> str:
    """Flip one bit of the byte at ``index`` of a hex string."""
    raw = bytearray(bytes.fromhex(value))
    raw[index] ^= 0x01
    return raw.hex()


@pytest.fixture(params=[AES_256_GCM, SM4_GCM])
def cipher(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def doc(cipher: str) -> dict[str, Any]:
    return keystore.encrypt_key(KEY, PASSWORD, cipher=cipher, scrypt_n=N)


class TestSm4Availability:
    def test_sm4_matches_the_gbt_32907_test_vector(self) -> None:
        key = bytes.fromhex("0123456789abcdeffedcba9876543210")
        enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
        assert (enc.update(key) + enc.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"


class TestRoundTrip:
    def test_opens_with_the_right_password(self, doc: dict[str, Any], cipher: str) -> None:
        assert doc["cipher"] == cipher and doc["kdf"] == "scrypt" and doc["address"] == ADDRESS
        assert keystore.decrypt_key(doc, PASSWORD) == KEY

    def test_default_cipher_is_aes_256_gcm(self) -> None:
        assert keystore.encrypt_key(KEY, PASSWORD, scrypt_n=N)["cipher"] == AES_256_GCM

    def test_key_never_appears_in_the_file(self, doc: dict[str, Any]) -> None:
        text = json.dumps(doc)
        assert KEY.hex() not in text and KEY.hex().upper() not in text

    def test_each_encryption_uses_fresh_salt_and_nonce(self, cipher: str) -> None:
        a = keystore.encrypt_key(KEY, PASSWORD, cipher=cipher, scrypt_n=N)
        b = keystore.encrypt_key(KEY, PASSWORD, cipher=cipher, scrypt_n=N)
        assert a["kdfparams"]["salt"] != b["kdfparams"]["salt"] and a["nonce"] != b["nonce"]

    def test_accepts_text_bytes_and_unicode_passwords(self) -> None:
        for pw in ("口令-密码", b"\xff\x00raw"):
            assert keystore.decrypt_key(keystore.encrypt_key(KEY, pw, scrypt_n=N), pw) == KEY

    def test_sealed_payloads_check_their_kind(self) -> None:
        doc = keystore.seal(b"anything", PASSWORD, kind="note", scrypt_n=N)
        assert keystore.unseal(doc, PASSWORD, kind="note") == b"anything"
        with pytest.raises(UnsupportedKeystore, match="holds a 'note'"):
            keystore.unseal(doc, PASSWORD, kind=keystore.KIND_KEY)

    def test_refuses_an_empty_password_and_a_bad_key(self) -> None:
        with pytest.raises(ValueError, match="empty password"):
            keystore.encrypt_key(KEY, "", scrypt_n=N)
        with pytest.raises(ValueError, match="32 bytes"):
            keystore.encrypt_key(KEY[:31], PASSWORD, scrypt_n=N)
        with pytest.raises(ValueError, match="valid secp256k1"):
            keystore.encrypt_key(b"\0" * 32, PASSWORD, scrypt_n=N)
        with pytest.raises(UnsupportedKeystore, match="unknown cipher"):
            keystore.encrypt_key(KEY, PASSWORD, cipher="des", scrypt_n=N)


class TestWrongPassword:
    def test_reports_a_wrong_password(self, doc: dict[str, Any]) -> None:
        with pytest.raises(WrongPassword):
            keystore.decrypt_key(doc, PASSWORD + "!")

    def test_altered_salt_or_cost_reads_as_wrong_password(self, doc: dict[str, Any]) -> None:
        """They change the derived key, which is all the file can check before decrypting."""
        salted = {**doc, "kdfparams": {**doc["kdfparams"], "salt": flip_hex(doc["kdfparams"]["salt"])}}
        cheaper = {**doc, "kdfparams": {**doc["kdfparams"], "n": N // 2}}
        for altered in (salted, cheaper):
            with pytest.raises(WrongPassword):
                keystore.decrypt_key(altered, PASSWORD)


class TestTampering:
    @pytest.mark.parametrize("index", [0, 17, -1])
    def test_altered_ciphertext_or_tag_is_detected(self, doc: dict[str, Any], index: int) -> None:
        n = len(doc["ciphertext"]) // 2
        altered = {**doc, "ciphertext": flip_hex(doc["ciphertext"], index % n)}
        with pytest.raises(KeystoreTampered):
            keystore.decrypt_key(altered, PASSWORD)

    def test_altered_nonce_is_detected(self, doc: dict[str, Any]) -> None:
        with pytest.raises(KeystoreTampered):
            keystore.decrypt_key({**doc, "nonce": flip_hex(doc["nonce"])}, PASSWORD)

    def test_altered_address_is_detected(self, doc: dict[str, Any]) -> None:
        """The address is in clear (to find the file) but authenticated: a swap shows."""
        other = Account.create().address
        with pytest.raises(KeystoreTampered):
            keystore.decrypt_key({**doc, "address": other}, PASSWORD)

    def test_an_added_header_field_is_detected(self, doc: dict[str, Any]) -> None:
        with pytest.raises(KeystoreTampered):
            keystore.decrypt_key({**doc, "label": "mine now"}, PASSWORD)

    def test_swapped_ciphertext_of_another_key_is_detected(self, doc: dict[str, Any], cipher: str) -> None:
        other = keystore.encrypt_key(Account.create().key, PASSWORD, cipher=cipher, scrypt_n=N)
        with pytest.raises(KeystoreTampered):
            keystore.decrypt_key({**doc, "ciphertext": other["ciphertext"]}, PASSWORD)

    def test_changed_kind_is_refused(self, doc: dict[str, Any]) -> None:
        with pytest.raises(UnsupportedKeystore):
            keystore.decrypt_key({**doc, "kind": "xcpay-hardwallet"}, PASSWORD)


class TestTruncatedAndMalformed:
    def test_truncated_file_is_corrupt(self, doc: dict[str, Any]) -> None:
        text = json.dumps(doc)
        for cut in (0, 1, len(text) // 2, len(text) - 1):
            with pytest.raises(KeystoreCorrupt):
                keystore.decrypt_key(text[:cut], PASSWORD)

    def test_truncated_ciphertext_never_yields_a_partial_key(self, doc: dict[str, Any]) -> None:
        short = {**doc, "ciphertext": doc["ciphertext"][:-2]}
        with pytest.raises(KeystoreTampered):
            keystore.decrypt_key(short, PASSWORD)
        with pytest.raises(KeystoreCorrupt, match="shorter than its authentication tag"):
            keystore.decrypt_key({**doc, "ciphertext": doc["ciphertext"][:20]}, PASSWORD)

    @pytest.mark.parametrize("field", ["nonce", "check", "ciphertext", "kdfparams", "cipher", "kind"])
    def test_missing_field_is_corrupt(self, doc: dict[str, Any], field: str) -> None:
        broken = {k: v for k, v in doc.items() if k != field}
        with pytest.raises(KeystoreCorrupt):
            keystore.decrypt_key(broken, PASSWORD)

    def test_non_hex_and_wrong_length_fields_are_corrupt(self, doc: dict[str, Any]) -> None:
        for broken in (
            {**doc, "nonce": "zz" * 12},
            {**doc, "nonce": "00" * 11},
            {**doc, "ciphertext": "abc"},
        ):
            with pytest.raises(KeystoreCorrupt):
                keystore.decrypt_key(broken, PASSWORD)

    def test_not_an_object_is_corrupt(self) -> None:
        with pytest.raises(KeystoreCorrupt):
            keystore.decrypt_key("[1, 2]", PASSWORD)

    def test_unknown_format_version_and_cipher_are_unsupported(self, doc: dict[str, Any]) -> None:
        for broken in ({**doc, "version": 2}, {**doc, "cipher": "aes-128-ecb"}, {"format": "other"}):
            with pytest.raises(UnsupportedKeystore):
                keystore.decrypt_key(broken, PASSWORD)

    @pytest.mark.parametrize(("n", "r", "p"), [(2**30, 8, 1), (1000, 8, 1), (2**10, 0, 1), (2**10, 8, 99)])
    def test_hostile_scrypt_parameters_are_refused_before_deriving(
        self, doc: dict[str, Any], n: int, r: int, p: int
    ) -> None:
        params = {**doc["kdfparams"], "n": n, "r": r, "p": p}
        with pytest.raises(UnsupportedKeystore, match="out of range"):
            keystore.decrypt_key({**doc, "kdfparams": params}, PASSWORD)

    def test_every_failure_shares_one_root(self) -> None:
        for cls in (KeystoreCorrupt, KeystoreTampered, WrongPassword, UnsupportedKeystore):
            assert issubclass(cls, KeystoreError)


class TestEthereumV3:
    def test_writes_a_keystore_eth_account_reads(self) -> None:
        v3 = keystore.to_v3(KEY, PASSWORD, scrypt_n=N)
        assert v3["version"] == 3 and v3["crypto"]["kdf"] == "scrypt"
        assert bytes(Account.decrypt(v3, PASSWORD)) == KEY

    def test_reads_keystores_from_other_wallets(self) -> None:
        for kdf in ("scrypt", "pbkdf2"):
            v3 = Account.encrypt(KEY, PASSWORD, kdf=kdf, iterations=N if kdf == "scrypt" else 1000)
            assert keystore.decrypt_key(v3, PASSWORD) == KEY
            assert keystore.from_v3(json.dumps(v3), PASSWORD) == KEY

    def test_reads_the_services_custodial_keystores(self) -> None:
        from services.common.signers import Custody

        address, v3 = Custody("custody-password", N).create()
        assert Account.from_key(keystore.decrypt_key(v3, "custody-password")).address == address

    def test_wrong_password_or_altered_ciphertext(self) -> None:
        v3 = keystore.to_v3(KEY, PASSWORD, scrypt_n=N)
        with pytest.raises(WrongPassword):
            keystore.decrypt_key(v3, "nope")
        altered = json.loads(json.dumps(v3))
        altered["crypto"]["ciphertext"] = flip_hex(altered["crypto"]["ciphertext"])
        with pytest.raises(WrongPassword, match="cannot tell"):
            keystore.decrypt_key(altered, PASSWORD)

    def test_altered_address_is_detected(self) -> None:
        v3 = {**keystore.to_v3(KEY, PASSWORD, scrypt_n=N), "address": Account.create().address[2:].lower()}
        with pytest.raises(KeystoreTampered):
            keystore.decrypt_key(v3, PASSWORD)

    def test_truncated_or_malformed_v3_is_corrupt(self) -> None:
        v3 = keystore.to_v3(KEY, PASSWORD, scrypt_n=N)
        with pytest.raises(KeystoreCorrupt):
            keystore.decrypt_key(json.dumps(v3)[:-10], PASSWORD)
        with pytest.raises(KeystoreCorrupt):
            keystore.decrypt_key({"version": 3}, PASSWORD)
        hostile = json.loads(json.dumps(v3))
        hostile["crypto"]["kdfparams"]["n"] = 2**31
        with pytest.raises(UnsupportedKeystore):
            keystore.decrypt_key(hostile, PASSWORD)


class TestFiles:
    def test_saved_file_is_private_and_loads(self, tmp_path: Path, cipher: str) -> None:
        path = keystore.save(
            tmp_path / "key.json", keystore.encrypt_key(KEY, PASSWORD, cipher=cipher, scrypt_n=N)
        )
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert keystore.load_key(path, PASSWORD) == KEY
        assert keystore.address_of(keystore.load(path)) == ADDRESS
        assert [p.name for p in tmp_path.iterdir()] == ["key.json"]  # no temporary file left

    def test_truncated_file_on_disk_is_corrupt(self, tmp_path: Path) -> None:
        path = keystore.save(tmp_path / "key.json", keystore.encrypt_key(KEY, PASSWORD, scrypt_n=N))
        path.write_bytes(path.read_bytes()[:100])
        with pytest.raises(KeystoreCorrupt):
            keystore.load_key(path, PASSWORD)

    def test_missing_file_is_a_keystore_error(self, tmp_path: Path) -> None:
        with pytest.raises(KeystoreError, match="cannot read"):
            keystore.load_key(tmp_path / "absent.json", PASSWORD)


class TestWeakKeyDerivation:
    """Weak KDF parameters are refused on write and warned about on read (outside the test
    profile that tests/conftest.py sets, which only lowers the floor to n = 2**10)."""

    @pytest.fixture
    def standard_cost(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv(keystore.COST_ENV, raising=False)

    @pytest.mark.usefixtures("standard_cost")
    def test_writing_below_the_floor_is_refused_saying_what_is_required(self) -> None:
        for write in (
            lambda: keystore.encrypt_key(KEY, PASSWORD, scrypt_n=2**16),
            lambda: keystore.seal(b"card", PASSWORD, kind="note", scrypt_n=2**12),
            lambda: keystore.to_v3(KEY, PASSWORD, scrypt_n=2**16),
        ):
            with pytest.raises(keystore.WeakKeystore, match=r"use n >= 131072"):
                write()

    def test_the_test_profile_lowers_the_floor_only_to_2_to_the_10(self) -> None:
        assert keystore.min_scrypt_n() == 2**10
        with pytest.raises(keystore.WeakKeystore):
            keystore.encrypt_key(KEY, PASSWORD, scrypt_n=2**9)

    def test_reading_weak_keystores_warns(self, monkeypatch: pytest.MonkeyPatch) -> None:
        weak = keystore.encrypt_key(KEY, PASSWORD, scrypt_n=N)  # written in the test profile
        v3_scrypt = keystore.to_v3(KEY, PASSWORD, scrypt_n=N)
        v3_pbkdf2 = dict(Account.encrypt(KEY, PASSWORD, kdf="pbkdf2", iterations=100_000))
        monkeypatch.delenv(keystore.COST_ENV)
        for doc in (weak, v3_scrypt, v3_pbkdf2):
            with pytest.warns(keystore.WeakKeystoreWarning, match="re-encrypt"):
                assert keystore.decrypt_key(doc, PASSWORD) == KEY  # still opens: a warning, not a refusal

    @pytest.mark.usefixtures("standard_cost")
    def test_the_default_parameters_pass_without_a_warning(self, recwarn: pytest.WarningsRecorder) -> None:
        doc = keystore.encrypt_key(KEY, PASSWORD)
        assert keystore.decrypt_key(doc, PASSWORD) == KEY
        assert not [w for w in recwarn if issubclass(w.category, keystore.WeakKeystoreWarning)]


LEGACY = json.loads((Path(__file__).parent / "data" / "legacy_v1_keystores.json").read_text())


class TestVersion:
    """Our version is no Ethereum keystore's: eth-account refuses our files instead of misreading
    them, and files written as ``"version": 1`` (made by the code before the change: the fixture)
    still open and are upgraded."""

    def test_the_version_is_no_ethereum_keystore_version(self, doc: dict[str, Any]) -> None:
        assert doc["format"] == "xcpay-keystore" and doc["version"] == "xcpay-2"
        assert doc["version"] not in (1, 2, 3, 4)

    def test_eth_account_refuses_ours(self, doc: dict[str, Any]) -> None:
        with pytest.raises(NotImplementedError, match="Not yet implemented"):
            Account.decrypt(doc, PASSWORD)

    @pytest.mark.parametrize("name", [AES_256_GCM, SM4_GCM])
    def test_legacy_files_still_open(self, name: str) -> None:
        old = LEGACY[name]
        assert old["version"] == 1 and old["cipher"] == name and keystore.is_legacy(old)
        assert keystore.decrypt_key(old, PASSWORD) == KEY

    @pytest.mark.parametrize("name", [AES_256_GCM, SM4_GCM, "sealed"])
    def test_upgrade_reseals_in_the_current_version(self, name: str) -> None:
        old = LEGACY[name]
        new = keystore.upgrade(old, PASSWORD)
        assert new["version"] == keystore.VERSION and not keystore.is_legacy(new)
        assert (new["kind"], new["cipher"], new.get("address")) == (
            old["kind"],
            old["cipher"],
            old.get("address"),
        )
        assert new["kdfparams"]["salt"] != old["kdfparams"]["salt"]
        assert keystore.unseal(new, PASSWORD, kind=old["kind"]) == keystore.unseal(
            old, PASSWORD, kind=old["kind"]
        )
        assert keystore.upgrade(new, PASSWORD) == new  # current: unchanged

    def test_upgrade_needs_the_password_and_an_intact_file(self) -> None:
        with pytest.raises(WrongPassword):
            keystore.upgrade(LEGACY[AES_256_GCM], "wrong")
        tampered = {**LEGACY[AES_256_GCM], "ciphertext": flip_hex(LEGACY[AES_256_GCM]["ciphertext"])}
        with pytest.raises(KeystoreTampered):
            keystore.upgrade(tampered, PASSWORD)

    def test_relabelling_a_legacy_file_as_current_is_detected(self) -> None:
        """The version is authenticated: a legacy file cannot be passed off as current unchanged."""
        relabelled = {**LEGACY[AES_256_GCM], "version": keystore.VERSION}
        with pytest.raises(KeystoreTampered):
            keystore.decrypt_key(relabelled, PASSWORD)

    def test_upgrade_file_rewrites_a_legacy_file_once(self, tmp_path: Path) -> None:
        path = keystore.save(tmp_path / "k.json", LEGACY[SM4_GCM])
        assert keystore.upgrade_file(path, PASSWORD) is True
        assert keystore.load(path)["version"] == keystore.VERSION
        assert keystore.load_key(path, PASSWORD) == KEY
        assert keystore.upgrade_file(path, PASSWORD) is False
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
