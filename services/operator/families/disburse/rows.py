"""Payroll rows as people send them (a JSON list or a CSV upload), checked all together.

Rows are validated all together before anything is created: every bad row is reported with its
row number and reason in one 422. Its own module because voucher programmes take their
recipients in the same shape (``services/operator/families/vouchers/service.py``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_hash.auto import keccak
from sqlalchemy import select

from services.common.models import Wallet
from services.common.problems import Problem

MAX_BATCH_ROWS = 100_000
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_YUAN = re.compile(r"^\d+(\.\d{1,2})?$")
_FEN = re.compile(r"^\d+$")


@dataclass(frozen=True)
class ParsedRow:
    recipient: str
    amount_fen: int


@dataclass(frozen=True)
class RawRow:
    row: int  # 1-based data row
    recipient: str
    identity: str
    amount: str
    line: int | None = None  # CSV line (the header is line 1)


def amount_in_fen(raw: str, unit: str) -> int:
    """``raw`` in ``unit`` ("fen": a whole number; "yuan": at most two decimals) as fen."""
    text = raw.strip()
    if unit == "fen":
        if not _FEN.match(text):
            raise ValueError(f"{raw!r} is not a whole number of fen")
        value = int(text)
    else:
        if not _YUAN.match(text):
            raise ValueError(f"{raw!r} is not an amount in yuan with at most two decimals")
        try:
            value = int(Decimal(text) * 100)
        except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
            raise ValueError(f"{raw!r} is not a number") from exc
    if value <= 0:
        raise ValueError("the amount must be positive")
    if value >= 2**96:
        raise ValueError("the amount is too large")
    return value


def rows_from_json(rows: list[dict[str, Any]]) -> list[RawRow]:
    out = []
    for i, r in enumerate(rows, start=1):
        amount = r.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int | str | float | None):
            amount = "?"
        out.append(
            RawRow(
                row=i,
                recipient=str(r.get("recipient") or ""),
                identity=str(r.get("identity") or ""),
                amount="" if amount is None else str(amount),
            )
        )
    return out


def _parsed_lines(reader: Any) -> Iterator[list[str]]:
    """The reader's lines, with a line it cannot parse (a field beyond the csv module's field
    limit of 131,072 characters, for one) as a 422 naming the line rather than a 500."""
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise Problem(
                422, "invalid-csv", "The CSV cannot be read", f"line {reader.line_num}: {exc}"
            ) from None
        yield cells


def rows_from_csv(text: str) -> tuple[list[RawRow], str]:
    """Rows of a CSV with a header: ``recipient`` or ``identity``, and ``amount_fen`` or
    ``amount_yuan`` (the column name says the unit; a bare ``amount`` is refused as ambiguous)."""
    reader = csv.reader(io.StringIO(text))
    lines = _parsed_lines(reader)
    try:
        header = [h.strip().lower() for h in next(lines)]
    except StopIteration:
        raise Problem(422, "invalid-csv", "The CSV is empty", "expected a header line") from None
    units = [h for h in header if h in {"amount_fen", "amount_yuan"}]
    if "amount" in header or len(units) != 1:
        raise Problem(
            422,
            "ambiguous-amount-unit",
            "Say which unit the amounts are in",
            "name exactly one amount column: amount_fen (whole fen) or amount_yuan (yuan, two decimals)",
        )
    if not {"recipient", "identity"} & set(header):
        raise Problem(422, "invalid-csv", "No recipient column", "name a recipient or an identity column")
    unknown = set(header) - {"recipient", "identity", "amount_fen", "amount_yuan"}
    if unknown:
        raise Problem(422, "invalid-csv", "Unknown CSV columns", f"unknown columns: {sorted(unknown)}")
    out: list[RawRow] = []
    for cells in lines:
        if not any(c.strip() for c in cells):
            continue  # blank lines are not rows
        if len(cells) != len(header):  # reported by validate_rows as a malformed row
            out.append(RawRow(row=len(out) + 1, recipient="", identity="", amount="", line=reader.line_num))
            continue
        values = dict(zip(header, cells, strict=True))
        out.append(
            RawRow(
                row=len(out) + 1,
                recipient=values.get("recipient", "").strip(),
                identity=values.get("identity", "").strip(),
                amount=values.get(units[0], "").strip(),
                line=reader.line_num,
            )
        )
    return out, units[0].removeprefix("amount_")


def validate_rows(
    db: Any,
    raw: list[RawRow],
    unit: str,
    identity_hash: Any,
    live: Callable[[list[str]], set[str]] | None = None,
    retired: Callable[[list[str]], dict[str, str]] | None = None,
) -> list[ParsedRow]:
    """Every row checked; all errors raised together as one 422 ``invalid-rows`` problem.

    ``live(addresses)`` (when given) says which personal wallets found by identity count: the
    chain's ``personalWalletOf`` rule counts only registered, unretired personal wallets, so a
    wallet whose registration the chain refused, or one recovered to a successor, never receives
    a row (and never makes the identity ambiguous). ``retired(addresses)`` (when given) names the
    retired wallets among the rows' addresses with their successors: a row addressed to a retired
    wallet is a row error ``wallet-retired`` naming it. Each is asked once, for every distinct
    address together (batched chain reads: one read per row made a 10,000-row payroll's creation
    take minutes on a loaded machine)."""
    if not raw:
        raise Problem(422, "invalid-rows", "The batch has no rows")
    if len(raw) > MAX_BATCH_ROWS:
        raise Problem(422, "too-many-rows", "Too many rows", f"at most {MAX_BATCH_ROWS} rows per batch")
    # Each well-formed address in its EIP-55 form, once (a keccak each).
    checksummed = {r.recipient: eip55(r.recipient) for r in raw if _ADDRESS.match(r.recipient)}
    heirs: dict[str, str] = {}
    if retired is not None:
        heirs = retired(list(checksummed.values()))

    hashes = {r.identity: identity_hash(r.identity) for r in raw if r.identity}
    # An identity resolves only among personal wallets (a merchant or institution registered with
    # someone's identity never receives their pay), and to nobody when several personal wallets
    # share it: registering a wallet with a victim's identity must not divert the victim's money.
    by_hash: dict[str, list[str]] = {}
    wanted = list(set(hashes.values()))
    with db.session() as s:
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            query = select(Wallet.identity_hash, Wallet.address).where(
                Wallet.identity_hash.in_(part), Wallet.kind == "personal"
            )
            for h, a in s.execute(query):
                by_hash.setdefault(h, []).append(a)
    if live is not None and by_hash:
        alive = live([a for found in by_hash.values() for a in found])
        by_hash = {h: [a for a in found if a in alive] for h, found in by_hash.items()}
    errors: list[dict[str, Any]] = []
    parsed: list[ParsedRow] = []
    seen: dict[str, int] = {}

    def error(r: RawRow, field: str, reason: str, code: str | None = None) -> None:
        entry: dict[str, Any] = {"row": r.row, "field": field, "reason": reason}
        if code is not None:
            entry["code"] = code
        if r.line is not None:
            entry["line"] = r.line
        errors.append(entry)

    for r in raw:
        recipient = ""
        if not r.recipient and not r.identity and not r.amount:
            error(r, "row", "malformed row: not one cell per column, or empty")
            continue
        if r.recipient and r.identity:
            error(r, "recipient", "give a recipient address or an identity, not both")
        elif r.recipient:
            if not _ADDRESS.match(r.recipient):
                error(r, "recipient", f"{r.recipient!r} is not an address")
            else:
                recipient = checksummed[r.recipient]
                body = r.recipient[2:]
                if body not in (body.lower(), body.upper()) and r.recipient != recipient:
                    error(r, "recipient", "bad address checksum (EIP-55)")
                    recipient = ""
                elif (heir := heirs.get(recipient)) is not None:
                    reason = f"{recipient} was retired by a recovery: its successor is {heir}"
                    error(r, "recipient", reason, code="wallet-retired")
                    recipient = ""
        elif r.identity:
            found = by_hash.get(hashes[r.identity], [])
            if not found:
                error(r, "identity", "no personal wallet is registered with this identity")
            elif len(found) > 1:
                reason = (
                    f"identity-ambiguous: {len(found)} personal wallets are registered with this identity"
                )
                error(r, "identity", reason, code="identity-ambiguous")
            else:
                recipient = found[0]
        else:
            error(r, "recipient", "missing: give a recipient address or an identity")
        try:
            amount = amount_in_fen(r.amount, unit)
        except ValueError as exc:
            error(r, "amount", str(exc))
            amount = 0
        if recipient:
            if recipient in seen:
                error(r, "recipient", f"{recipient} is already in row {seen[recipient]}")
            else:
                seen[recipient] = r.row
        if recipient and amount:
            parsed.append(ParsedRow(recipient, amount))
    if errors:
        raise Problem(
            422,
            "invalid-rows",
            "Some rows are invalid; nothing was created",
            f"{len(errors)} error(s) in {len(raw)} rows",
            errors=errors,
        )
    return parsed


def eip55(address: str) -> str:
    """The EIP-55 (checksummed) form of a ``0x`` + 40 hex digits address, with one keccak:
    eth_utils' ``is_checksum_address`` then ``to_checksum_address`` took two, behind layers of
    checks, for ~10% of a payroll's service time."""
    lower = address[2:].lower()
    digest = keccak(lower.encode()).hex()
    return "0x" + "".join(c.upper() if digest[i] in "89abcdef" else c for i, c in enumerate(lower))


def chunk_of(index: int, rows_per_chunk: int) -> int:
    return index // rows_per_chunk
