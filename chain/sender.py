"""Build, sign locally, send and await transactions; turn reverts into ContractError.

Nothing here uses node-managed accounts (``eth_sendTransaction``): a permissioned network such
as Besu has none, so every transaction is signed with a local key and sent raw.

This is the one pipeline every transaction goes through (the services' ``Operations`` and the
tests, deploy and scripts through :meth:`Transactor.transact` alike), and the one place that maps
what a node answers: a connection failure is :class:`NodeUnavailable` (:func:`node_errors`), a
refusal of the signed bytes :class:`NodeRefused`, a revert :class:`ContractError`.

Nonces, one strategy (:meth:`Transactor.send_signed`): each process hands out a key's nonces
itself (:class:`NonceManager`, starting from the node's pending count), so that it can send many
transactions of one key without waiting. A key may still be used by another process too (a
custodial wallet's key is opened by the operator and by the gateway; a script may sign with a
service key): when the node answers that the nonce is taken, the transaction is signed again with
the node's next nonce, up to ``NONCE_ATTEMPTS`` times after a short random pause. Nothing else
retries nonces (the services sign with keys of their own: see ``services/gateway/app.py``).

Group commit (:meth:`Transactor.send_signed` with ``store_group``): threads sending with one key
at the same time queue behind its nonce lock; the first signs every queued transaction with
consecutive nonces, hands them to the store in one call (one durable database commit for the
lot), and only then sends them in nonce order. Over HTTP the node is asked with raw JSON-RPC
requests (calls, estimates, sends, receipts, the base fee): web3's request path cost more CPU
than the node took to answer.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import requests
from eth_abi.exceptions import DecodingError
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, get_abi_output_types
from eth_utils.exceptions import ValidationError as EthValidationError
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3._utils.abi import map_abi_data
from web3._utils.error_formatters_utils import raise_contract_logic_error_on_revert
from web3._utils.normalizers import BASE_RETURN_NORMALIZERS
from web3.contract.contract import ContractFunction
from web3.exceptions import BadFunctionCallOutput, ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import BlockIdentifier, RPCEndpoint, TxParams, TxReceipt

from chain import gas as gas_bounds
from chain.errors import ErrorDecoder
from chain.events import Event, EventDecoder, checksum
from chain.exceptions import NodeRefused, NodeUnavailable, OutOfGas, TransactionTimeout

GAS_MARGIN = 1.25
# A reverted transaction with at most this much of its limit left may have run out of gas: out of
# gas in the outer frame leaves nothing, and a starved inner call leaves its caller 1/64 of what
# was left (under ~1,600 gas when a row needs ~100,000). It is replayed without the limit to tell
# "out of gas" from the contract's own refusal.
OUT_OF_GAS_SLACK = 20_000
SEND_WINDOW = 16
NONCE_ATTEMPTS = 8  # signings of one transaction when another process keeps taking the nonce
MAX_ROUNDS = 64  # signings of one transaction in all (re-signed when one before it was refused)


class NonceManager:
    """Hands out nonces per sender; safe for concurrent senders in one process.

    One lock per address is held from nonce assignment until the node accepted (or refused) the
    raw transaction, so two threads never sign the same nonce; the counter starts from the node's
    pending count and is re-read after any failed send, so a refused transaction leaves no gap.
    """

    def __init__(self, w3: Web3) -> None:
        self._w3 = w3
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._next: dict[str, int] = {}

    def lock(self, address: str) -> threading.Lock:
        """The lock held while ``address``'s nonces are handed out and their transactions sent."""
        with self._guard:
            return self._locks.setdefault(address, threading.Lock())

    def peek(self, address: str) -> int:
        """The next nonce of ``address`` (its lock held): this process's count, else the node's."""
        nonce = self._next.get(address)
        if nonce is None:
            nonce = self._w3.eth.get_transaction_count(address, "pending")  # type: ignore[arg-type]
        return nonce

    def advance(self, address: str, next_nonce: int) -> None:
        """``next_nonce`` is the next one to hand out (its lock held)."""
        self._next[address] = next_nonce

    @contextmanager
    def reserve(self, address: str) -> Iterator[int]:
        with self.lock(address):
            nonce = self.peek(address)
            try:
                yield nonce
            except BaseException:
                self._next.pop(address, None)  # unknown outcome: ask the node next time
                raise
            self._next[address] = nonce + 1

    def forget(self, address: str) -> None:
        self._next.pop(address, None)

    def reset(self) -> None:
        """Forget every cached nonce (after a chain snapshot is reverted, say)."""
        with self._guard:
            self._next.clear()


@dataclass(frozen=True)
class SentTx:
    tx_hash: str
    nonce: int
    sender: str


@dataclass(frozen=True)
class Signed:
    """A transaction signed as one of a group, as its store receives it: the sender's ``tag`` (an
    operation's id), where it goes (nonce, hash) and its bytes as 0x-hex."""

    tag: Any
    sent: SentTx
    raw: str


StoreGroup = Callable[[Sequence[Signed]], None]


