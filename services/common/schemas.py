"""Shared request/response types: addresses, amounts in fen, operations."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from eth_utils import is_checksum_address, to_checksum_address
from pydantic import AfterValidator, BaseModel, Field

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _address(value: str) -> str:
    if not _HEX_ADDRESS.match(value):
        raise ValueError("not an address: expected 0x followed by 40 hex digits")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ValueError("bad address checksum (EIP-55)")
    return to_checksum_address(value)


Address = Annotated[
    str, Field(examples=["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]), AfterValidator(_address)
]
# Amounts are integers in fen (1 yuan = 100 fen), positive and below 2**255.
AmountFen = Annotated[int, Field(strict=True, gt=0, lt=2**255, examples=[10_000])]


class OperationOut(BaseModel):
    id: str
    kind: str
    status: str
    tx_hash: str | None = None
    block_number: int | None = None
    request: dict[str, Any]
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime


def respond(op: Any, response: Any, *, done_status: int = 200) -> OperationOut:
    """An operation as the response body: ``done_status`` when confirmed, 202 while pending."""
    response.status_code = done_status if op.status == "confirmed" else 202
    return OperationOut.model_validate(op, from_attributes=True)
