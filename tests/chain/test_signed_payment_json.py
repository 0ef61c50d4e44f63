"""``SignedPayment.from_json``: the stored or uploaded form back to the payment the contract gets,
addresses in their EIP-55 form (through the cached ``checksum``, issue 19) whatever case they came in."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from chain.clients.hardwallet import SignedPayment


def _json(card: str, merchant: str) -> dict[str, object]:
    return {
        "card": card,
        "merchant": merchant,
        "amount": 100,
        "counter": 7,
        "time": 1_700_000_000,
        "signature": "0x" + "ab" * 65,
    }


class TestFromJson:
    def test_gives_the_eip55_form_of_lower_and_upper_case_addresses(self) -> None:
        card, merchant = Account.create().address, Account.create().address
        for c, m in ((card.lower(), "0x" + merchant[2:].upper()), (card, merchant)):
            p = SignedPayment.from_json(_json(c, m))
            assert p.payment.card == to_checksum_address(card) == card
            assert p.payment.merchant == merchant
            assert (p.payment.amount, p.payment.counter, p.payment.time) == (100, 7, 1_700_000_000)
            assert p.signature == bytes.fromhex("ab" * 65)

    def test_round_trips_through_to_json(self) -> None:
        data = _json(Account.create().address, Account.create().address)
        assert SignedPayment.from_json(data).to_json() == data

    @pytest.mark.parametrize("bad", ["0x1234", "0x" + "zz" * 20])
    def test_refuses_what_is_not_an_address_as_eth_utils_does(self, bad: str) -> None:
        with pytest.raises(ValueError):
            to_checksum_address(bad)
        with pytest.raises(ValueError):
            SignedPayment.from_json(_json(bad, Account.create().address))
