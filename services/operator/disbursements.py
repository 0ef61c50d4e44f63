"""Disbursement batches on the service side: reading rows (JSON or CSV), and paying them out.

Rows are validated all together before anything is created: every bad row is reported with its
row number and reason in one 422. Execution pays chunk after chunk (explicit batches) or pushes
claims group after group (Merkle batches), each as an idempotent operation whose idempotency key
is derived from the batch and the chunk, so a restart picks up where it stopped and never pays a
chunk twice (the contract would refuse it anyway).
"""

from __future__ import annotations

import csv
import io
import logging
import re
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_utils import is_checksum_address, to_checksum_address
from sqlalchemy import bindparam, func, select, update

from services.common import webhooks
from services.common.models import ApiKey, Disbursement, DisbursementRow, Operation, Wallet
from services.common.operations import Operations, Submitted, submit
from services.common.problems import Problem

log = logging.getLogger("xcpay.disbursements")

MAX_BATCH_ROWS = 100_000
# Chunks of one batch sent before the receipt of the oldest of them is collected.
WINDOW = 4
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
    out = []
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


def validate_rows(db: Any, raw: list[RawRow], unit: str, identity_hash: Any) -> list[ParsedRow]:
    """Every row checked; all errors raised together as one 422 ``invalid-rows`` problem."""
    if not raw:
        raise Problem(422, "invalid-rows", "The batch has no rows")
    if len(raw) > MAX_BATCH_ROWS:
        raise Problem(422, "too-many-rows", "Too many rows", f"at most {MAX_BATCH_ROWS} rows per batch")
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
            elif r.recipient[2:] not in (r.recipient[2:].lower(), r.recipient[2:].upper()) and not (
                is_checksum_address(r.recipient)
            ):
                error(r, "recipient", "bad address checksum (EIP-55)")
            else:
                recipient = to_checksum_address(r.recipient)
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


def chunk_of(index: int, rows_per_chunk: int) -> int:
    return index // rows_per_chunk


# -- execution ---------------------------------------------------------------------------------