@dataclass(eq=False)
class _Queued:
    """One transaction waiting for its key's group: filled in by the group's leader."""

    account: LocalAccount
    tx: TxParams
    store: StoreGroup | None
    tag: Any
    before_send: Callable[[], None] | None
    last: bool  # its last signing: a taken nonce is then a refusal
    done: bool = False
    sent: SentTx | None = None
    error: BaseException | None = None
    taken: bool = False  # the node said its nonce was taken: sign again after a pause

    def finish(
        self, *, sent: SentTx | None = None, error: BaseException | None = None, taken: bool = False
    ) -> None:
        """Its outcome: sent, failed, or neither (sign it again)."""
        self.sent, self.error, self.taken, self.done = sent, error, taken, True


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction and its decoded events."""

    tx_hash: str
    receipt: TxReceipt
    events: list[Event]

    @property
    def block_number(self) -> int:
        return int(self.receipt["blockNumber"])

    @property
    def gas_used(self) -> int:
        return int(self.receipt["gasUsed"])

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]


class Transactor:
    """Sends contract calls signed by local accounts and waits for them.

    ``confirmations`` blocks must follow the receipt's block before it counts (0 on a local
    chain; a few on a network with probabilistic finality, 0 again on QBFT's immediate finality).
    """

    def __init__(
        self,
        w3: Web3,
        errors: ErrorDecoder,
        events: EventDecoder | None = None,
        *,
        confirmations: int = 0,
        receipt_timeout_s: float = 120.0,
        poll_interval_s: float = 0.05,
        priority_fee_wei: int = 0,
    ) -> None:
        self.w3 = w3
        self.errors = errors
        self.events = events or EventDecoder(w3)
        self.nonces = NonceManager(w3)
        self.confirmations = confirmations
        self.receipt_timeout_s = receipt_timeout_s
        self.poll_interval_s = poll_interval_s
        self.priority_fee_wei = priority_fee_wei
        self._chain_id: int | None = None
        self._unbounded: set[str] = set()  # signatures whose row bound ran out once: estimated
        # The group commit (send_signed): transactions waiting per key, and the keys whose group
        # a thread is signing, storing and sending now.
        self._queue_cond = threading.Condition()
        self._queues: dict[str, list[_Queued]] = {}
        self._leading: set[str] = set()

    # -- public API ------------------------------------------------------------------------

    def transact(self, account: LocalAccount, fn: ContractFunction, *, gas: int | None = None) -> TxResult:
        """Estimate, sign, send and wait; raises ContractError when the contract refuses."""
        sent = self.send(account, fn, gas=gas)
        return self.wait(sent.tx_hash)

    def send(self, account: LocalAccount, fn: ContractFunction, *, gas: int | None = None) -> SentTx:
        """Estimate (or bound), sign and send; returns as soon as the node accepted the transaction."""
        return self.send_raw(account, self.prepare(fn, account.address, gas=gas))

    def prepare(self, fn: ContractFunction, sender: str, *, gas: int | None = None) -> TxParams:
        """The transaction of ``fn`` from ``sender``, ready to sign but for its nonce.

        The call is ABI-encoded once, for the estimate and the transaction alike. Its gas is
        ``gas``, else the function's row bound (:mod:`chain.gas`: no estimate, so a refusal shows
        only when the transaction is mined, as a reverted receipt), else an estimate (a refusal
        raises ContractError and nothing is signed).
        """
        data = encode_call(self.w3, fn)
        call: TxParams = {"from": sender, "to": fn.address, "data": data, "value": 0}  # type: ignore[typeddict-item]
        with _node_errors():
            if gas is None and gas_bounds.signature(fn) not in self._unbounded:
                gas = gas_bounds.bound(fn)
            if gas is None:
                gas = self.estimate_call(call)
            return {**call, "gas": gas, **self.fees(), "chainId": self.chain_id}  # type: ignore[typeddict-item]

    def deploy(self, account: LocalAccount, abi: list[dict[str, Any]], bytecode: str, *args: Any) -> TxResult:
        """Deploy a contract; the result's receipt carries ``contractAddress``."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        ctor = factory.constructor(*args)
        with _node_errors():
            try:
                gas = int(
                    self.w3.eth.estimate_gas(ctor._get_transaction({"from": account.address})) * GAS_MARGIN
                )
            except ContractLogicError as exc:
                raise self.errors.decode(_revert_data(exc)) from None
            tx = ctor.build_transaction(
                {"from": account.address, "gas": gas, "nonce": 0, **self.fees(), "chainId": self.chain_id}
            )
        return self.wait(self.send_raw(account, tx).tx_hash)

    def send_raw(self, account: LocalAccount, tx: TxParams) -> SentTx:
        """Sign ``tx`` with the next nonce of ``account`` and send it."""
        return self.send_signed(account, tx)

    def send_signed(
        self,
        account: LocalAccount,
        tx: TxParams,
        *,
        store: Callable[[SentTx, str], None] | None = None,
        store_group: StoreGroup | None = None,
        tag: Any = None,
        before_send: Callable[[], None] | None = None,
        attempts: int = NONCE_ATTEMPTS,
    ) -> SentTx:
        """Sign ``tx`` with the next nonce of ``account``, hand it to its store and send it.

        ``store(sent, raw_hex)`` runs before the bytes leave (and must persist them if the caller
        wants to find them after a crash: ``Operations`` stores them in the operation's row), and
        again for each re-signing. ``store_group`` does the same for many transactions at once
        (a :class:`Signed` each, with its ``tag``): concurrent senders of one key that pass the
        same ``store_group`` are signed as a group, with consecutive nonces, stored in one call
        (``Operations``: one durable commit, one disk flush) and only then sent, in nonce order
        (a group commit; see :meth:`_send_group`). When the node answers that the nonce is taken
        (another process signing with this key), the transaction is signed again with the node's
        next nonce (see the module's docstring). Raises :class:`NodeRefused` when the node refuses
        the bytes otherwise, :class:`NodeUnavailable` when it does not answer (the stored bytes
        may then be sent again later: :meth:`broadcast`).
        """
        if store is not None:
            if store_group is not None:
                raise ValueError("store or store_group, not both")
            one = store

            def store_group(signed: Sequence[Signed]) -> None:  # its own: never grouped with others
                for s in signed:
                    one(s.sent, s.raw)

        taken = 0  # signings whose nonce the node said was taken
        for _ in range(MAX_ROUNDS):
            item = _Queued(account, tx, store_group, tag, before_send, last=taken >= attempts - 1)
            self._send_queued(item)
            if item.error is not None:
                raise item.error
            if item.sent is not None:
                return item.sent
            if item.taken:
                # The stored bytes can never be mined: they are replaced by a transaction with the
                # node's next nonce. Under load the other process may win again, hence a few
                # attempts, each after a short random pause.
                taken += 1
                time.sleep(random.uniform(0, 0.05 * taken))
            # else: signed and stored but never sent (a transaction before it in its group was
            # refused): signed again with the next nonce, without a pause.
        raise NodeRefused(f"not sent after {MAX_ROUNDS} signings")

    def _send_queued(self, item: _Queued) -> None:
        """Queue ``item`` behind its key; the first waiting thread leads: it takes every queued
        transaction of the key with the same store and sends them as a group (``_send_group``)
        while the others wait for their outcome."""
        address = item.account.address
        with self._queue_cond:
            queue = self._queues.setdefault(address, [])
            queue.append(item)
            while not item.done:
                if address not in self._leading:
                    self._leading.add(address)
                    batch = [q for q in queue if q.store == item.store]
                    queue[:] = [q for q in queue if q.store != item.store]
                    break
                self._queue_cond.wait()
            else:
                return
        try:
            with self.nonces.lock(address):
                self._send_group(address, batch)
        finally:
            for q in batch:  # whatever happened, no waiter is left waiting
                if not q.done:
                    q.finish(error=NodeUnavailable("the group's sender stopped"))
            with self._queue_cond:
                self._leading.discard(address)
                self._queue_cond.notify_all()

    def _send_group(self, address: str, batch: list[_Queued]) -> None:
        """Sign ``batch`` with consecutive nonces, store all of it in one call, then send it in
        nonce order (the key's nonce lock held throughout).

        Nothing is sent before every signed transaction of the group is stored, so a process killed
        after the store finds each one in its record and sends or recovers it exactly once (the
        reconciler sends stored bytes in nonce order). A refused transaction leaves no gap: those
        after it were stored but not sent, and are signed again with the node's next nonce (their
        records then hold the new bytes; the old ones never left). A node that stops answering
        fails the rest with :class:`NodeUnavailable`: their stored bytes are sent later."""
        nonces = self.nonces
        try:
            with node_errors():
                base = nonces.peek(address)
        except BaseException as exc:
            for q in batch:
                q.finish(error=exc)
            return
        signed: list[tuple[_Queued, Signed, bytes]] = []
        for q in batch:
            nonce = base + len(signed)
            fields: dict[str, Any] = {**q.tx, "nonce": nonce}
            try:
                done = q.account.sign_transaction(fields)
            except BaseException as exc:  # fields it cannot sign: that transaction alone fails
                q.finish(error=exc)
                continue
            raw = bytes(done.raw_transaction)
            sent = SentTx("0x" + bytes(done.hash).hex(), nonce, address)
            signed.append((q, Signed(q.tag, sent, "0x" + raw.hex()), raw))
        if not signed:
            return
        store = signed[0][0].store
        try:
            if store is not None:
                store([s for _, s, _ in signed])
        except BaseException as exc:  # nothing was sent; the node's count is asked next time
            nonces.forget(address)
            for q, _, _ in signed:
                q.finish(error=exc)
            return
        nonces.advance(address, base + len(signed))
        for k, (q, s, raw) in enumerate(signed):
            try:
                if q.before_send is not None:
                    q.before_send()
                self.broadcast(raw, s.sent.tx_hash)
            except NodeRefused as exc:
                nonces.forget(address)
                if nonce_taken(str(exc)) and not q.last:
                    q.finish(taken=True)
                else:
                    q.finish(error=exc)
                for later, _, _ in signed[k + 1 :]:
                    later.finish()  # stored, never sent: signed again with the next nonce
                return
            except BaseException as exc:  # the node stopped answering: the stored bytes wait
                nonces.forget(address)
                for later, _, _ in signed[k:]:
                    later.finish(error=exc)
                return
            q.finish(sent=s.sent)

    def broadcast(self, raw: bytes | str, tx_hash: str) -> None:
        """Send signed bytes (again). Accepted, or already known to the node: returns. Refused:
        :class:`NodeRefused`. Down: :class:`NodeUnavailable`."""
        try:
            if isinstance(self.w3.provider, HTTPProvider):
                self._rpc("eth_sendRawTransaction", [HexBytes(raw).to_0x_hex()])
            else:
                with node_errors():
                    self.w3.eth.send_raw_transaction(HexBytes(raw))
        except (Web3RPCError, EthValidationError) as exc:  # a node's refusal; in-process: ValidationError
            if not self.known(tx_hash):  # refused, and not because it is there already
                raise NodeRefused(str(exc)) from exc

    def known(self, tx_hash: str) -> bool:
        """Whether the node has the transaction (mined, or in its pool)."""
        with node_errors():
            try:
                self.w3.eth.get_transaction(HexBytes(tx_hash))
                return True
            except TransactionNotFound:
                return False

    def wait(self, tx_hash: str) -> TxResult:
        """Wait for the receipt (and confirmations); a reverted receipt raises ContractError."""
        receipt = self.receipt(tx_hash, timeout_s=self.receipt_timeout_s)
        if receipt is None:
            raise TransactionTimeout(tx_hash, self.receipt_timeout_s)
        if receipt["status"] != 1:
            raise self.revert_error(tx_hash, receipt)
        return TxResult(tx_hash, receipt, self.events.decode_receipt(receipt))

    def receipt(self, tx_hash: str, timeout_s: float = 0.0, *, raw_logs: bool = False) -> TxReceipt | None:
        """The receipt once mined and confirmed, or None after ``timeout_s`` (0: look once).
        ``raw_logs``: over HTTP its logs stay as the node sent them (hex strings), for a caller
        that only decodes them (:class:`chain.events.EventDecoder` reads both forms): typing a
        payroll chunk's 600 logs first took as long as decoding them."""
        deadline = time.monotonic() + timeout_s
        pause = min(0.005, self.poll_interval_s)  # a local node mines within milliseconds
        while True:
            with _node_errors():
                receipt = self._fetch_receipt(tx_hash, raw_logs)
                if receipt is not None and (
                    self.confirmations == 0
                    or self.w3.eth.block_number - receipt["blockNumber"] >= self.confirmations
                ):
                    return receipt
            if time.monotonic() >= deadline:
                return None
            time.sleep(pause)
            pause = min(pause * 2, self.poll_interval_s)

    def _fetch_receipt(self, tx_hash: str, raw_logs: bool = False) -> TxReceipt | None:
        """The receipt, or None while it is not mined.

        Over HTTP it is read raw and only its own fields are converted (``_light_receipt``):
        web3's result formatters walk every log (a 200-row payroll chunk has 401), which took
        longer than the node took to mine the chunk. The in-process chain goes through web3.
        """
        if not isinstance(self.w3.provider, HTTPProvider):
            try:
                return self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                return None
        answer = self.w3.provider.make_request(RPCEndpoint("eth_getTransactionReceipt"), [tx_hash])
        if "error" in answer:
            raise Web3RPCError(str(answer["error"]))
        raw = answer.get("result")
        return None if raw is None else _light_receipt(raw, type_logs=not raw_logs)

    def call(self, fn: ContractFunction, block: BlockIdentifier = "latest") -> Any:
        """A read-only call whose custom errors are decoded like a transaction's.

        Over HTTP it is one raw ``eth_call`` (:meth:`_raw_call`), answered as web3 answers it."""
        if isinstance(self.w3.provider, HTTPProvider) and not fn.kwargs and isinstance(block, int | str):
            return self._raw_call(fn, block)
        with _node_errors():
            try:
                return fn.call(block_identifier=block)
            except ContractLogicError as exc:
                raise self.errors.decode(_revert_data(exc)) from None

    def _raw_call(self, fn: ContractFunction, block: int | str) -> Any:
        """``fn.call()`` without web3's machinery: web3 checks the whole contract ABI on every call
        (a keccak per function of the contract) and its middleware made three JSON-RPC requests
        per call; a wallet's page (six reads) cost ~25 ms of the service's CPU. The call data is
        encoded once (:func:`encode_call`), the answer decoded by the same codec, addresses
        checksummed and a single output unwrapped as web3 does; a revert is web3's
        ``ContractLogicError`` (its own classifier), decoded to the contract's custom error."""
        result = self._rpc("eth_call", self._call_params(fn, block), reverts=True)
        return self._decode_output(fn, result)

    def call_many(self, fns: Sequence[ContractFunction], block: BlockIdentifier = "latest") -> list[Any]:
        """Several read-only calls, each answered as :meth:`call` answers it; over HTTP in one
        JSON-RPC batch (one round trip instead of one per call: a wallet's page asks seven views),
        elsewhere one at a time. A revert of any of them raises its decoded custom error."""
        if not (
            isinstance(self.w3.provider, HTTPProvider)
            and isinstance(block, int | str)
            and not any(fn.kwargs for fn in fns)
        ):
            return [self.call(fn, block) for fn in fns]
        requests = [(RPCEndpoint("eth_call"), self._call_params(fn, block)) for fn in fns]
        with _node_errors():
            answers = self.w3.provider.make_batch_request(requests)  # type: ignore[arg-type]
        if not isinstance(answers, list) or len(answers) != len(fns):
            raise Web3RPCError(f"the node refused a batch of {len(fns)} calls: {answers}")
        pairs = zip(fns, answers, strict=True)
        return [self._decode_output(fn, self._result(a, reverts=True)) for fn, a in pairs]

    def _call_params(self, fn: ContractFunction, block: int | str) -> list[Any]:
        """``eth_call``'s parameters for ``fn`` at ``block`` (from the default account, if set)."""
        call: dict[str, Any] = {"to": fn.address, "data": encode_call(self.w3, fn)}
        sender = self.w3.eth.default_account
        if isinstance(sender, str) and sender:
            call["from"] = sender
        return [call, hex(block) if isinstance(block, int) else block]

    def _decode_output(self, fn: ContractFunction, result: Any) -> Any:
        """``fn``'s return data as web3 answers it (addresses checksummed, one output unwrapped)."""
        result = result or "0x"
        types = get_abi_output_types(fn.abi)
        try:
            decoded = self.w3.codec.decode(types, bytes(HexBytes(result)))
        except DecodingError as exc:
            raise BadFunctionCallOutput(f"could not decode {gas_bounds.signature(fn)} from {result}") from exc
        values = (
            map_abi_data(BASE_RETURN_NORMALIZERS, types, decoded)
            if any("address" in t or "[" in t or "(" in t for t in types)  # web3's lists, checksums
            else list(decoded)
        )
        return values[0] if len(values) == 1 else values

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            with _node_errors():
                self._chain_id = self.w3.eth.chain_id
        return self._chain_id

    # -- internals -------------------------------------------------------------------------

    def estimate(self, fn: ContractFunction, sender: str) -> int:
        """Gas for ``fn`` sent by ``sender``, with a margin; a refusal raises ContractError."""
        with _node_errors():
            try:
                return int(fn.estimate_gas({"from": sender}) * GAS_MARGIN)  # type: ignore[typeddict-item]
            except ContractLogicError as exc:
                raise self.errors.decode(_revert_data(exc)) from None

    def estimate_call(self, call: TxParams) -> int:
        """Gas for an encoded ``call``, with a margin; a refusal raises ContractError. Over HTTP a
        raw ``eth_estimateGas`` (see :meth:`_rpc`)."""
        if isinstance(self.w3.provider, HTTPProvider):
            params = {k: hex(v) if isinstance(v, int) else v for k, v in call.items()}
            return int(int(self._rpc("eth_estimateGas", [params], reverts=True), 16) * GAS_MARGIN)
        with _node_errors():
            try:
                return int(self.w3.eth.estimate_gas(call) * GAS_MARGIN)
            except ContractLogicError as exc:
                raise self.errors.decode(_revert_data(exc)) from None

    def _rpc(self, method: str, params: list[Any], *, reverts: bool = False) -> Any:
        """One JSON-RPC request straight through the provider: its ``result``; a node's error is
        web3's ``Web3RPCError`` (with its message), and with ``reverts`` a revert (web3's own
        classifier) is the contract's decoded custom error. web3's request path (validation,
        middleware, result formatters) cost more CPU than the node took to answer."""
        with _node_errors():
            answer = self.w3.provider.make_request(RPCEndpoint(method), params)
        return self._result(answer, reverts=reverts)

    def _result(self, answer: Any, *, reverts: bool = False) -> Any:
        """The ``result`` of one JSON-RPC answer; its error raised as :meth:`_rpc` says."""
        if "error" in answer:
            if reverts:
                try:
                    raise_contract_logic_error_on_revert(answer)
                except ContractLogicError as exc:
                    raise self.errors.decode(_revert_data(exc)) from None
            raise Web3RPCError(str(answer["error"]))
        return answer.get("result")

    def fees(self) -> dict[str, int]:
        """EIP-1559 fees from the latest base fee, or a legacy gas price where there is none.

        Read for every transaction: a few full blocks (a payroll's chunks) raise the base fee past
        twice a value read a moment before (cached for a second, the chunks were refused).
        """
        return self._read_fees()

    def _read_fees(self) -> dict[str, int]:
        with _node_errors():
            base = self._latest_base_fee()
            if base is None:  # a pre-London or free-gas network: legacy pricing
                return {"gasPrice": self.w3.eth.gas_price}
        return {
            "maxFeePerGas": 2 * base + self.priority_fee_wei,
            "maxPriorityFeePerGas": self.priority_fee_wei,
        }

    def _latest_base_fee(self) -> int | None:
        """The latest block's base fee (None before London). Over HTTP the block header is read
        raw: web3's block formatters walk every field of it, for one number (6% of a payroll's
        service time, once per transaction)."""
        if not isinstance(self.w3.provider, HTTPProvider):
            base = self.w3.eth.get_block("latest").get("baseFeePerGas")
            return None if base is None else int(base)
        answer = self.w3.provider.make_request(RPCEndpoint("eth_getBlockByNumber"), ["latest", False])
        if "error" in answer:
            raise Web3RPCError(str(answer["error"]))
        raw = (answer.get("result") or {}).get("baseFeePerGas")
        return None if raw is None else int(raw, 16)

    def send_value(self, account: LocalAccount, to: str, wei: int) -> TxResult:
        """Send ether (gas money for a custodial wallet on a chain that charges gas)."""
        tx: TxParams = {"from": account.address, "to": to, "value": wei, "gas": 21_000}  # type: ignore[typeddict-item]
        tx.update(self.fees())  # type: ignore[typeddict-item]
        tx["chainId"] = self.chain_id
        return self.wait(self.send_raw(account, tx).tx_hash)

    def send_values(self, account: LocalAccount, payments: list[tuple[str, int]]) -> None:
        """Send ether to many addresses with consecutive nonces, at most SEND_WINDOW of them
        waiting to be mined at a time, and wait for all of them."""
        if not payments:
            return
        fees = {**self.fees(), "chainId": self.chain_id}
        outstanding: deque[SentTx] = deque()
        for to, wei in payments:
            tx = {"from": account.address, "to": to, "value": wei, "gas": 21_000, **fees}
            outstanding.append(self.send_raw(account, tx))  # type: ignore[arg-type]
            if len(outstanding) >= SEND_WINDOW:  # a long queue of pending sends stalls anvil
                self.wait(outstanding.popleft().tx_hash)
        for sent in outstanding:
            self.wait(sent.tx_hash)

    def revert_error(self, tx_hash: str, receipt: TxReceipt) -> Exception:
        """Re-run a reverted transaction as a call on its parent block to read the revert data."""
        tx = self.w3.eth.get_transaction(HexBytes(tx_hash))
        call: TxParams = {
            "from": tx["from"],
            "to": tx["to"],
            "data": tx["input"],
            "gas": tx["gas"],
            "value": tx["value"],
        }
        if int(tx["gas"]) - int(receipt["gasUsed"]) <= OUT_OF_GAS_SLACK:
            # Perhaps starved: replayed with the node's own limit, a refusal is the contract's
            # answer; a success means the limit was too low, which must never pass for a refusal
            # (a starved payout call reverts with the contract's "transfer failed", say).
            unlimited = {k: v for k, v in call.items() if k != "gas"}
            for block in (receipt["blockNumber"] - 1, receipt["blockNumber"]):
                try:
                    self.w3.eth.call(unlimited, block)  # type: ignore[arg-type]
                except ContractLogicError as exc:
                    return self.errors.decode(_revert_data(exc), tx_hash=tx_hash)
                except Web3RPCError:  # that block's state is gone (chain.processes.NODE_STATE_HISTORY)
                    return self.errors.decode(None, tx_hash=tx_hash)
            self._unbounded.add(gas_bounds.selectors().get(bytes(HexBytes(tx["input"]))[:4], ""))
            return OutOfGas(int(tx["gas"]), tx_hash=tx_hash)
        # The parent block has the state the transaction ran on, but not its block's time: a
        # transaction that reverted because the clock passed a deadline between sending and mining
        # only reverts again when replayed at its own block (whose state it left unchanged).
        for block in (receipt["blockNumber"] - 1, receipt["blockNumber"]):
            try:
                self.w3.eth.call(call, block)
            except ContractLogicError as exc:
                return self.errors.decode(_revert_data(exc), tx_hash=tx_hash)
            except Web3RPCError:  # that block's state is gone: the revert stays undecoded
                break
        return self.errors.decode(None, tx_hash=tx_hash)


