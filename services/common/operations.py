"""Idempotent, intent-first operations: the one way a route moves money or changes chain state.

A route calls :meth:`Operations.begin` with the caller's ``Idempotency-Key`` and body, then
:meth:`Operations.execute`. Each operation kind has a *builder* (registered with
:func:`builder`) that turns the stored request into the signing account and contract call; the
builder is pure data-to-call, so the reconciler can run it again after a restart.

The life of an operation:

1. ``begin`` inserts it ``pending`` (unique per API key and idempotency key) and commits. A
   second request with the same key and body gets the first one's outcome; with another body, 409.
2. ``execute`` runs the builder, estimates gas (a contract refusal here fails the operation with
   the decoded error; nothing is sent) unless the call's gas is bounded by its rows
   (:mod:`chain.gas`: a refusal then shows in the receipt, step 3), signs, **stores the signed
   transaction and its hash**, commits, and only then sends it. Operations of one key that reach
   its nonce lock together are signed as a group and stored in one durable commit before any of
   them is sent (a group commit: :meth:`Operations._store_signed`).
3. The receipt moves it to ``confirmed`` (with its events) or ``failed`` (with the decoded error),
   in a commit not flushed to disk on its own (the chain is the record of the outcome; after a
   power loss the reconciler records the same outcome again by receipt lookup, audit row and
   webhook event ids included: :meth:`Operations._record_outcome`). If the node is down it stays
   ``pending`` and the caller gets a 503.
4. The reconciler finishes pending operations: by receipt lookup, by rebroadcasting the very same
   signed bytes, or, if nothing was ever signed, by executing it. It never signs a second
   transaction for an operation that has one.

A builder's call may name an :class:`Allowance` it needs (a family contract pulling from a
custodial wallet). Operations grants it with an operation of its own (``cash.approve``, whose
idempotency key names its parent, :func:`allowance_key`) that goes through steps 2 and 3 before
the parent is signed: every transaction the services send has its row, and the reconciliation
needs no exception for approvals.

An allowance is shared state, one per (wallet, contract), and an approval SETS it: two operations
pulling from one wallet at once could each find it enough and skip approving (the second pull then
refused), or one's approval overwrite the other's. So an operation whose call needs an allowance
runs in its owner's *turn* (:meth:`Operations._owner_turn`, a lock per custodial wallet in this
process), from the allowance read until its transaction is mined; the reconciler takes the same
turns. A turn is per process: the gateway also pulls from custodial wallets (QuickPay, refunds),
so when the estimate still finds the allowance short, it is granted again by the parent's next
allowance operation (:meth:`Operations._allow_and_prepare`). A builder states the most its call
can pull, never an amount read from the chain before its turn.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from eth_abi.exceptions import EncodingError
from eth_account.signers.local import LocalAccount
from eth_utils.exceptions import ValidationError as EthValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from web3.contract.contract import ContractFunction
from web3.exceptions import MismatchedABI, Web3RPCError

from chain.events import Event
from chain.exceptions import ChainError, ContractError, NodeRefused, NodeUnavailable, TransactionTimeout
from chain.sender import Signed, node_errors
from services.common import webhooks
from services.common.context import ServiceContext
from services.common.models import ApiKey, Operation, Wallet, utcnow
from services.common.problems import Problem, contract_problem, jsonable, node_refusal
from services.common.scope import acts_for_institution, institution_of, out_of_scope

log = logging.getLogger("xcpay.operations")


@dataclass(frozen=True)
class Allowance:
    """An allowance a call needs before it is sent: ``spender`` (a family contract) may pull at
    least ``amount`` from the custodial wallet ``owner``. A builder states it as data; Operations
    grants it, when the chain does not allow it yet, with a tracked operation of its own
    (``ALLOWANCE_KIND``), so that builders stay pure data-to-call. ``amount`` is the most the call
    can pull (a voucher spend: its bill), not a share quoted before the owner's turn: another pull
    of the owner may change that share before this call is mined."""

    owner: str
    spender: str
    amount: int


@dataclass(frozen=True)
class Call:
    """What a builder returns: who signs which contract call, the allowance it needs, and the
    custodial wallets that need gas money first (``gas_money``: a new wallet signs later, so the
    operator sends it ``gas_topup_wei`` of ether before the call; ether, not cash: no operation)."""

    signer: LocalAccount
    fn: ContractFunction
    allowance: Allowance | None = None
    gas_money: tuple[str, ...] = ()


@dataclass(frozen=True)
class Relay:
    """What a builder returns for a transaction the payer signed themselves (self-custody): the
    service checks it by simulation and sends the very same bytes; it signs nothing."""

    raw: bytes


# A builder answers None when the stored request needs no transaction at all: its outcome is
# known without one (an offline batch whose every payment the gateway refused before sending);
# the operation is then confirmed with no events and no transaction (``_confirm_unsent``).
Builder = Callable[[ServiceContext, dict[str, Any]], Call | Relay | None]


ALLOWANCE_KIND = "cash.approve"  # the operation that grants a Call's Allowance
ALLOWANCE_ATTEMPTS = 3  # grants of one operation's allowance when another process keeps taking it


@dataclass
class _Turn:
    """One custodial wallet's turn (``Operations._owner_turn``): its lock and how many hold or
    wait for it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


def _allowance_short(exc: ContractError, allowance: Allowance) -> bool:
    """Whether ``exc`` is the token refusing a pull on ``allowance`` for want of allowance."""
    if exc.name != "ERC20InsufficientAllowance":
        return False
    spender = exc.args_dict.get("spender")
    return isinstance(spender, str) and spender.lower() == allowance.spender.lower()


