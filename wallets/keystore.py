"""Encrypted keystores: keys (and hard-wallet images) at rest.

Two formats are read and written:

- **xcpay keystore** (``"format": "xcpay-keystore"``, ``"version": "xcpay-2"``; the default). A
  key derived from the password by scrypt encrypts the
  payload with an AEAD cipher:

  - ``aes-256-gcm`` (default): AES with a 256-bit key in GCM mode.
  - ``sm4-gcm``: SM4 (GB/T 32907, the Chinese national block cipher, 128-bit key) in GCM mode, for
    deployments that must use national algorithms. ``cryptography`` provides SM4 with GCM
    (``Cipher(algorithms.SM4(key), modes.GCM(nonce, tag))``; checked against the GB/T 32907 test
    vector in the tests), so no CTR + HMAC construction is needed.

  Every header field (format, kind, address, cipher, KDF parameters, nonce, password check) is
  authenticated as GCM associated data, so altering any of them is detected. A short *password
  check* derived from the scrypt output (like the MAC of an Ethereum v3 keystore, it tells a guesser
  nothing the GCM tag would not) lets a wrong password be told apart from a tampered file.

- **Ethereum v3 keystore** (scrypt or PBKDF2 + AES-128-CTR + keccak MAC, through eth-account), for
  interoperability with other wallets and with the services' custodial keystores.

The version is a string no Ethereum keystore uses: tools dispatch on an integer ``version`` (geth's
legacy 1, v3, eth-keyfile's 4), and our files once said ``"version": 1``, which reads as geth's
pre-v3 format. Such files (identical otherwise) are still opened; :func:`upgrade` and
:func:`upgrade_file` re-seal them in the current version.

Failures are exceptions of one family, never a partial key: :class:`WrongPassword`,
:class:`KeystoreTampered`, :class:`KeystoreCorrupt` (truncated, not JSON, missing or malformed
fields), :class:`UnsupportedKeystore` (unknown format or cipher, KDF parameters out of range, which
also keeps a hostile file from making scrypt allocate gigabytes). Decrypted bytes are only returned
after the tag has been verified.

Weak key derivation is refused on write and warned about on read (:class:`WeakKeystoreWarning`):
scrypt needs ``n >= 2**17`` (with r = 8: 128 MiB and about 0.3 s a guess; v3's r = 1 files the
same n), and a v3 PBKDF2 keystore ``c >= 262,144`` rounds. **Test profile**: with the environment
variable ``XCPAY_KEYSTORE_COST=test`` (tests/conftest.py sets it; never in a deployment, where the
services' production settings refuse it) the floor is ``n >= 2**10``, so that the suites stay fast.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from eth_account import Account
from eth_keys import keys
from eth_keys.exceptions import ValidationError as KeyValidationError
from eth_utils import to_checksum_address

FORMAT: Final = "xcpay-keystore"
VERSION: Final = "xcpay-2"
LEGACY_VERSION: Final = 1  # the same format, written before it had a version of its own
AES_256_GCM: Final = "aes-256-gcm"
SM4_GCM: Final = "sm4-gcm"
CIPHERS: Final = (AES_256_GCM, SM4_GCM)
DEFAULT_CIPHER: Final = AES_256_GCM
KIND_KEY: Final = "secp256k1-key"

DEFAULT_SCRYPT_N: Final = 2**17  # about 0.3 s and 128 MiB with r = 8
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
MAX_SCRYPT_MEMORY: Final = 256 * 2**20  # 128 * n * r bytes: the v3 default (n = 2**18, r = 8) fits
MAX_PBKDF2_ROUNDS: Final = 10_000_000
MIN_SCRYPT_N: Final = 2**17  # the floor on write (and below it a warning on read)
MIN_PBKDF2_ROUNDS: Final = 262_144  # the same for a v3 PBKDF2 keystore (read only: we write scrypt)
TEST_MIN_SCRYPT_N: Final = 2**10  # the floor in the test profile (XCPAY_KEYSTORE_COST=test)
TEST_MIN_PBKDF2_ROUNDS: Final = 1_024
COST_ENV: Final = "XCPAY_KEYSTORE_COST"

_KEY_BYTES: Final = {AES_256_GCM: 32, SM4_GCM: 16}
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_SALT_BYTES: Final = 32
_CHECK_BYTES: Final = 16
_CHECK_LABEL: Final = b"xcpay-keystore password check\0"


class KeystoreError(Exception):
    """Root of every keystore failure."""


class KeystoreCorrupt(KeystoreError):
    """The keystore is truncated, not JSON, or has missing or malformed fields."""


class UnsupportedKeystore(KeystoreError):
    """Unknown format, version, cipher or KDF, or KDF parameters out of the accepted range."""


class WrongPassword(KeystoreError):
    """The password does not open this keystore.

    In an xcpay keystore an altered salt or KDF parameter also shows as a wrong password (they
    change the derived key). A v3 keystore cannot tell a wrong password from an altered ciphertext.
    """


class WeakKeystore(UnsupportedKeystore):
    """Refused on write: key-derivation parameters below the floor (see the module docstring)."""


class WeakKeystoreWarning(UserWarning):
    """A keystore opened with key-derivation parameters below the floor: re-encrypt it."""


def _test_profile() -> bool:
    return os.environ.get(COST_ENV) == "test"


def min_scrypt_n() -> int:
    """The least scrypt ``n`` accepted on write (2**17; 2**10 in the test profile)."""
    return TEST_MIN_SCRYPT_N if _test_profile() else MIN_SCRYPT_N


def min_pbkdf2_rounds() -> int:
    return TEST_MIN_PBKDF2_ROUNDS if _test_profile() else MIN_PBKDF2_ROUNDS


def _refuse_weak_scrypt(n: int) -> None:
    if n < min_scrypt_n():
        raise WeakKeystore(
            f"scrypt n={n} is too weak to protect a key: use n >= {min_scrypt_n()} (2**17; the "
            f"default is {DEFAULT_SCRYPT_N})"
        )


def _warn_weak(kdf: str, cost: int, floor: int) -> None:
    if cost < floor:
        warnings.warn(
            WeakKeystoreWarning(
                f"this keystore's {kdf} cost {cost} is below {floor}: re-encrypt it with stronger parameters"
            ),
            stacklevel=3,
        )


class KeystoreTampered(KeystoreError):
    """The password is right but the encrypted payload or an authenticated header field was altered."""


# -- the xcpay format ----------------------------------------------------------------------------


def seal(
    plaintext: bytes,
    password: str | bytes,
    *,
    kind: str,
    cipher: str = DEFAULT_CIPHER,
    scrypt_n: int = DEFAULT_SCRYPT_N,
    address: str | None = None,
) -> dict[str, Any]:
    """Encrypt ``plaintext`` (a key, a card image) under ``password``; returns the keystore document.

    ``kind`` names what is inside and is checked by :func:`unseal`; ``address``, when given, is
    stored in clear (to find the right file) and authenticated.
    """
    if cipher not in CIPHERS:
        raise UnsupportedKeystore(f"unknown cipher {cipher!r}; use one of {', '.join(CIPHERS)}")
    pw = _password_bytes(password)
    if not pw:
        raise ValueError("an empty password protects nothing")
    kdfparams = {"n": scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": secrets.token_bytes(_SALT_BYTES).hex()}
    _check_scrypt(kdfparams)
    _refuse_weak_scrypt(scrypt_n)
    key_len = _KEY_BYTES[cipher]
    derived = _scrypt(pw, kdfparams, key_len + _CHECK_BYTES)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "cipher": cipher,
        "kdf": "scrypt",
        "kdfparams": kdfparams,
        "check": _check(derived[key_len:]).hex(),
        "nonce": secrets.token_bytes(_NONCE_BYTES).hex(),
    }
    if address is not None:
        doc["address"] = to_checksum_address(address)
    sealed = _encrypt(cipher, derived[:key_len], bytes.fromhex(doc["nonce"]), plaintext, _aad(doc))
    doc["ciphertext"] = sealed.hex()
    return doc


def unseal(doc: Mapping[str, Any] | str | bytes, password: str | bytes, *, kind: str) -> bytes:
    """Decrypt an xcpay keystore holding ``kind``; raises a :class:`KeystoreError`, never returns
    unauthenticated bytes."""
    d = _as_mapping(doc)
    if d.get("format") != FORMAT:
        raise UnsupportedKeystore(f"not an xcpay keystore (format {d.get('format')!r})")
    if d.get("version") != VERSION and not is_legacy(d):
        raise UnsupportedKeystore(f"xcpay keystore version {d.get('version')!r} is not supported")
    cipher = _field(d, "cipher", str)
    if cipher not in CIPHERS:
        raise UnsupportedKeystore(f"unknown cipher {cipher!r}")
    if _field(d, "kdf", str) != "scrypt":
        raise UnsupportedKeystore(f"unknown KDF {d.get('kdf')!r}")
    found_kind = _field(d, "kind", str)
    if found_kind != kind:
        raise UnsupportedKeystore(f"this keystore holds a {found_kind!r}, not a {kind!r}")
    kdfparams = dict(_field(d, "kdfparams", dict))
    _check_scrypt(kdfparams)
    _warn_weak("scrypt n", kdfparams["n"], min_scrypt_n())
    check = _hex(d, "check", _CHECK_BYTES)
    nonce = _hex(d, "nonce", _NONCE_BYTES)
    sealed = _hex(d, "ciphertext")
    if len(sealed) < _TAG_BYTES:
        raise KeystoreCorrupt("the ciphertext is shorter than its authentication tag (truncated?)")
    key_len = _KEY_BYTES[cipher]
    derived = _scrypt(_password_bytes(password), kdfparams, key_len + _CHECK_BYTES)
    if not hmac.compare_digest(_check(derived[key_len:]), check):
        raise WrongPassword("wrong password for this keystore")
    header = {k: v for k, v in d.items() if k != "ciphertext"}
    return _decrypt(cipher, derived[:key_len], nonce, sealed, _aad(header))


def is_legacy(doc: Mapping[str, Any] | str | bytes) -> bool:
    """Whether ``doc`` is an xcpay keystore of the legacy ``"version": 1`` (see :func:`upgrade`)."""
    d = _as_mapping(doc)
    version = d.get("version")
    return d.get("format") == FORMAT and version == LEGACY_VERSION and not isinstance(version, bool)


def upgrade(doc: Mapping[str, Any] | str | bytes, password: str | bytes) -> dict[str, Any]:
    """A legacy (``"version": 1``) xcpay keystore re-sealed in the current version: same kind,
    cipher, scrypt cost and address, new salt and nonce (the version is authenticated, so it
    cannot be rewritten in place). A current keystore is returned as it is."""
    d = _as_mapping(doc)
    if not is_legacy(d):
        unseal(d, password, kind=_field(d, "kind", str))  # an unreadable file is not passed on
        return d
    kind = _field(d, "kind", str)
    plaintext = unseal(d, password, kind=kind)
    if kind == KIND_KEY:
        decrypt_key(d, password)  # also checks the key against the declared address
    return seal(
        plaintext,
        password,
        kind=kind,
        cipher=_field(d, "cipher", str),
        scrypt_n=max(int(d["kdfparams"]["n"]), min_scrypt_n()),
        address=address_of(d),
    )


def upgrade_file(path: Path | str, password: str | bytes) -> bool:
    """Re-seal a legacy keystore file in place (atomically); False if it was current already."""
    doc = load(path)
    if not is_legacy(doc):
        return False
    save(path, upgrade(doc, password))
    return True


def encrypt_key(
    private_key: bytes,
    password: str | bytes,
    *,
    cipher: str = DEFAULT_CIPHER,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> dict[str, Any]:
    """An xcpay keystore of a secp256k1 private key (its address in clear, authenticated)."""
    address = _address_of_key(private_key)
    return seal(private_key, password, kind=KIND_KEY, cipher=cipher, scrypt_n=scrypt_n, address=address)


def decrypt_key(doc: Mapping[str, Any] | str | bytes, password: str | bytes) -> bytes:
    """The private key in an xcpay or an Ethereum v3 keystore (the format is recognised)."""
    d = _as_mapping(doc)
    if d.get("format") == FORMAT:
        key = unseal(d, password, kind=KIND_KEY)
        try:
            address = _address_of_key(key)
        except ValueError:
            raise KeystoreTampered("the keystore decrypted to something that is not a key") from None
        if "address" in d and to_checksum_address(str(d["address"])) != address:
            raise KeystoreTampered("the key does not match the keystore's address")
        return key
    if d.get("version") == 3:
        return from_v3(d, password)
    raise UnsupportedKeystore("neither an xcpay keystore nor an Ethereum v3 keystore")


def address_of(doc: Mapping[str, Any] | str | bytes) -> str | None:
    """The address a keystore declares (not verified until it is opened), if any."""
    raw = _as_mapping(doc).get("address")
    if not raw:
        return None
    try:
        return to_checksum_address(str(raw) if str(raw).startswith("0x") else "0x" + str(raw))
    except ValueError:
        raise KeystoreCorrupt(f"malformed address {raw!r}") from None


# -- Ethereum v3 ---------------------------------------------------------------------------------


def to_v3(private_key: bytes, password: str | bytes, *, scrypt_n: int = 2**18) -> dict[str, Any]:
    """A standard Ethereum v3 keystore (scrypt, AES-128-CTR), as geth and MetaMask read it."""
    _address_of_key(private_key)
    pw = _password_bytes(password)
    if not pw:
        raise ValueError("an empty password protects nothing")
    _check_scrypt({"n": scrypt_n, "r": 1, "p": 8, "salt": "00" * 16})  # eth-keyfile's r and p
    _refuse_weak_scrypt(scrypt_n)
    return dict(Account.encrypt(private_key, pw, kdf="scrypt", iterations=scrypt_n))  # type: ignore[arg-type]  # bytes too


def from_v3(doc: Mapping[str, Any] | str | bytes, password: str | bytes) -> bytes:
    """The private key in an Ethereum v3 keystore."""
    d = _as_mapping(doc)
    if d.get("version") != 3:
        raise UnsupportedKeystore(f"not a v3 keystore (version {d.get('version')!r})")
    crypto = d.get("crypto", d.get("Crypto"))
    if not isinstance(crypto, Mapping):
        raise KeystoreCorrupt("the v3 keystore has no crypto section")
    kdf = crypto.get("kdf")
    params = crypto.get("kdfparams")
    if not isinstance(params, Mapping):
        raise KeystoreCorrupt("the v3 keystore has no KDF parameters")
    if kdf == "scrypt":
        _check_scrypt({"n": params.get("n"), "r": params.get("r"), "p": params.get("p"), "salt": "00" * 16})
        _warn_weak("scrypt n", int(params["n"]), min_scrypt_n())
    elif kdf == "pbkdf2":
        rounds = params.get("c")
        if not isinstance(rounds, int) or not 1 <= rounds <= MAX_PBKDF2_ROUNDS:
            raise UnsupportedKeystore(f"PBKDF2 rounds {rounds!r} out of range")
        _warn_weak("PBKDF2 c", rounds, min_pbkdf2_rounds())
    else:
        raise UnsupportedKeystore(f"unknown v3 KDF {kdf!r}")
    if crypto.get("cipher") != "aes-128-ctr":
        raise UnsupportedKeystore(f"unknown v3 cipher {crypto.get('cipher')!r}")
    try:
        key = bytes(Account.decrypt(dict(d), _password_bytes(password)))  # type: ignore[arg-type]  # bytes too
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise WrongPassword(
                "wrong password for this v3 keystore (or its ciphertext was altered: v3 cannot tell which)"
            ) from None
        raise KeystoreCorrupt(f"malformed v3 keystore: {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise KeystoreCorrupt(f"malformed v3 keystore: missing or invalid {exc}") from None
    if len(key) != 32:
        raise KeystoreTampered("the v3 keystore decrypted to something that is not a 32-byte key")
    declared = d.get("address")
    if declared:
        try:
            expected = to_checksum_address("0x" + str(declared).removeprefix("0x"))
        except ValueError:
            raise KeystoreCorrupt(f"malformed address {declared!r}") from None
        if _address_of_key(key) != expected:
            raise KeystoreTampered("the key does not match the v3 keystore's address")
    return key


# -- files ---------------------------------------------------------------------------------------


def save(path: Path | str, doc: Mapping[str, Any]) -> Path:
    """Write a keystore readable by its owner only, atomically (a crash leaves the old file or none)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def load(path: Path | str) -> dict[str, Any]:
    """Read a keystore file (not decrypted)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {path}: {exc.strerror}") from None
    return _as_mapping(raw)


def load_key(path: Path | str, password: str | bytes) -> bytes:
    """The private key in the keystore file at ``path`` (xcpay or v3)."""
    return decrypt_key(load(path), password)


# -- internals -----------------------------------------------------------------------------------


def _password_bytes(password: str | bytes) -> bytes:
    return password.encode("utf-8") if isinstance(password, str) else bytes(password)


def _as_mapping(doc: Mapping[str, Any] | str | bytes) -> dict[str, Any]:
    if isinstance(doc, Mapping):
        return dict(doc)
    try:
        parsed = json.loads(doc)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeystoreCorrupt(f"the keystore is not valid JSON (truncated?): {exc}") from None
    if not isinstance(parsed, dict):
        raise KeystoreCorrupt("the keystore is not a JSON object")
    return parsed


def _field(d: Mapping[str, Any], name: str, kind: type) -> Any:
    value = d.get(name)
    if not isinstance(value, kind):
        raise KeystoreCorrupt(f"the keystore's {name!r} is missing or malformed")
    return value


def _hex(d: Mapping[str, Any], name: str, length: int | None = None) -> bytes:
    raw = _field(d, name, str)
    try:
        value = bytes.fromhex(raw)
    except ValueError:
        raise KeystoreCorrupt(f"the keystore's {name!r} is not hex") from None
    if length is not None and len(value) != length:
        raise KeystoreCorrupt(f"the keystore's {name!r} has {len(value)} bytes, not {length}")
    return value


def _check_scrypt(params: Mapping[str, Any]) -> None:
    n, r, p, salt = (params.get(k) for k in ("n", "r", "p", "salt"))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
        raise KeystoreCorrupt("scrypt parameters n, r, p must be integers")
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    if n < 2 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16 or 128 * n * r > MAX_SCRYPT_MEMORY:
        raise UnsupportedKeystore(f"scrypt parameters out of range (n={n}, r={r}, p={p})")
    if not isinstance(salt, str):
        raise KeystoreCorrupt("the scrypt salt is missing")
    try:
        if len(bytes.fromhex(salt)) < 16:
            raise KeystoreCorrupt("the scrypt salt is shorter than 16 bytes")
    except ValueError:
        raise KeystoreCorrupt("the scrypt salt is not hex") from None


def _scrypt(password: bytes, params: Mapping[str, Any], length: int) -> bytes:
    kdf = Scrypt(
        salt=bytes.fromhex(params["salt"]), length=length, n=params["n"], r=params["r"], p=params["p"]
    )
    return kdf.derive(password)


def _check(material: bytes) -> bytes:
    return hashlib.sha256(_CHECK_LABEL + material).digest()[:_CHECK_BYTES]


def _aad(header: Mapping[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _encrypt(cipher: str, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    if cipher == AES_256_GCM:
        return AESGCM(key).encrypt(nonce, plaintext, aad)
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    body = enc.update(plaintext) + enc.finalize()
    return body + enc.tag


def _decrypt(cipher: str, key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    try:
        if cipher == AES_256_GCM:
            return AESGCM(key).decrypt(nonce, sealed, aad)
        body, tag = sealed[:-_TAG_BYTES], sealed[-_TAG_BYTES:]
        dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
        dec.authenticate_additional_data(aad)
        # update() yields bytes before the tag is checked: keep them local until finalize() passes.
        plaintext = dec.update(body)
        return plaintext + dec.finalize()
    except InvalidTag:
        raise KeystoreTampered("the keystore was altered: its authentication tag does not match") from None


def _address_of_key(private_key: bytes) -> str:
    if not isinstance(private_key, bytes | bytearray) or len(private_key) != 32:
        raise ValueError("a secp256k1 private key is 32 bytes")
    try:
        return str(keys.PrivateKey(bytes(private_key)).public_key.to_checksum_address())
    except KeyValidationError:
        raise ValueError("not a valid secp256k1 private key") from None