class Runner:
    """Pays approved batches in the background, one chunk (or push group) per operation."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._reasons: dict[bytes, str] | None = None

    def start(self, ref: str) -> None:
        with self._lock:
            if ref in self._running:
                return
            self._running.add(ref)
        threading.Thread(target=self._run, args=(ref,), name=f"disburse-{ref}", daemon=True).start()

    def resume(self) -> None:
        """Start every batch left executing (by a restart, or a node outage)."""
        with self.ops.ctx.db.session() as s:
            refs = list(s.scalars(select(Disbursement.ref).where(Disbursement.status == "executing")))
        for ref in refs:
            self.start(ref)

    def _run(self, ref: str) -> None:
        try:
            self.run(ref)
        except Exception:
            log.exception("disbursement %s stopped", ref)
        finally:
            with self._lock:
                self._running.discard(ref)

    def run(self, ref: str) -> None:
        """Pay every chunk not yet done; record the outcome of each row."""
        db = self.ops.ctx.db
        with db.session() as s:
            batch = s.get(Disbursement, ref)
            assert batch is not None and batch.executed_by is not None
            key = s.get(ApiKey, batch.executed_by)
            push = batch.push == "custodial"
            query = select(DisbursementRow.chunk).where(
                DisbursementRow.ref == ref, DisbursementRow.status == "pending"
            )
            if push:  # only rows the service holds the key of; the others claim themselves
                custodial = select(Wallet.address).where(Wallet.custody == "custodial")
                query = query.where(DisbursementRow.recipient.in_(custodial))
            pending = sorted(set(s.scalars(query)))
        assert key is not None
        kind = "disburse.pay_chunk" if batch.mode == "explicit" else "disburse.push"
        # Chunks are sent with consecutive nonces, up to WINDOW ahead of the oldest receipt not
        # yet collected; outcomes are recorded in chunk order. After a stop, what was sent
        # already is still collected and recorded (its claim released) before the batch stops.
        inflight: deque[tuple[int, Submitted]] = deque()
        stop: tuple[str, str] | None = None

        def collect() -> tuple[str, str] | None:
            chunk, sent = inflight.popleft()
            try:
                op, _ = sent.result()
            except Problem as exc:
                return self._refused(ref, chunk, exc)
            if op.status != "confirmed":  # slow chain: the reconciler finishes it; resume later
                return f"chunk {chunk} is still pending", "executing"
            self.apply_events(ref, op.result or {})
            return None

        def drain() -> tuple[str, str] | None:
            first = None
            while inflight:
                outcome = collect()
                first = first or outcome
            return first

        try:
            for chunk in pending:
                body = {"ref": ref, "chunk": chunk, "custodial_only": push}
                try:
                    sent = submit(self.ops, kind, key, self._chunk_key(key, ref, chunk), body, target=ref)
                except Problem as exc:
                    stop = drain() or self._refused(ref, chunk, exc)
                    if stop is not None:
                        break
                    continue
                inflight.append((chunk, sent))
                if len(inflight) >= WINDOW:
                    stop = collect()
                    if stop is not None:
                        break
            rest = drain()
            stop = stop or rest
        finally:  # an unexpected error: what was sent stays pending, for the reconciler
            for _, sent in inflight:
                sent.release()
        if stop is not None:
            self._stop(ref, stop[0], stop[1])
            return
        with db.session() as s:
            row = s.get(Disbursement, ref)
            assert row is not None
            left = s.scalar(
                select(DisbursementRow.id).where(
                    DisbursementRow.ref == ref, DisbursementRow.status == "pending"
                )
            )
            if row.status == "executing" and (left is None or row.mode == "merkle"):
                row.status = "executed"
                row.error = None
                webhooks.disbursement_finished(s, row)
            s.commit()

    def _refused(self, ref: str, chunk: int, exc: Problem) -> tuple[str, str] | None:
        """What a chunk's refusal means for the batch: None to go on (paid already, outside this
        service: its rows are read from the chain), else why it stops and its status then."""
        if exc.slug == "chunk-already-paid":
            self.settle_from_chain(ref, chunk)
            return None
        # A node outage leaves the chunk's operation pending: the reconciler finishes it and the
        # resumer (every few seconds) carries on; so does a chunk that ran out of gas (it is
        # estimated next time). Anything else needs a person.
        transient = exc.slug in {"node-unavailable", "transaction-timeout", "out-of-gas"}
        return f"chunk {chunk}: {exc.slug}: {exc.detail}", "executing" if transient else "approved"

    def _chunk_key(self, key: ApiKey, ref: str, chunk: int) -> str:
        """The idempotency key of the chunk's next operation.

        The same key while an attempt is pending or confirmed, so a restart never pays a chunk twice;
        a new one after each failed attempt (a failed operation moved nothing: refused before
        signing or reverted on chain), so that a chunk refused during a pause is paid once the
        regulator lifts it instead of replaying the stored refusal for ever (the red team found it).
        """
        base = f"disburse:{ref}:chunk:{chunk}"
        with self.ops.ctx.db.session() as s:
            failed = s.scalar(
                select(func.count(Operation.id)).where(
                    Operation.api_key_id == key.id,
                    Operation.status == "failed",
                    (Operation.idempotency_key == base)
                    | Operation.idempotency_key.startswith(f"{base}:retry:"),
                )
            )
        return base if not failed else f"{base}:retry:{failed}"

    def _stop(self, ref: str, why: str, status: str = "approved") -> None:
        with self.ops.ctx.db.session() as s:
            row = s.get(Disbursement, ref)
            assert row is not None
            row.status, row.error = status, why
            s.commit()

    def reason_name(self, selector: str) -> str:
        if self._reasons is None:
            from eth_utils import function_signature_to_4byte_selector

            self._reasons = {}
            for deployed in self.ops.ctx.manifest.contracts.values():
                for e in deployed.abi:
                    if e.get("type") == "error":
                        sig = f"{e['name']}({','.join(i['type'] for i in e.get('inputs', []))})"
                        self._reasons[function_signature_to_4byte_selector(sig)] = e["name"]
        raw = bytes.fromhex(selector.removeprefix("0x"))
        return self._reasons.get(raw, "0x" + raw.hex())

    def apply_events(self, ref: str, result: dict[str, Any]) -> None:
        """Mark rows paid or exceptions from a confirmed operation's Disbursement events."""
        updates = []
        for e in result.get("events", []):
            if e.get("contract") != "Disbursement":
                continue
            args = e["args"]
            if e["name"] == "Paid":
                updates.append({"i": int(args["index"]), "st": "paid", "rs": None})
            elif e["name"] == "PayoutException":
                updates.append(
                    {"i": int(args["index"]), "st": "exception", "rs": self.reason_name(args["reason"])}
                )
        self._write(ref, updates)

    def settle_from_chain(self, ref: str, chunk: int) -> None:
        """A chunk paid outside this service: read each row's outcome from the contract."""
        ctx = self.ops.ctx
        with ctx.db.session() as s:
            batch = s.get(Disbursement, ref)
            assert batch is not None
            rows = s.scalars(
                select(DisbursementRow).where(DisbursementRow.ref == ref, DisbursementRow.chunk == chunk)
            ).all()
        bid = bytes.fromhex(batch.batch_id[2:])
        updates = []
        for r in rows:
            held = ctx.disburse.exception(bid, r.idx)
            updates.append(
                {"i": r.idx, "st": "exception" if held else "paid", "rs": "unknown" if held else None}
            )
        self._write(ref, updates)

    def _write(self, ref: str, updates: list[dict[str, Any]]) -> None:
        if not updates:
            return
        table = DisbursementRow.__table__
        stmt = (
            update(table)
            .where(table.c.ref == ref, table.c.idx == bindparam("i"))
            .values(status=bindparam("st"), reason=bindparam("rs"))
        )
        with self.ops.ctx.db.session() as s:
            webhooks.disbursement_exceptions(s, ref, (u["i"] for u in updates if u["st"] == "exception"))
            s.connection().execute(stmt, updates)
            done = s.scalar(
                select(func.count(DisbursementRow.id)).where(
                    DisbursementRow.ref == ref, DisbursementRow.status != "pending"
                )
            )
            row = s.get(Disbursement, ref)
            assert row is not None
            row.rows_done = int(done or 0)
            s.commit()