def allowance_key(parent_id: str, seq: int) -> str:
    """The idempotency key of the ``seq``-th allowance operation of operation ``parent_id`` (under
    the parent's API key): the link from child to parent. A second one is made only when the
    first landed and the allowance was taken by another operation before the parent was signed."""
    return f"allowance:{parent_id}:{seq}"


def _approve(ctx: ServiceContext, req: dict[str, Any]) -> Call:
    """The allowance operation's call: the custodial wallet ``owner`` approves ``spender`` for
    what it holds (at least ``amount_fen``). Not exactly the amount: two operations of one wallet
    may run at once, and an approval of one amount would overwrite the other's, so that the
    second pull is refused (the load test found it). A pull never takes more than is held."""
    owner, spender, amount = req["owner"], req["spender"], int(req["amount_fen"])
    held = ctx.cash.balance_of(owner)
    return Call(ctx.custodial(owner), ctx.cash.approve_call(spender, max(amount, held)))


def _for_operation(problem: Problem, op_id: str) -> Problem:
    """``problem`` as the answer of operation ``op_id`` (a child's refusal, told by its parent)."""
    return Problem(
        problem.status,
        problem.slug,
        problem.title,
        problem.detail,
        **{**problem.extra, "operation_id": op_id},
    )


def request_hash(kind: str, body: dict[str, Any]) -> str:
    canonical = json.dumps({"kind": kind, "body": body}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Operations:
    def __init__(self, ctx: ServiceContext, builders: Mapping[str, Builder] | None = None) -> None:
        """``builders``: the operation kinds this process carries out (each app merges its
        families' builder tables at start-up; see ``services/common/families.py``)."""
        self.ctx = ctx
        self.builders: dict[str, Builder] = {ALLOWANCE_KIND: _approve, **(builders or {})}
        self._inflight: set[str] = set()
        self._inflight_lock = threading.Lock()
        # Each custodial wallet's turn for the operations that pull from it (_owner_turn).
        self._owner_locks: dict[str, _Turn] = {}
        self._owner_guard = threading.Lock()
        # Given the events of each operation confirmed here, decoded once from its receipt, with
        # the database session that records the confirmation: the operator's event indexer
        # stores them in the same commit instead of reading the same logs again. Its third
        # argument: each event's arguments made JSON-ready (``jsonable``), as the result holds them.
        self.on_confirmed: Callable[[Any, list[Event], list[Any]], object] | None = None
        # Called with (session, operation row, its events) in the same transaction as the
        # confirmation: an app keeps derived rows of its own operations (the operator: who
        # proposed each court order and recovery).
        self.on_confirmed_op: Callable[[Any, Operation, list[Event]], object] | None = None

    # -- request path ----------------------------------------------------------------------

    def begin(
        self,
        kind: str,
        api_key: ApiKey,
        idempotency_key: str,
        body: dict[str, Any],
        *,
        preparing: bool = False,
        audit_target: str | None = None,
    ) -> tuple[Operation, bool]:
        """Insert the intent, or find the earlier one with this key. Returns (operation, is_new).
        ``preparing``: a prepare step must complete (``update_request``) before it may be executed;
        until then the request carries PREPARING, and the reconciler abandons it rather than run it
        without what the step adds (a new wallet's key, a bill's hold). ``audit_target``: the
        target of the audit row its outcome writes, whoever records that outcome (None: none)."""
        digest = request_hash(kind, body)
        op = Operation(
            id=str(uuid.uuid4()),
            kind=kind,
            api_key_id=api_key.id,
            idempotency_key=idempotency_key,
            request_hash=digest,
            request=jsonable({**body, PREPARING: True} if preparing else body),
            status="pending",
            audit_target=None if audit_target is None else audit_target.replace("\x00", "")[:200],
        )
        # Not flushed to disk on its own: nothing leaves the process on the strength of this row
        # until the operation's signed bytes are stored, durably, which flushes it too (a power
        # loss before that undoes a request that had sent nothing and answered nothing).
        with self.ctx.db.deferred_session() as s:
            s.add(op)
            try:
                s.commit()
                return op, True
            except IntegrityError:
                s.rollback()
            existing = s.scalar(
                select(Operation).where(
                    Operation.api_key_id == api_key.id, Operation.idempotency_key == idempotency_key
                )
            )
        if existing is None:  # pragma: no cover - the unique constraint said it exists
            raise Problem(409, "idempotency-conflict", "Idempotency key conflict")
        if existing.request_hash != digest:
            raise Problem(
                409,
                "idempotency-key-reused",
                "Idempotency key reused with a different request",
                f"key {idempotency_key!r} was first used for another {existing.kind} request",
                operation_id=existing.id,
            )
        return self.await_outcome(existing.id), False

    def update_request(self, op: Operation, extra: dict[str, Any]) -> Operation:
        """Add server-side facts (a generated address, say) to the stored request before executing."""
        with self.ctx.db.session() as s:
            row = s.get(Operation, op.id)
            assert row is not None
            request = {**row.request, **jsonable(extra)}
            request.pop(PREPARING, None)
            row.request = request
            s.commit()
            return row

    def execute(self, op: Operation, *, held: bool = False) -> Operation:
        """Carry out a new operation; returns it confirmed, failed, or still pending (slow chain).
        ``held``: the caller holds this process's claim on it already (see ``perform``)."""
        if held:
            return self._execute_claimed(op)
        with self._claim(op.id) as claimed:
            if not claimed:
                return self.await_outcome(op.id)
            return self._execute_claimed(op)

    def _execute_claimed(self, op: Operation) -> Operation:
        sent = self._send_claimed(op)
        return self._finish(op.id, wait_s=self.ctx.settings.receipt_timeout_s, tx_hash=sent)

    def _send_claimed(self, op: Operation) -> str | None:
        """Sign, store and send a claimed operation's transaction, unless it has one already.
        Returns the hash this call stored and sent (None when it sent nothing), so that recording
        the outcome need not read the row again to learn it."""
        current = self.get(op.id)
        if current.status != "pending" or current.raw_tx is not None:
            # The reconciler got to it first: its age comes from this host's wall clock, which
            # may have jumped past UNSIGNED_GRACE_S. Finish what was signed; never sign twice.
            return None
        return self._sign_store_send(current)

    def await_outcome(self, op_id: str, wait_s: float | None = None) -> Operation:
        """The operation once it is no longer pending, or as it is after ``wait_s``."""
        deadline = time.monotonic() + (self.ctx.settings.receipt_timeout_s if wait_s is None else wait_s)
        while True:
            op = self.get(op_id)
            if op.status != "pending" or time.monotonic() >= deadline:
                return op
            with self._inflight_lock:
                busy = op_id in self._inflight
            if not busy and op.raw_tx is not None:
                return self._finish(op_id, wait_s=max(0.0, deadline - time.monotonic()))
            time.sleep(0.05)

    def get(self, op_id: str) -> Operation:
        with self.ctx.db.session() as s:
            op = s.get(Operation, op_id)
        if op is None:
            raise Problem(404, "operation-not-found", "Operation not found", f"no operation {op_id}")
        return op

    # -- reconciler ------------------------------------------------------------------------

    def reconcile(self) -> dict[str, int]:
        """Finish every pending operation not being worked on. Safe to run at any time."""
        counts = {"confirmed": 0, "failed": 0, "pending": 0}
        with self.ctx.db.session() as s:
            # Only the kinds this process knows: the operator and the gateway share the database,
            # and each finishes its own operations.
            rows = s.execute(
                select(Operation.id, Operation.raw_tx.is_(None), Operation.created_at).where(
                    Operation.status == "pending",
                    # An allowance is finished by its parent's run (``_allow``): only the
                    # process that owns the parent's kind may sign it.
                    Operation.kind.in_([k for k in self.builders if k != ALLOWANCE_KIND]),
                )
            ).all()
        # An unsigned operation this young belongs to a request still preparing it (a new wallet's
        # key, a bill's claim): leave it to that request, or to a later round if the process died.
        cutoff = datetime.now(UTC) - timedelta(seconds=UNSIGNED_GRACE_S)
        ids = [op_id for op_id, unsigned, created in rows if not unsigned or _aware(created) < cutoff]
        for op_id in ids:
            with self._claim(op_id) as claimed:
                if not claimed:
                    continue
                try:
                    op = self.get(op_id)
                    if op.status != "pending":
                        continue
                    if op.raw_tx is None and op.request.get(PREPARING):
                        # Its request stopped (a crash, a lost database connection) before its
                        # prepare step was recorded: nothing was sent, and running it now would
                        # run it without what that step adds. It is abandoned, not executed.
                        self.fail(op_id, _abandoned(op_id), raise_=False)
                        counts["failed"] += 1
                        continue
                    if op.raw_tx is None:
                        self._sign_store_send(op)
                    else:
                        self._rebroadcast_if_lost(op)
                    op = self._finish(op_id, wait_s=self.ctx.settings.receipt_timeout_s)
                except (Problem, ChainError) as exc:
                    log.info("reconcile %s: %s", op_id, exc)
                    op = self.get(op_id)
                except Exception:  # one bad record must not stop the others
                    log.exception("reconcile %s failed", op_id)
                    op = self.get(op_id)
                counts[op.status] += 1
        return counts

    # -- internals -------------------------------------------------------------------------

    def _claim(self, op_id: str) -> Any:
        ops = self

        class _Claim:
            def __enter__(self) -> bool:
                with ops._inflight_lock:
                    if op_id in ops._inflight:
                        self.ok = False
                    else:
                        ops._inflight.add(op_id)
                        self.ok = True
                return self.ok

            def __exit__(self, *exc: object) -> None:
                if self.ok:
                    with ops._inflight_lock:
                        ops._inflight.discard(op_id)

        return _Claim()

    def _sign_store_send(self, op: Operation) -> str | None:
        """Sign (or take the payer's signed bytes), store and send ``op``'s transaction; returns
        its hash (None when it was not sent: the node was down after it was stored).

        A call that needs an allowance runs in its owner's turn (:meth:`_owner_turn`): from the
        allowance read to its transaction mined, no other operation of this process that pulls
        from the same wallet runs, so none can take the allowance this one found or granted."""
        with self._refused_before_signing(op):
            call = self.builders[op.kind](self.ctx, op.request)
        if call is None:  # nothing to send: the request's outcome is known without a transaction
            self._confirm_unsent(op.id)
            return None
        if isinstance(call, Relay):
            return self._store_send_relay(op, call)
        if call.allowance is None:
            return self._send_call(op, call)
        with self._owner_turn(call.allowance.owner):
            tx_hash = self._send_call(op, call)
            if tx_hash is not None:
                # Mined before the owner's next pull reads its allowance (a slow chain: after the
                # wait, the next one goes on; should it then find the allowance short, it grants
                # it again, see _allow_and_prepare).
                with contextlib.suppress(NodeUnavailable):
                    self.ctx.tx.receipt(tx_hash, timeout_s=self.ctx.settings.receipt_timeout_s)
            return tx_hash

    def _send_call(self, op: Operation, call: Call) -> str | None:
        """The rest of :meth:`_sign_store_send` for a built call: scope, gas money, allowance,
        estimate, then sign, store and send."""
        with self._refused_before_signing(op):
            self._check_institution_scope(op, call)
            if call.gas_money:
                topup = self.ctx.settings.gas_topup_wei
                self.ctx.tx.send_values(self.ctx.operator, [(a, topup) for a in call.gas_money])
            if call.allowance is not None:
                params = self._allow_and_prepare(op, call, call.allowance)
            else:
                params = self.ctx.tx.prepare(call.fn, call.signer.address)
        self._flush_unsent(call.signer.address)
        tx_hash = self._sign_and_send(op, call, params)
        fault_point("after_send", op.kind)
        return tx_hash

    @contextlib.contextmanager
    def _refused_before_signing(self, op: Operation) -> Iterator[None]:
        """A refusal before anything was signed (the contract's, by estimate; a problem; an
        argument the ABI cannot hold) fails ``op`` with its problem, raised."""
        try:
            yield
        except ContractError as exc:
            self.fail(op.id, contract_problem(exc, operation_id=op.id))
            raise  # unreachable: fail raises
        except Problem as exc:
            self.fail(op.id, exc)
            raise
        except (MismatchedABI, EncodingError) as exc:
            self.fail(op.id, unencodable(exc, op.id))
            raise  # unreachable: fail raises

    def _confirm_unsent(self, op_id: str) -> None:
        """Confirm a pending operation that has nothing to send (its builder answered None): no
        transaction, no events; its audit row in the same commit, as an outcome's."""
        from services.common.audit import entry

        with self.ctx.db.session() as s:
            row = s.get(Operation, op_id, with_for_update=True)
            if row is None or row.status != "pending" or row.raw_tx is not None:
                return
            row.status = "confirmed"
            row.result = {"tx_hash": None, "block_number": None, "events": []}
            if row.audit_target is not None:
                s.add(entry(s.get(ApiKey, row.api_key_id), row.kind, row.audit_target, op_id, row.status))
            s.commit()

    # -- two tiers: whose customers a key may act for ----------------------------------------

    def _check_institution_scope(self, op: Operation, call: Call) -> None:
        """An operator key (institution #1 unless bound to another) or any key bound to an
        institution has the service sign with a custodial wallet's key (as payer, as the owner of
        an allowance, as the merchant who refunds or pulls) only when its institution serves that
        wallet: 403 ``institution-scope`` otherwise. Every family's custodial signature passes
        here, so a route that forgets its own check cannot move another institution's customer's
        money. Keys that speak for their own wallet (merchant, officer, terminal, holder) and the
        service's own keys are not customers' and are not checked here."""
        if call.allowance is None and call.signer.address in self._own_signers():
            return  # the service's own key (an issuance's, a freeze's): never a customer's wallet
        wallets: set[str] = {call.signer.address}
        if call.allowance is not None:
            wallets.add(call.allowance.owner)
        with self.ctx.db.session() as s:
            custodial = [
                w for w in wallets if (row := s.get(Wallet, w)) is not None and row.custody == "custodial"
            ]
            if not custodial:
                return
            key = s.get(ApiKey, op.api_key_id)
        if key is None or not acts_for_institution(key):
            return
        mine = institution_of(key)
        for wallet in custodial:
            serving = self.ctx.institutions.served_by(wallet)
            if serving != mine:
                raise out_of_scope(mine, wallet, serving)

    def _own_signers(self) -> frozenset[str]:
        """The addresses of the service's own keys (from its settings). A custodial wallet's key
        is generated by the service for that wallet alone, so none of these is ever a customer's:
        a call they sign needs no look-up of its signer's wallet row (one statement fewer on
        every issuance)."""
        ctx = self.ctx
        keys = (ctx.operator, ctx.regulator, ctx.second_regulator, ctx.admin)
        return frozenset(k.address for k in keys if k is not None)

    # -- allowances ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _owner_turn(self, owner: str) -> Iterator[None]:
        """Hold the turn of the custodial wallet ``owner`` (one lock per wallet in this process,
        dropped when no one holds or waits for it). Taken only while no other turn is held, after
        the operation's claim and before any child's claim or nonce lock: always in that order,
        so no two threads (the reconciler's included) can wait for each other."""
        key = owner.lower()
        with self._owner_guard:
            entry = self._owner_locks.get(key)
            if entry is None:
                entry = self._owner_locks[key] = _Turn()
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._owner_guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._owner_locks[key]

    def _allow_and_prepare(self, op: Operation, call: Call, allowance: Allowance) -> Any:
        """Make sure of ``allowance`` (:meth:`_allow`), then estimate ``call``. Should the estimate
        find the allowance short all the same (a pull from the same wallet by another process:
        the operator and the gateway both pull from custodial wallets through QuickPay and the
        refunds contract, and a turn is per process), it is granted again, by the parent's next
        allowance operation (:func:`allowance_key`), a bounded number of times."""
        for attempt in range(1, ALLOWANCE_ATTEMPTS + 1):
            self._allow(op, allowance)
            try:
                return self.ctx.tx.prepare(call.fn, call.signer.address)
            except ContractError as exc:
                if attempt == ALLOWANCE_ATTEMPTS or not _allowance_short(exc, allowance):
                    raise
                log.info("allowance of %s taken before %s was signed; granted again", allowance.owner, op.id)
        raise AssertionError("unreachable")  # pragma: no cover

    def _allow(self, parent: Operation, allowance: Allowance) -> None:
        """Make sure of the allowance ``parent``'s call needs, as an operation of its own.

        When the chain already allows it, nothing is sent. Otherwise an ``ALLOWANCE_KIND``
        operation, child of ``parent`` (see :func:`allowance_key`), is signed, stored, sent and
        awaited like any other, so that every transaction the service sends has its record. A
        re-run of ``parent`` (the reconciler, after a restart) finishes the child it started, by
        its stored bytes, and never approves twice: a landed approval shows in the allowance
        read first. A child that failed fails ``parent`` with the child's problem."""
        if self.ctx.cash.allowance(allowance.owner, allowance.spender) >= allowance.amount:
            return
        child = self._allowance_child(parent, allowance)
        wait_s = self.ctx.settings.receipt_timeout_s
        try:
            with self._claim(child.id) as claimed:
                if not claimed:  # another thread of this process drives it: wait for it
                    done = self.await_outcome(child.id, wait_s=wait_s)
                else:
                    if child.raw_tx is None:
                        self._sign_store_send(child)
                    else:
                        self._rebroadcast_if_lost(child)
                    done = self._finish(child.id, wait_s=wait_s)
        except Problem as exc:  # refused before sending: the parent fails with the same problem
            raise _for_operation(exc, parent.id) from None
        if done.status == "failed":
            from services.common.problems import problem_from_stored

            raise problem_from_stored(done.error or {}, operation_id=parent.id)
        if done.status == "pending":  # the parent stays unsigned; the reconciler goes on later
            raise TransactionTimeout(done.tx_hash or child.id, wait_s)

    def _allowance_child(self, parent: Operation, allowance: Allowance) -> Operation:
        """The pending allowance operation of ``parent``, or a new one (the next in sequence).

        Its idempotency key (:func:`allowance_key`, under the parent's API key) links it to the
        parent and keeps it unique: two finishers of one parent cannot both insert it."""
        prefix = allowance_key(parent.id, 0).rsplit(":", 1)[0] + ":"
        for _ in range(2):
            with self.ctx.db.session() as s:
                rows = s.scalars(
                    select(Operation).where(
                        Operation.api_key_id == parent.api_key_id,
                        Operation.idempotency_key.startswith(prefix, autoescape=True),
                    )
                ).all()
                pending = [r for r in rows if r.status == "pending"]
                if pending:
                    return pending[0]
                request = {
                    "parent": parent.id,
                    "owner": allowance.owner,
                    "spender": allowance.spender,
                    "amount_fen": allowance.amount,
                }
                child = Operation(
                    id=str(uuid.uuid4()),
                    kind=ALLOWANCE_KIND,
                    api_key_id=parent.api_key_id,
                    idempotency_key=allowance_key(parent.id, len(rows) + 1),
                    request_hash=request_hash(ALLOWANCE_KIND, request),
                    request=request,
                    status="pending",
                )
                s.add(child)
                try:
                    s.commit()
                    return child
                except IntegrityError:  # another finisher inserted it first: take theirs
                    s.rollback()
        raise Problem(409, "idempotency-conflict", "Idempotency key conflict", operation_id=parent.id)

    def _store_signed(self, signed: Sequence[Signed]) -> None:
        """Store the signed bytes, hash, sender and nonce of each operation (``tag``: its id) in
        one durable commit: one disk flush for a whole group, and it flushes the intents that
        ``begin`` committed without one. Nothing of the group is sent before it returns."""
        now = utcnow()
        with self.ctx.db.session() as s:
            s.execute(
                update(Operation),
                [
                    {
                        "id": x.tag,
                        "sender": x.sent.sender,
                        "nonce": x.sent.nonce,
                        "tx_hash": x.sent.tx_hash,
                        "raw_tx": x.raw,
                        "updated_at": now,
                    }
                    for x in signed
                ],
            )
            s.commit()

    def _sign_and_send(self, op: Operation, call: Call, params: Any) -> str:
        """Sign (again, if another process takes the nonce: chain's one nonce strategy, see
        :mod:`chain.sender`), store the bytes and their hash in the row, then send them.

        A group commit: operations of one key that wait for its nonce lock at the same time are
        signed together and their bytes stored in one durable commit (:meth:`_store_signed`)
        before any of them is sent (``Transactor.send_signed``'s ``store_group``)."""
        try:
            sent = self.ctx.tx.send_signed(
                call.signer,
                params,
                store_group=self._store_signed,
                tag=op.id,
                before_send=lambda: fault_point("before_send", op.kind),
            )
            return sent.tx_hash
        except NodeRefused as exc:  # the bytes can never be mined
            self.fail(
                op.id,
                Problem(
                    502,
                    "transaction-rejected",
                    "The node rejected the transaction",
                    node_refusal(exc),
                    operation_id=op.id,
                ),
            )
            raise  # unreachable: fail raises
        except NodeUnavailable as exc:  # stored and signed: these very bytes are sent when it is back
            raise NodeUnavailable(f"node unavailable; operation {op.id} stays pending") from exc

    def _store_send_relay(self, op: Operation, relay: Relay) -> str:
        """Simulate the payer's own transaction (a refusal fails the operation with the decoded
        error; nothing is sent), store it, then send it unchanged."""
        from web3.exceptions import ContractLogicError

        from chain.rawtx import decode_signed

        signed = decode_signed(relay.raw)
        try:
            self.ctx.w3.eth.call(signed.as_call())  # type: ignore[arg-type]
        except ContractLogicError as exc:
            data = exc.data if isinstance(exc.data, str) else None
            self.fail(op.id, contract_problem(self.ctx.tx.errors.decode(data), operation_id=op.id))
        except (Web3RPCError, EthValidationError) as exc:  # e.g. it cannot pay for its gas
            self.fail(
                op.id,
                Problem(
                    422,
                    "transaction-rejected",
                    "The node would reject the signed transaction",
                    node_refusal(exc),
                ),
            )
        with self.ctx.db.session() as s:
            row = s.get(Operation, op.id)
            assert row is not None
            row.sender, row.nonce, row.tx_hash = signed.sender, signed.nonce, signed.hash
            row.raw_tx = "0x" + relay.raw.hex()
            s.commit()
        try:
            self.ctx.tx.broadcast(relay.raw, signed.hash)
        except NodeRefused as exc:
            self.fail(
                op.id,
                Problem(
                    422,
                    "transaction-rejected",
                    "The node rejected the signed transaction",
                    f"{node_refusal(exc)} (check its nonce, gas and fees)",
                    operation_id=op.id,
                ),
            )
        except NodeUnavailable as exc:
            raise NodeUnavailable(f"node unavailable; operation {op.id} stays pending") from exc
        return str(signed.hash)

    def _flush_unsent(self, sender: str) -> None:
        """Send this sender's stored-but-unsent transactions first, oldest nonce first.

        A transaction signed before the node went down holds a nonce; until it is on the node,
        a new transaction would take the same nonce and the stored one could never be mined.
        """
        w3 = self.ctx.w3
        with self.ctx.db.session() as s:
            stored = s.scalars(
                select(Operation)
                .where(
                    Operation.status == "pending", Operation.sender == sender, Operation.raw_tx.is_not(None)
                )
                .order_by(Operation.nonce)
            ).all()
        with self._inflight_lock:
            busy = set(self._inflight)
        # Those this process is sending or waiting for (a payroll's chunks in flight) are its own.
        stored = [op for op in stored if op.id not in busy]
        if not stored:
            return
        with node_errors():
            on_chain = w3.eth.get_transaction_count(sender, "pending")  # type: ignore[arg-type]
        for op in stored:
            if op.nonce is None or op.nonce < on_chain:
                continue  # mined, in the pool, or dropped
            assert op.raw_tx is not None and op.tx_hash is not None
            try:
                self.ctx.tx.broadcast(op.raw_tx, op.tx_hash)
            except NodeRefused as exc:
                log.info("flush of %s refused: %s", op.id, exc)
        self.ctx.tx.nonces.forget(sender)

    def _rebroadcast_if_lost(self, op: Operation) -> None:
        w3 = self.ctx.w3
        assert op.tx_hash is not None
        if self.ctx.tx.known(op.tx_hash):
            return  # mined or in the pool: just wait for it
        assert op.sender is not None and op.nonce is not None and op.raw_tx is not None
        with node_errors():
            used = w3.eth.get_transaction_count(op.sender, "latest")  # type: ignore[arg-type]
        if used > op.nonce:
            # Our nonce was used by another transaction and ours is nowhere: it can never be mined.
            self.fail(
                op.id,
                Problem(
                    409, "transaction-dropped", "The transaction was dropped", f"nonce {op.nonce} was used"
                ),
                raise_=False,
            )
            return
        try:
            self.ctx.tx.broadcast(op.raw_tx, op.tx_hash)  # the same bytes: the same transaction
        except NodeRefused as exc:
            log.info("rebroadcast of %s refused: %s", op.id, exc)
        self.ctx.tx.nonces.forget(op.sender)

    def _finish(
        self, op_id: str, wait_s: float, audit_as: _AuditAs | None = None, tx_hash: str | None = None
    ) -> Operation:
        """Record the outcome of a sent operation once its receipt is there (else return it as it
        is). ``audit_as``: the audit row of the outcome goes into the same commit (its ``done``
        is then set); should that commit fail, the outcome is recorded alone and the caller
        writes the audit row by itself, as before. ``tx_hash``: the hash the caller has just
        stored and sent for it, when it has (the row is then not read before the receipt is
        there: the locked read that records the outcome checks it is still pending)."""
        try:
            return self._record_outcome(op_id, wait_s, audit_as, tx_hash)
        except SQLAlchemyError:
            if audit_as is None or audit_as.done:
                raise
            log.exception("outcome of %s with its audit row not committed; recording it alone", op_id)
            audit_as.alone = True
            return self._record_outcome(op_id, wait_s, None, tx_hash, audited=False)

    def _record_outcome(
        self,
        op_id: str,
        wait_s: float,
        audit_as: _AuditAs | None,
        tx_hash: str | None = None,
        *,
        audited: bool = True,
    ) -> Operation:
        """Record the outcome from the receipt, with its events' index rows, derived rows,
        webhook deliveries and audit row (``audit_as``'s, else the one the row's ``audit_target``
        names; none when not ``audited``), in one commit.

        That commit is deferred (``Database.deferred_session``: no disk flush of its own; the
        next durable commit flushes it). The chain is the record of the outcome: should a power
        loss undo the commit, the row is back to ``pending`` with its signed bytes and hash, and
        the reconciler (or a replay of the request) records the very same outcome by receipt
        lookup, audit row included. Nothing leaves the process on the strength of it before it
        is on disk: a webhook delivery is sent only after the deliverer's durable claim commit
        (services/common/webhooks.py), which flushes this one before it."""
        if tx_hash is None:
            op = self.get(op_id)
            if op.status != "pending" or op.tx_hash is None:
                return op
            tx_hash = op.tx_hash
        # Its logs raw: they are only decoded here (once, by the precompiled decoders).
        receipt = self.ctx.tx.receipt(tx_hash, timeout_s=wait_s, raw_logs=True)
        if receipt is None:
            return self.get(op_id)
        with self.ctx.db.deferred_session() as s:
            # Locked (PostgreSQL) and checked again: a second finisher (another thread, the other
            # service) must not record the outcome, and queue its webhooks, twice.
            row = s.get(Operation, op_id, with_for_update=True)
            assert row is not None
            if row.status != "pending" or row.tx_hash != tx_hash:
                return row
            row.block_number = int(receipt["blockNumber"])
            if receipt["status"] == 1:
                events = self.ctx.tx.events.decode_receipt(receipt)
                args = [jsonable(e.args) for e in events]  # once, for the result and the index
                row.status = "confirmed"
                row.result = {
                    "tx_hash": tx_hash,
                    "block_number": row.block_number,
                    "events": [
                        {"contract": e.contract, "name": e.name, "args": a}
                        for e, a in zip(events, args, strict=True)
                    ],
                }
                if events and self.on_confirmed is not None:
                    self.on_confirmed(s, events, args)
                if events and self.on_confirmed_op is not None:
                    self.on_confirmed_op(s, row, events)
                webhooks.from_operation(s, row)  # its events' deliveries commit with it
            else:
                err = self.ctx.tx.revert_error(tx_hash, receipt)
                problem = (
                    contract_problem(err, operation_id=op_id) if isinstance(err, ContractError) else None
                )
                row.status = "failed"
                row.error = (
                    _stored(problem) if problem else {"status": 422, "slug": "reverted", "title": "Reverted"}
                )
            if audit_as is not None:
                from services.common.audit import entry

                s.add(entry(audit_as.key, audit_as.kind, audit_as.target, op_id, row.status))
            elif audited and row.audit_target is not None:  # the reconciler's, or a replay's
                from services.common.audit import entry

                s.add(entry(s.get(ApiKey, row.api_key_id), row.kind, row.audit_target, op_id, row.status))
            s.commit()
            if audit_as is not None:
                audit_as.done = True
            return row

    def fail(self, op_id: str, problem: Problem, raise_: bool = True) -> None:
        """Mark a pending operation failed with ``problem`` (and raise it, unless ``raise_`` is false)."""
        with self.ctx.db.session() as s:
            row = s.get(Operation, op_id)
            assert row is not None
            row.status = "failed"
            row.error = _stored(problem)
            s.commit()
        if raise_:
            raise problem


UNSIGNED_GRACE_S = 15
_ARGUMENT = re.compile(r"Argument (\d+) value `[^`]*` is not compatible with type `([^`]+)`")
_SIGNATURE = re.compile(r"Signature: ([A-Za-z0-9_]+\([^\n]*\)), type: function")


def unencodable(exc: Exception, op_id: str) -> Problem:
    """A call whose arguments cannot be ABI-encoded (web3 finds no function they fit, or the codec
    refuses a value): a value out of its type's range, as a 422 naming the argument where web3
    says which. Failed before anything was signed, so no reconciler round ever tries it again
    (it would fail the same way, forever)."""
    text = str(exc)
    found = _ARGUMENT.search(text)
    where = _SIGNATURE.search(text)
    if found is not None:
        detail = f"argument {found.group(1)} does not fit its type {found.group(2)}"
        if where is not None:
            detail += f" in {where.group(1)}"
    else:
        detail = text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
    return Problem(
        422,
        "value-out-of-range",
        "A value is out of the range the contract takes",
        detail,
        operation_id=op_id,
    )


PREPARING = "_preparing"  # in a stored request: its prepare step has not completed yet


def _abandoned(op_id: str) -> Problem:
    return Problem(
        409,
        "operation-abandoned",
        "The request stopped before it was prepared; nothing was sent",
        "send it again with a new Idempotency-Key",
        operation_id=op_id,
    )


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _stored(problem: Problem) -> dict[str, Any]:
    return {
        "status": problem.status,
        "slug": problem.slug,
        "title": problem.title,
        "detail": problem.detail,
        **jsonable(problem.extra),
    }


def fault_point(name: str, kind: str) -> None:
    """Fail points for the crash tests (like etcd's gofail): ``XCPAY_FAULT=after_send:cash.issue``
    kills the process right after that kind's transaction left and before its outcome was
    recorded; ``before_send:<kind>`` after it was signed and stored but before it was sent."""
    import os

    if os.environ.get("XCPAY_FAULT") == f"{name}:{kind}":
        os._exit(97)


def perform(
    ops: Operations,
    kind: str,
    key: ApiKey,
    idempotency_key: str,
    body: dict[str, Any],
    *,
    target: str = "",
    prepare: Callable[[], dict[str, Any]] | None = None,
) -> tuple[Operation, bool]:
    """Begin (or replay) and execute an operation, writing the audit row. Returns (op, replayed).

    ``prepare`` runs once, only for a new operation, and adds server-side facts to the request
    (e.g. the address of a newly created custodial wallet). A failed operation raises its problem.
    """
    return submit(ops, kind, key, idempotency_key, body, target=target, prepare=prepare).result()


def submit(
    ops: Operations,
    kind: str,
    key: ApiKey,
    idempotency_key: str,
    body: dict[str, Any],
    *,
    target: str = "",
    prepare: Callable[[], dict[str, Any]] | None = None,
) -> Submitted:
    """The first half of :func:`perform`: begin (or replay) the operation and, for a new one,
    sign, store and send its transaction, without waiting for the receipt. Call ``result()`` on
    the answer (in the order of submission) for the outcome: a caller with many operations of
    one key sends them with consecutive nonces and then collects their receipts (a payroll's
    chunks). The operation stays claimed by this process until ``result()``, so the reconciler
    leaves it alone meanwhile. A refusal before sending raises here, as ``perform`` does."""
    op, new = ops.begin(kind, key, idempotency_key, body, preparing=prepare is not None, audit_target=target)
    if not new:
        return Submitted(ops, kind, key, target, op, new=False)
    claim = ops._claim(op.id)
    # This process's reconciler leaves the operation alone from here on, also while ``prepare``
    # runs (a large batch's rows can take longer than UNSIGNED_GRACE_S).
    if not claim.__enter__():  # the reconciler took it first (the host's clock jumped)
        return Submitted(ops, kind, key, target, op, new=True)
    try:
        if prepare is not None:
            try:
                extra = prepare()
            except Problem as exc:  # refused before anything was signed: never run it later
                ops.fail(op.id, exc)
                raise  # unreachable: fail raises
            except Exception:  # e.g. the database went away: never run it later either
                with contextlib.suppress(Exception):  # the reconciler abandons it otherwise
                    ops.fail(op.id, _abandoned(op.id), raise_=False)
                raise
            op = ops.update_request(op, extra)
        sent = ops._send_claimed(op)
    except BaseException as exc:
        claim.__exit__(None, None, None)
        _audit_refusal(ops, key, kind, target, op.id, exc)
        raise
    return Submitted(ops, kind, key, target, op, new=True, claim=claim, tx_hash=sent)


@dataclass
class _AuditAs:
    """Who did which kind of operation to what: the audit row written with its outcome."""

    key: ApiKey
    kind: str
    target: str
    done: bool = False
    alone: bool = False  # the outcome was committed without it (its commit failed with it)


@dataclass
class Submitted:
    """An operation begun by :func:`submit`; ``result()`` waits for and records its outcome."""

    ops: Operations
    kind: str
    key: ApiKey
    target: str
    op: Operation
    new: bool
    claim: Any = None  # this process's claim on the operation, held until result()
    tx_hash: str | None = None  # what this request stored and sent for it (None: nothing)

    def result(self) -> tuple[Operation, bool]:
        """(operation, replayed), as :func:`perform` answers; a failed operation raises its problem."""
        from services.common.problems import problem_from_stored

        ops, op = self.ops, self.op
        audit_as = _AuditAs(self.key, self.kind, self.target)
        if self.new:
            try:
                if self.claim is None:  # the reconciler has it: wait for its outcome
                    op = ops.await_outcome(op.id)
                else:
                    op = ops._finish(
                        op.id,
                        wait_s=ops.ctx.settings.receipt_timeout_s,
                        audit_as=audit_as,
                        tx_hash=self.tx_hash,
                    )
            except BaseException as exc:
                _audit_refusal(ops, self.key, self.kind, self.target, op.id, exc)
                raise
            finally:
                self.release()
            # Not written with the outcome: written here when the outcome is still pending, was
            # committed alone, or was recorded elsewhere for a row of an older release (without
            # ``audit_target``); whoever else records an outcome writes its audit row with it.
            if not audit_as.done and (op.status == "pending" or audit_as.alone or op.audit_target is None):
                audit(ops, self.key, self.kind, self.target, op.id, op.status)
        if op.status == "failed" and op.error is not None:
            raise problem_from_stored(op.error, operation_id=op.id)
        return op, not self.new

    def release(self) -> None:
        """Give up this process's claim without waiting: the reconciler finishes the operation."""
        if self.claim is not None:
            self.claim.__exit__(None, None, None)
            self.claim = None


def _audit_refusal(
    ops: Operations, key: ApiKey, kind: str, target: str, op_id: str, exc: BaseException
) -> None:
    """Audit an operation that stopped with ``exc``; a node outage becomes the 503 it answers."""
    if isinstance(exc, NodeUnavailable):
        audit(ops, key, kind, target, op_id, "pending-node-unavailable")
        raise Problem(
            503,
            "node-unavailable",
            "The chain node is unavailable",
            "the operation is recorded and stays pending; it will be completed when the node is back",
            operation_id=op_id,
        ) from None
    if isinstance(exc, Problem):
        audit(ops, key, kind, target, op_id, f"failed:{exc.slug}")


def audit(ops: Operations, key: ApiKey, kind: str, target: str, op_id: str, outcome: str) -> None:
    """The audit row of an operation whose outcome is decided: a failure to write it is logged
    loudly but never changes the caller's answer (the money has moved, or not, already; the
    operation row itself is the record of that)."""
    from services.common.audit import record

    try:
        record(ops.ctx.db, key, kind, target, op_id, outcome)
    except Exception:
        log.exception("audit row of operation %s (%s, %s) not written", op_id, kind, outcome)