def encode_call(w3: Web3, fn: ContractFunction) -> str:
    """``fn``'s call data: its selector and its arguments encoded straight by the ABI codec.

    web3's own encoder first checks every argument against every overload of the name (for a
    200-row payroll chunk ~107 ms, as long as the node took to run it); a call it would refuse
    (keyword arguments, a value the codec cannot take) still goes through web3, for web3's error.
    """
    if not fn.kwargs:
        try:
            types, selector = _signature_types(gas_bounds.signature(fn))
            args = list(fn.args or ())
            fast = fast_encode(types, args)
            return "0x" + (selector + (fast if fast is not None else w3.codec.encode(types, args))).hex()
        except Exception:
            pass
    return web3_encode(w3, fn)


# -- a direct encoder for the row-shaped calls ------------------------------------------------------
#
# eth_abi checks each address of a 200-row chunk (a regular expression, an ENS-name test, a checksum)
# before encoding it: 23% of a payroll's service CPU. The calls whose size grows with their rows
# take only elementary static values and dynamic arrays of them or of tuples of them; those are
# encoded here word by word, with the same checks in a cheaper form. Anything else, or any value
# not plainly valid, returns None and goes through eth_abi (and web3's errors) as before;
# tests/chain/test_fast_encoding.py compares both.


def _word_of(abi_type: str) -> Callable[[Any], bytes] | None:
    """How to encode one value of an elementary static ABI type as its 32-byte word."""
    if abi_type == "address":
        return _address_word
    if abi_type == "bool":
        return _bool_word
    if abi_type.startswith("uint") and abi_type[4:].isdigit():
        bits = int(abi_type[4:])
        if bits % 8 or not 8 <= bits <= 256:
            return None

        def uint(value: Any, limit: int = 1 << bits) -> bytes:
            if value.__class__ is not int or not 0 <= value < limit:
                raise _Unsupported
            return value.to_bytes(32, "big")

        return uint
    if abi_type.startswith("bytes") and abi_type[5:].isdigit():
        size = int(abi_type[5:])
        if not 1 <= size <= 32:
            return None

        def fixed(value: Any) -> bytes:
            if not isinstance(value, bytes) or len(value) != size:
                raise _Unsupported
            return bytes(value).ljust(32, b"\0")

        return fixed
    return None


