"""The direct encoder of the row-shaped calls (``chain.sender.fast_encode``) gives eth_abi's bytes,
and leaves to eth_abi every value it does not plainly accept (so web3's errors stay the answer)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account

from chain.sender import fast_encode

PAY_CHUNK = ["bytes32", "uint256", "(address,uint96)[]"]
REGISTER = ["(address,uint8,uint8,uint16,bytes32)[]"]
ADD_CHUNKS = ["bytes32", "(address,uint96)[][]"]


def _address(rng: random.Random, case: str) -> str:
    a = Account.create().address
    return {"checksum": a, "lower": a.lower(), "upper": "0x" + a[2:].upper()}[case]


@pytest.mark.parametrize("rows", [0, 1, 7, 200])
def test_the_bytes_are_eth_abi_s(rows: int) -> None:
    rng = random.Random(rows)
    cases = ("checksum", "lower", "upper")
    pay = [
        rng.randbytes(32),
        rng.randrange(2**256),
        [(_address(rng, rng.choice(cases)), rng.randrange(2**96)) for _ in range(rows)],
    ]
    assert fast_encode(PAY_CHUNK, pay) == encode(PAY_CHUNK, pay)
    reg = [
        [
            (
                _address(rng, "checksum"),
                rng.randrange(4),
                rng.randrange(256),
                rng.randrange(2**16),
                rng.randbytes(32),
            )
            for _ in range(rows)
        ]
    ]
    assert fast_encode(REGISTER, reg) == encode(REGISTER, reg)
    chunks = [
        rng.randbytes(32),
        [
            [(_address(rng, "lower"), rng.randrange(2**96)) for _ in range(rng.randrange(rows + 1))]
            for _ in range(rows % 6)
        ],
    ]
    assert fast_encode(ADD_CHUNKS, chunks) == encode(ADD_CHUNKS, chunks)
    flags = [[rng.random() < 0.5 for _ in range(rows)], [rng.randrange(2**8) for _ in range(rows)]]
    assert fast_encode(["bool[]", "uint8[]"], flags) == encode(["bool[]", "uint8[]"], flags)


def _mangled(address: str) -> str:
    i = next(i for i, c in enumerate(address) if i >= 2 and c.isalpha())
    return address[:i] + address[i].swapcase() + address[i + 1 :]


@pytest.mark.parametrize(
    "types,args",
    [
        (PAY_CHUNK, [bytes(32), 1, [(_mangled(Account.create().address), 1)]]),  # bad EIP-55 checksum
        (PAY_CHUNK, [bytes(32), 1, [("0x1234", 1)]]),  # not an address
        (PAY_CHUNK, [bytes(32), 1, [(Account.create().address, 2**96)]]),  # out of uint96
        (PAY_CHUNK, [bytes(32), -1, []]),  # negative
        (PAY_CHUNK, [bytes(31), 1, []]),  # short bytes32
        (PAY_CHUNK, [bytes(32), True, []]),  # a bool for a uint
        (PAY_CHUNK, [bytes(32), 1, [(Account.create().address, 1, 2)]]),  # a row too wide
        (ADD_CHUNKS, [bytes(32), [[(Account.create().address, 2**96)]]]),  # out of uint96, nested
        (ADD_CHUNKS, [bytes(32), [(Account.create().address, 1)]]),  # a row where a chunk belongs
        (["uint256[][]"], [[[1]]]),  # nested arrays of anything but tuples
        (["string"], ["text"]),  # a dynamic type it does not handle
        (["(address,bytes)[]"], [[]]),
    ],
)
def test_anything_not_plainly_valid_is_left_to_eth_abi(types: list[str], args: list[Any]) -> None:
    assert fast_encode(types, args) is None
