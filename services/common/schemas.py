"""Shared request/response types: addresses, amounts in fen, operations."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from chain.events import checksum
from chain.merkle import MerkleTree
from services.common.problems import Problem

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _nul_free(value: Any, where: str = "body") -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where}: a text may not hold a NUL character")
    elif isinstance(value, dict):
        for k, v in value.items():
            _nul_free(k, where)
            _nul_free(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _nul_free(v, f"{where}[{i}]")


class Strict(BaseModel):
    """Every request body of both services: unknown fields refused, and no text with a NUL
    character anywhere (PostgreSQL cannot store one; refusing it here, before the intent is
    recorded, means such a request never reaches the chain)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        _nul_free(data)
        return data


def _address(value: str) -> str:
    """The EIP-55 form of a well-formed address; a mixed-case one must already be that form.

    One cached keccak (``chain.events.checksum``) serves both the check and the answer: a batch of
    100 card payments names a handful of cards and one merchant, and the two uncached keccaks per
    address (``is_checksum_address`` then ``to_checksum_address``) were a tenth of the gateway's
    CPU per upload (issue 19)."""
    if not _HEX_ADDRESS.match(value):
        raise ValueError("not an address: expected 0x followed by 40 hex digits")
    body = value[2:]
    canonical = checksum(value)
    if body != body.lower() and body != body.upper() and canonical != value:
        raise ValueError("bad address checksum (EIP-55)")
    return canonical


Address = Annotated[
    str, Field(examples=["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]), AfterValidator(_address)
]


def _ecdsa_signature(value: str) -> str:
    """A 65-byte signature as given; a 64-byte EIP-2098 compact one (r || yParity·2²⁵⁵ + s) expanded
    to r || s || v, because the contracts' OpenZeppelin 5 ``ECDSA``/``SignatureChecker`` read only
    65 bytes: without this, a compact signature passed validation and then failed on chain."""
    raw = bytes.fromhex(value[2:])
    if len(raw) == 65:
        return value
    vs = int.from_bytes(raw[32:], "big")
    s, v = vs & ((1 << 255) - 1), 27 + (vs >> 255)
    return "0x" + (raw[:32] + s.to_bytes(32, "big") + bytes([v])).hex()


EcdsaSignature = Annotated[
    str,
    Field(
        pattern=r"^0x([0-9a-fA-F]{2}){64,65}$",
        description="65 bytes (r || s || v), or 64 (EIP-2098 compact: r || yParity·2²⁵⁵ + s), which is "
        "expanded to 65 before it is sent",
    ),
    AfterValidator(_ecdsa_signature),
]
# Amounts are integers in fen (1 yuan = 100 fen), positive and below 2**255.
AmountFen = Annotated[int, Field(strict=True, gt=0, lt=2**255, examples=[10_000])]
# An amount a contract takes as uint128 (prepaid prices, collective tiers and proposals). A
# ``Field(lt=...)`` default beside ``AmountFen`` does not narrow it: the narrower type must be its own.
AmountFen128 = Annotated[int, Field(strict=True, gt=0, lt=2**128, examples=[10_000])]

FIRST_DAY, LAST_DAY = date(1970, 1, 2), date(9999, 12, 30)


def _plausible_day(day: date) -> date:
    # A Beijing day's bounds are computed in UTC (eight hours earlier): 0001-01-01 or 9999-12-31
    # would overflow Python's datetime and answer 500 instead of 422.
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"a day from {FIRST_DAY} to {LAST_DAY}")
    return day


Day = Annotated[date, AfterValidator(_plausible_day)]
"""A calendar day in a path or query (statements, settlement files, reports)."""


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


def merkle_dump(tree: MerkleTree, root: str | None, filename: str) -> JSONResponse:
    """A batch's or campaign's tree as ``StandardMerkleTree``'s ``dump()`` JSON (``format``
    ``standard-v1``): ``StandardMerkleTree.load`` gives the root the chain holds and every proof.

    ``root`` is the root committed on chain; a tree built before the service used the standard
    layout has another root (its stored proofs still verify) and cannot be given in this format,
    so it is a 409 rather than a dump whose root the chain does not know.
    """
    if root is None:
        raise Problem(409, "tree-not-committed", "The tree's root is not committed on chain yet")
    if root.lower() != "0x" + tree.root.hex():
        raise Problem(
            409,
            "tree-not-standard",
            "This tree predates the standard Merkle tree layout",
            f"the committed root {root} is not the StandardMerkleTree root of the leaves",
        )
    return JSONResponse(tree.dump(), headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def event_arg(op: Any, event: str, arg: str) -> int | None:
    """An integer argument of the first ``event`` of a confirmed operation's result (the id the
    chain gave what the operation created), or None while the operation is not confirmed."""
    if op.status != "confirmed" or not op.result:
        return None
    for e in op.result.get("events", []):
        if e["name"] == event:
            return int(e["args"][arg])
    return None


def example(body: dict[str, Any], **config: Any) -> ConfigDict:
    """A request model's config with one example body (shown and sent by /docs' "Try it out");
    unknown fields stay refused (``Strict``)."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": [body]}, **config)  # type: ignore[typeddict-item]
