"""A strict EIP-681 parser, written from the standard's ABNF (eips.ethereum.org/EIPS/eip-681):

    request          = schema_prefix target_address [ "@" chain_id ] [ "/" function_name ] [ "?" parameters ]
    schema_prefix    = "ethereum" ":" [ "pay-" ]
    target_address   = ethereum_address
    chain_id         = 1*DIGIT
    function_name    = STRING
    ethereum_address = ( "0x" 40*HEXDIG ) / ENS_NAME
    parameters       = parameter *( "&" parameter )
    parameter        = key "=" value
    key              = "value" / "gas" / "gasLimit" / "gasPrice" / TYPE
    value            = number / ethereum_address / STRING
    number           = [ "-" / "+" ] *DIGIT [ "." 1*DIGIT ] [ ( "e" / "E" ) [ 1*DIGIT ] ]

TYPE is a Solidity ABI type name; STRING is URL-encoded, its delimiters and "%" percent-encoded.
Strict: a key outside ``key`` (``mcc``, ``ref``, ``code``…) is a ValueError, as any parser that
follows the grammar refuses it. It is the test's own reading of the standard, not our code's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_M = "|".join(str(8 * i) for i in range(1, 33))  # 8..256
_TYPE = (
    rf"(?:address|bool|string|function|bytes(?:[1-9]|[12][0-9]|3[0-2])?|u?int(?:{_M})?"
    rf"|u?fixed(?:(?:{_M})x(?:[1-9]|[1-7][0-9]|80))?)(?:\[[0-9]*\])*"
)
_KEY = rf"(?:value|gas|gasLimit|gasPrice|{_TYPE})"
_STRING = r"(?:[A-Za-z0-9\-._~!$'()*+,;:@]|%[0-9A-Fa-f]{2})+"
_ENS = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}"
_ADDRESS = rf"(?:0x[0-9A-Fa-f]{{40,}}|{_ENS})"
_NUMBER = r"[-+]?[0-9]*(?:\.[0-9]+)?(?:[eE][0-9]*)?"
_VALUE = rf"(?:{_NUMBER}|{_ADDRESS}|{_STRING})"
_PARAMETER = rf"{_KEY}={_VALUE}"
REQUEST = re.compile(
    rf"ethereum:(?:pay-)?(?P<target>{_ADDRESS})(?:@(?P<chain>[0-9]+))?(?:/(?P<function>{_STRING}))?"
    rf"(?:\?(?P<parameters>{_PARAMETER}(?:&{_PARAMETER})*))?"
)


@dataclass(frozen=True)
class Eip681:
    target: str
    chain_id: int | None
    function: str | None
    parameters: list[tuple[str, str]]


def parse(uri: str) -> Eip681:
    """``uri`` read by the grammar above; ValueError if the grammar does not produce it."""
    m = REQUEST.fullmatch(uri)
    if m is None:
        raise ValueError(f"not an EIP-681 request: {uri!r}")
    params = [tuple(p.split("=", 1)) for p in m["parameters"].split("&")] if m["parameters"] else []
    return Eip681(
        target=m["target"],
        chain_id=int(m["chain"]) if m["chain"] else None,
        function=m["function"],
        parameters=[(k, v) for k, v in params],
    )