class _Unsupported(Exception):
    """A value the direct encoder leaves to eth_abi."""


_HEX40 = frozenset("0123456789abcdefABCDEF")


def _address_word(value: Any) -> bytes:
    if value.__class__ is str and len(value) == 42 and value[:2] == "0x":
        body = value[2:]
        if not _HEX40.issuperset(body):
            raise _Unsupported
        if body != body.lower() and body != body.upper() and checksum(value) != value:
            raise _Unsupported  # a wrong EIP-55 checksum: eth_abi's error
        return bytes(12) + bytes.fromhex(body)
    raise _Unsupported


def _bool_word(value: Any) -> bytes:
    if value.__class__ is not bool:
        raise _Unsupported
    return bytes(31) + (b"\1" if value else b"\0")


@lru_cache(maxsize=256)
def _plan(abi_type: str) -> tuple[str, tuple[Callable[[Any], bytes], ...]] | None:
    """("static", (word,)), ("array", (word,)), ("array-of-tuples", (word, ...)) or
    ("arrays-of-tuples", (word, ...)) for a dynamic array of such arrays (``addChunks``'s
    chunks); None: eth_abi."""
    if abi_type.endswith("[][]"):
        inner_plan = _plan(abi_type[:-2])
        if inner_plan is None or inner_plan[0] != "array-of-tuples":
            return None
        return "arrays-of-tuples", inner_plan[1]
    if abi_type.endswith("[]"):
        inner = abi_type[:-2]
        if inner.startswith("(") and inner.endswith(")"):
            words = [_word_of(t) for t in inner[1:-1].split(",")]
            if not inner[1:-1] or any(w is None for w in words):
                return None
            return "array-of-tuples", tuple(w for w in words if w is not None)
        word = _word_of(inner)
        return None if word is None else ("array", (word,))
    word = _word_of(abi_type)
    return None if word is None else ("static", (word,))


