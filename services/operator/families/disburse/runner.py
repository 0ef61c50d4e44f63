"""Paying approved disbursement batches in the background.

Execution pays chunk after chunk (explicit batches) or pushes claims group after group (Merkle
batches), each as an idempotent operation whose idempotency key is derived from the batch and the
chunk, so a restart picks up where it stopped and never pays a chunk twice (the contract would
refuse it anyway). Each operation is built by ``builders.py`` (``disburse.pay_chunk`` or
``disburse.push``) and sent by the Operations pipeline.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

from sqlalchemy import bindparam, func, select, update

from services.common.models import ApiKey, Operation, Wallet
from services.common.operations import Operations, Submitted, submit
from services.common.problems import Problem
from services.operator.families.disburse import webhooks
from services.operator.families.disburse.models import Disbursement, DisbursementRow

log = logging.getLogger("xcpay.disbursements")

# Chunks of one batch sent before the receipt of the oldest of them is collected.
WINDOW = 4


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
