"""The strict EIP-681 grammar of tests/services/eip681.py reads the standard's own examples and
refuses what the grammar does not produce (the keys our URIs carried before, among them), and a
code made before the change is answered without them."""

from __future__ import annotations

import pytest

from services.operator.families.paycodes.service import payment_uri, strict_uri
from tests.services import eip681

TOKEN = "0x89205A3A3b2A69De6Dbf7f01ED13B2108B2c43e7"
SHOP = "0x8e23Ee67d1332aD560396262C48ffbB01f93d052"


@pytest.mark.parametrize(
    "uri",
    [  # the examples of EIP-681 itself
        "ethereum:0xfb6916095ca1df60bb79Ce92ce3ea74c37c5d359?value=2.014e18",
        "ethereum:0x89205a3a3b2a69de6dbf7f01ed13b2108b2c43e7/transfer?address=0x8e23ee67d1332ad560396262c48ffbb01f93d052&uint256=1",
        "ethereum:0x89205a3a3b2a69de6dbf7f01ed13b2108b2c43e7@1/transfer?address=0x8e23ee67d1332ad560396262c48ffbb01f93d052&uint256=1",
        "ethereum:pay-0xfb6916095ca1df60bb79Ce92ce3ea74c37c5d359?value=2.014e18&gasLimit=21000&gasPrice=50",
    ],
)
def test_the_grammar_reads_the_standards_examples(uri: str) -> None:
    eip681.parse(uri)


@pytest.mark.parametrize("extra", ["mcc=5812", "ref=bill-7", "code=abc", "uint256=1 2", "address"])
def test_the_grammar_refuses_keys_and_values_it_does_not_produce(extra: str) -> None:
    with pytest.raises(ValueError, match="not an EIP-681 request"):
        eip681.parse(f"ethereum:{TOKEN}@31337/transfer?address={SHOP}&{extra}")


def test_our_uris_are_strict_eip681() -> None:
    for amount in (None, 1, 2_350):
        parsed = eip681.parse(payment_uri(TOKEN, 31337, SHOP, amount))
        assert (parsed.target, parsed.chain_id, parsed.function) == (TOKEN, 31337, "transfer")
        assert parsed.parameters[0] == ("address", SHOP)


def test_a_code_stored_before_strict_eip681_is_answered_strictly() -> None:
    old = f"ethereum:{TOKEN}@31337/transfer?address={SHOP}&uint256=2350&mcc=5812&ref=bill%2F7&code=x_y-z"
    with pytest.raises(ValueError):
        eip681.parse(old)
    assert strict_uri(old) == payment_uri(TOKEN, 31337, SHOP, 2350)
    assert strict_uri(f"ethereum:{TOKEN}@31337/transfer?address={SHOP}&mcc=1&code=c") == payment_uri(
        TOKEN, 31337, SHOP, None
    )