def fast_encode(types: list[str], args: list[Any]) -> bytes | None:
    """The ABI encoding of ``args`` as ``types``, or None when it is eth_abi's to do."""
    plans = [_plan(t) for t in types]
    if len(args) != len(types) or any(p is None for p in plans):
        return None
    head: list[bytes] = []
    tail: list[bytes] = []
    offset = 32 * len(types)
    try:
        for plan, value in zip(plans, args, strict=True):
            assert plan is not None
            kind, words = plan
            if kind == "static":
                head.append(words[0](value))
                continue
            blob = _dynamic(kind, words, value)
            head.append(offset.to_bytes(32, "big"))
            tail.append(blob)
            offset += len(blob)
    except _Unsupported:
        return None
    return b"".join(head) + b"".join(tail)


def _dynamic(kind: str, words: tuple[Callable[[Any], bytes], ...], value: Any) -> bytes:
    """The tail encoding of one dynamic array (its length, then its items); raises _Unsupported
    for a value that is not plainly one."""
    if not isinstance(value, list | tuple):
        raise _Unsupported
    count = len(value).to_bytes(32, "big")
    if kind == "arrays-of-tuples":  # each inner array is dynamic: offsets from after the length
        inner = [_dynamic("array-of-tuples", words, v) for v in value]
        offsets, at = [], 32 * len(inner)
        for blob in inner:
            offsets.append(at.to_bytes(32, "big"))
            at += len(blob)
        return b"".join([count, *offsets, *inner])
    part = [count]
    if kind == "array":
        word = words[0]
        part += [word(v) for v in value]
    else:
        width = len(words)
        for row in value:
            if not isinstance(row, list | tuple) or len(row) != width:
                raise _Unsupported
            part += [w(v) for w, v in zip(words, row, strict=True)]
    return b"".join(part)


