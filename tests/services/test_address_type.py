"""The shared ``Address`` request type: EIP-55 checked and normalised with one cached keccak
(issue 19), answering exactly as eth_utils' ``is_checksum_address``/``to_checksum_address`` do."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import is_checksum_address, to_checksum_address
from pydantic import BaseModel, ValidationError

from services.common.schemas import Address


class Body(BaseModel):
    who: Address


# fixed keys: pytest-xdist workers must collect the same test ids
ADDRESSES = [Account.from_key((i + 1).to_bytes(32, "big")).address for i in range(20)] + [
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x0000000000000000000000000000000000000000",
]


def _flip_one_letter(address: str) -> str:
    """``address`` with the case of one of its letters changed: a wrong EIP-55 checksum."""
    for i, c in enumerate(address[2:], start=2):
        if c.isalpha():
            return address[:i] + c.swapcase() + address[i + 1 :]
    raise AssertionError("no letter")


class TestAddress:
    @pytest.mark.parametrize("address", ADDRESSES)
    def test_lower_upper_and_checksummed_forms_give_the_eip55_form(self, address: str) -> None:
        for given in (address, address.lower(), "0x" + address[2:].upper()):
            assert Body(who=given).who == to_checksum_address(address) == address

    @pytest.mark.parametrize("address", [a for a in ADDRESSES if any(c.isalpha() for c in a[2:])])
    def test_refuses_a_mixed_case_address_with_a_wrong_checksum(self, address: str) -> None:
        wrong = _flip_one_letter(address)
        assert not is_checksum_address(wrong)
        assert wrong.lower() != wrong and "0x" + wrong[2:].upper() != wrong
        with pytest.raises(ValidationError, match=r"bad address checksum \(EIP-55\)"):
            Body(who=wrong)
        # asked again (now cached), still refused
        with pytest.raises(ValidationError, match=r"bad address checksum \(EIP-55\)"):
            Body(who=wrong)

    @pytest.mark.parametrize("bad", ["0x1234", "70997970C51812dc3A010C7d01b50e0d17dc79C8", "0x" + "g" * 40])
    def test_refuses_what_is_not_an_address(self, bad: str) -> None:
        with pytest.raises(ValidationError, match="not an address"):
            Body(who=bad)
