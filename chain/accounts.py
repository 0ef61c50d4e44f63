"""Development accounts shared by every local backend.

The in-process eth-tester chain and the local anvil node are created from the same well-known
development mnemonic (anvil's default), so account N has the same address and key on both, and
local scripts and tests need no per-backend configuration. Accounts 0, 1 and 2 are the deployer,
the operator service and the regulator; account 10 is the hard-wallet gateway's own key (above
the accounts 3-9 the tests use as people and merchants). These keys are public: never use them on
a real network.
"""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_COUNT = 14
GATEWAY_DEV_ACCOUNT = 10
# The second regulator key (the checker of court orders, issue 22): a key of its own.
SECOND_REGULATOR_DEV_ACCOUNT = 11
# The signing keys of operator institutions #2 and #3 (two-tier operation, issue 24); institution
# #1 signs with the operator's key (account 1).
INSTITUTION_DEV_ACCOUNTS = (12, 13)

Account.enable_unaudited_hdwallet_features()

_cache: dict[int, LocalAccount] = {}


def dev_account(index: int) -> LocalAccount:
    """Account ``index`` of the development mnemonic (path m/44'/60'/0'/0/index)."""
    if index not in _cache:
        _cache[index] = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return _cache[index]


def dev_accounts(count: int = DEV_ACCOUNT_COUNT) -> list[LocalAccount]:
    return [dev_account(i) for i in range(count)]