def web3_encode(w3: Web3, fn: ContractFunction) -> str:
    """``fn``'s call data by web3's own (public) encoder, which checks the arguments first."""
    contract = w3.eth.contract(abi=fn.contract_abi)
    return contract.encode_abi(gas_bounds.signature(fn), args=list(fn.args or ()), kwargs=fn.kwargs or {})


@lru_cache(maxsize=512)
def _signature_types(signature: str) -> tuple[list[str], bytes]:
    """The argument types of a canonical signature (``name(t1,(t2,t3)[])``) and its selector."""
    inner = signature[signature.index("(") + 1 : -1]
    types, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        depth += c == "("
        depth -= c == ")"
        if c == "," and depth == 0:
            types.append(inner[start:i])
            start = i + 1
    if inner:
        types.append(inner[start:])
    return types, function_signature_to_4byte_selector(signature)


_QUANTITIES = frozenset(
    {"blockNumber", "status", "gasUsed", "cumulativeGasUsed", "transactionIndex", "effectiveGasPrice", "type"}
    | {"blobGasUsed", "blobGasPrice", "logIndex"}
)
_ADDRESSES = frozenset({"from", "to", "contractAddress", "address"})
_BYTES = frozenset({"blockHash", "transactionHash", "logsBloom", "data", "root"})


