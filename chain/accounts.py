"""Development accounts shared by every local backend.

The embedded eth-tester chain is created from the same well-known development mnemonic that
anvil uses by default, so account N has the same address and key on both, and local scripts and
tests need no per-backend configuration. These keys are public: never use them on a real network.
"""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_COUNT = 10

Account.enable_unaudited_hdwallet_features()

_cache: dict[int, LocalAccount] = {}


def dev_account(index: int) -> LocalAccount:
    """Account ``index`` of the development mnemonic (path m/44'/60'/0'/0/index)."""
    if index not in _cache:
        _cache[index] = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return _cache[index]


def dev_accounts(count: int = DEV_ACCOUNT_COUNT) -> list[LocalAccount]:
    return [dev_account(i) for i in range(count)]
