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
        # yet collected; a collector thread records the outcomes in chunk order meanwhile, so the
        # node's answers and the database's disk flushes of one side overlap the other's work
        # (one thread doing both spent most of a chunk's time waiting on one or the other). After
        # a stop, what was sent already is still collected and recorded (its claim released)
        # before the batch stops.
        collector = _Collector(self, ref)
        stop: tuple[str, str] | None = None
        try:
            for chunk in pending:
                if collector.stopped():
                    break
                body = {"ref": ref, "chunk": chunk, "custodial_only": push}
                try:
                    sent = submit(self.ops, kind, key, self._chunk_key(key, ref, chunk), body, target=ref)
                except Problem as exc:
                    stop = collector.drain() or self._refused(ref, chunk, exc)
                    if stop is not None:
                        break
                    continue
                collector.add(chunk, sent)  # waits while WINDOW are in flight
            rest = collector.drain()
            stop = stop or rest
        finally:  # an unexpected error: what was sent stays pending, for the reconciler
            collector.close()
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

    def collect(self, ref: str, chunk: int, sent: Submitted) -> tuple[str, str] | None:
        """Wait for one sent chunk's outcome and record it; None to go on, else why the batch
        stops and its status then."""
        try:
            op, _ = sent.result()
        except Problem as exc:
            return self._refused(ref, chunk, exc)
        if op.status != "confirmed":  # slow chain: the reconciler finishes it; resume later
            return f"chunk {chunk} is still pending", "executing"
        self.apply_events(ref, op.result or {})
        return None

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
        """Record rows' outcomes (and queue their exception webhooks) in a deferred commit: the
        chunk's operation is confirmed durably already, and should a crash undo this commit the
        resumed batch finds those rows pending and applies the same operation's stored events again
        (its chunk key replays the confirmed operation); the next durable commit (the next chunk's
        signed bytes) flushes it. One disk flush less per chunk."""
        if not updates:
            return
        table = DisbursementRow.__table__
        stmt = (
            update(table)
            .where(table.c.ref == ref, table.c.idx == bindparam("i"))
            .values(status=bindparam("st"), reason=bindparam("rs"))
        )
        with self.ops.ctx.db.deferred_session() as s:
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


class _Collector:
    """Collects a batch's sent chunks in order on a thread of its own (``Runner.collect``), each
    once the next is sent, at most ``WINDOW`` in flight. The first stop reason is kept, and
    everything sent is still collected after it (as one thread collecting after a stop did); an
    unexpected error stops the collection and is raised again to the sender, whose remaining sent
    chunks are released."""

    def __init__(self, runner: Runner, ref: str) -> None:
        self._runner, self._ref = runner, ref
        self._queue: deque[tuple[int, Submitted]] = deque()
        self._cond = threading.Condition()
        self._busy = False  # a chunk taken from the queue and being collected
        self._stop: tuple[str, str] | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._draining = False
        self._thread = threading.Thread(target=self._loop, name=f"disburse-collect-{ref}", daemon=True)
        self._thread.start()

    def stopped(self) -> bool:
        """Whether a collected chunk stopped the batch (or the collection failed)."""
        with self._cond:
            self._raise()
            return self._stop is not None

    def add(self, chunk: int, sent: Submitted) -> None:
        with self._cond:
            self._queue.append((chunk, sent))
            self._cond.notify_all()
            while len(self._queue) + self._busy >= WINDOW and self._error is None:
                self._cond.wait()
            self._raise()

    def drain(self) -> tuple[str, str] | None:
        """Wait until everything added is collected; the first stop reason, if any (cleared)."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()
            while (self._queue or self._busy) and self._error is None:
                self._cond.wait()
            self._draining = False
            self._raise()
            stop, self._stop = self._stop, None
            return stop

    def close(self) -> None:
        """End the thread (after the chunk it is collecting, if any); release what it did not
        collect (the reconciler finishes it)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        for _, sent in self._queue:
            sent.release()
        self._queue.clear()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        while True:
            with self._cond:
                # A chunk is collected once the next one is sent (or the sender drains): sending
                # never waits for a receipt, as the single-threaded runner guaranteed.
                while not self._closed and not (len(self._queue) > 1 or (self._queue and self._draining)):
                    self._cond.wait()
                if self._closed:  # the sender is done (drained) or failed: it releases the rest
                    return
                chunk, sent = self._queue.popleft()
                self._busy = True
            try:
                outcome = self._runner.collect(self._ref, chunk, sent)
            except BaseException as exc:  # handed to the sender; this chunk stays for the reconciler
                sent.release()
                with self._cond:
                    self._error, self._busy = exc, False
                    self._cond.notify_all()
                return
            with self._cond:
                self._stop = self._stop or outcome
                self._busy = False
                self._cond.notify_all()