def _light(value: dict[str, Any], memo: dict[str, HexBytes] | None = None) -> dict[str, Any]:
    """``value`` with web3's types. ``memo``: the byte strings already built for this receipt
    (its block and transaction hashes, and the topics its logs repeat: a 200-row payroll chunk
    has 600 logs, each with the same hashes and mostly the same event signature, batch and
    purpose topics); HexBytes are immutable, so the same one serves every log."""
    memo = {} if memo is None else memo
    out: dict[str, Any] = {}
    for key, v in value.items():
        if v is None or isinstance(v, bool):
            out[key] = v
        elif key in _QUANTITIES:
            out[key] = int(v, 16)
        elif key in _ADDRESSES:
            out[key] = checksum(v)
        elif key == "topics":
            out[key] = [_hexbytes(t, memo) for t in v]
        elif key in _BYTES:
            out[key] = _hexbytes(v, memo)
        else:  # what web3 does not know it leaves as the node sent it
            out[key] = v
    return out


def _hexbytes(text: str, memo: dict[str, HexBytes]) -> HexBytes:
    """``HexBytes(text)`` for a ``0x`` hex string, built once per ``memo`` and without
    ``HexBytes.__new__``'s checks of every input type (it is a plain ``bytes`` subclass)."""
    found = memo.get(text)
    if found is None:
        found = memo[text] = bytes.__new__(HexBytes, bytes.fromhex(text[2:]))
    return found


