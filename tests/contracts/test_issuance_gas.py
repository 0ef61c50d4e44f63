"""Gas of issuance and redemption with the two tiers' book linked (printed, not asserted against a
clock: `pytest -s tests/contracts/test_issuance_gas.py` shows the figures). The bounds are loose
ceilings that catch a regression toward the unpacked book (81,647 gas a repeat mint, 84,878 a
repeat redemption, with these amounts; about 49,600 a repeat mint without the book)."""

from __future__ import annotations

from web3 import Web3

from chain.accounts import INSTITUTION_DEV_ACCOUNTS, dev_account
from chain.clients.tiers import InstitutionsClient
from chain.clients.token import CashClient, Kind
from chain.manifest import Manifest
from tests.conftest import Actors, identity

BANK_B = dev_account(INSTITUTION_DEV_ACCOUNTS[0])
ERIN = dev_account(8)


def test_mint_and_redemption_gas_with_the_book(
    registered: Actors, w3: Web3, manifest: Manifest, cash: CashClient
) -> None:
    book = InstitutionsClient(w3, manifest, cash.tx)
    op, carol = registered.operator, registered.carol  # carol: tier 2, institution #1's
    figures: dict[str, int] = {}
    figures["first mint (institution #1, tier 2)"] = cash.mint(op, carol.address, 10_00).gas_used
    figures["repeat mint (institution #1, tier 2)"] = cash.mint(op, carol.address, 10_00).gas_used
    cash.tx.transact(carol, cash.cash.functions.approve(op.address, 2**255))
    figures["redemption (institution #1, tier 2)"] = cash.redeem(op, carol.address, 5_00).gas_used

    book.add_institution(registered.regulator, BANK_B.address, b"abc-suzhou".ljust(32, b"\0"))
    book.allocate(registered.regulator, 2, 1_000_00)
    role = cash.cash.functions.ISSUER_ROLE().call()
    cash.tx.transact(registered.admin, cash.cash.functions.grantRole(role, BANK_B.address))
    book.register(BANK_B, ERIN.address, Kind.PERSONAL, 2, 0, identity("erin"))
    figures["first mint (institution #2's first issue)"] = cash.mint(BANK_B, ERIN.address, 10_00).gas_used
    figures["repeat mint (institution #2)"] = cash.mint(BANK_B, ERIN.address, 10_00).gas_used
    cash.tx.transact(ERIN, cash.cash.functions.approve(BANK_B.address, 2**255))
    figures["first redemption (institution #2)"] = cash.redeem(BANK_B, ERIN.address, 5_00).gas_used
    figures["repeat redemption (institution #2)"] = cash.redeem(BANK_B, ERIN.address, 5_00).gas_used
    for name, used in figures.items():
        print(f"{name:45} {used:>9,}")
    assert figures["repeat mint (institution #1, tier 2)"] < 70_000
    assert figures["repeat mint (institution #2)"] < 70_000
    assert figures["repeat redemption (institution #2)"] < 76_000
