"""The service's signing keys and the custodial wallets' keystores.

Keys at rest are Ethereum v3 keystores (scrypt + AES-128-CTR, eth-account). The operator's and
the regulator's come from files named in the settings; custodial wallets' keystores are stored
encrypted in the database, decrypted on use and cached in memory, never logged.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain.accounts import GATEWAY_DEV_ACCOUNT, SECOND_REGULATOR_DEV_ACCOUNT, dev_account
from services.common.settings import Settings


class KeystoreError(Exception):
    """A keystore could not be opened (wrong password, unreadable file)."""


def _password(value: str | None, file: Path | None) -> str:
    if value:
        return value
    if file is not None:
        return file.read_text().strip()
    raise KeystoreError("no password given")


def load_keystore(path: Path, password: str) -> LocalAccount:
    try:
        key = Account.decrypt(json.loads(path.read_text()), password)
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"cannot open keystore {path}: {exc}") from None
    return Account.from_key(key)


LOCAL_SERVICE_ACCOUNTS = {
    "operator": 1,
    "regulator": 2,
    "gateway": GATEWAY_DEV_ACCOUNT,
    "second_regulator": SECOND_REGULATOR_DEV_ACCOUNT,  # the second regulator key (court orders' checker)
    "admin": 0,  # the contracts' admin (the deployer): sets the personal wallet limit
}


def service_account(settings: Settings, role: str) -> LocalAccount:
    """The operator's, regulator's or gateway's key; development accounts 1, 2 and 10 in the local
    profile (each service signs with its own key: no shared nonce)."""
    keystore: Path | None = getattr(settings, f"{role}_keystore")
    if keystore is None:
        if settings.profile != "local":
            raise KeystoreError(f"XCPAY_{role.upper()}_KEYSTORE is required outside the local profile")
        return dev_account(LOCAL_SERVICE_ACCOUNTS[role])
    password = _password(getattr(settings, f"{role}_password"), getattr(settings, f"{role}_password_file"))
    return load_keystore(keystore, password)


class Custody:
    """Creates custodial wallet keys and opens their keystores."""

    def __init__(self, password: str, scrypt_n: int) -> None:
        self._password = password
        self._n = scrypt_n
        self._cache: dict[str, LocalAccount] = {}
        self._lock = threading.Lock()

    def create(self) -> tuple[str, dict[str, Any]]:
        account = Account.create()
        keystore = Account.encrypt(account.key, self._password, kdf="scrypt", iterations=self._n)
        with self._lock:
            self._cache[account.address] = account
        return account.address, keystore

    def open(self, address: str, keystore: dict[str, Any]) -> LocalAccount:
        with self._lock:
            cached = self._cache.get(address)
        if cached is not None:
            return cached
        try:
            account = Account.from_key(Account.decrypt(keystore, self._password))
        except ValueError as exc:
            raise KeystoreError(f"cannot open the keystore of {address}: {exc}") from None
        with self._lock:
            self._cache[address] = account
        return account