def light_log(raw: dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC log with web3's types (what :class:`chain.events.EventDecoder` reads)."""
    return _light(raw)


def _light_receipt(raw: dict[str, Any], type_logs: bool = True) -> TxReceipt:
    """A JSON-RPC receipt with web3's types (ints, checksum addresses, bytes), its logs too unless
    ``type_logs`` is false (then they stay as the node sent them)."""
    memo: dict[str, HexBytes] = {}
    receipt = _light({k: v for k, v in raw.items() if k != "logs"}, memo)
    logs = raw.get("logs", [])
    receipt["logs"] = [_light(log, memo) for log in logs] if type_logs else list(logs)
    return receipt  # type: ignore[return-value]


def _revert_data(exc: ContractLogicError) -> str | None:
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return data
    if isinstance(data, dict):  # some nodes nest it
        inner = data.get("data")
        return inner if isinstance(inner, str) else None
    return None


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the node did not answer (rather than that it refused)."""
    return isinstance(exc, requests.ConnectionError | requests.Timeout | ConnectionError | NodeUnavailable)


@contextmanager
def node_errors() -> Iterator[None]:
    """Connection failures become NodeUnavailable, so callers can tell 'down' from 'refused'."""
    try:
        yield
    except NodeUnavailable:
        raise
    except (requests.ConnectionError, requests.Timeout, ConnectionError) as exc:
        raise NodeUnavailable(f"JSON-RPC node unavailable: {exc}") from exc


_node_errors = node_errors


def nonce_taken(message: str) -> bool:
    """A node's words for "another transaction has this nonce": mined already (eth-tester:
    "Invalid transaction nonce", anvil and geth: "nonce too low"), or waiting in its pool (anvil
    and geth: "replacement transaction underpriced", as ours pays the same fee)."""
    message = message.lower()
    return "nonce" in message or "replacement transaction underpriced" in message


class _NonceTaken(Exception):
    """The node refused a transaction because its nonce is used already."""
