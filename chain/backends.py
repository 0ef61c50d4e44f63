"""Connect to a chain: the in-process eth-tester chain (contract tests) or any JSON-RPC URL.

Everything above this module talks to a plain :class:`web3.Web3`; nothing depends on which
backend is behind it, and nothing uses node-managed accounts (transactions are signed locally,
see :mod:`chain.sender`).
"""

from __future__ import annotations

import ast
import os
import threading
import urllib.parse
from http import client as http_client
from typing import Any, cast

import requests
import requests.adapters
import requests.utils
from eth.exceptions import BlockNotFound, HeaderNotFound
from eth.exceptions import TransactionNotFound as EvmTransactionNotFound
from eth_abi import encode as abi_encode
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm import main as _pyevm_main
from eth_tester.exceptions import TransactionFailed
from eth_utils import function_signature_to_4byte_selector
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3._utils.http_session_manager import HTTPSessionManager
from web3.providers.eth_tester.defaults import API_ENDPOINTS
from web3.providers.eth_tester.middleware import (
    DefaultTransactionFieldsMiddleware,
    ethereum_tester_middleware,
)
from web3.providers.rpc.utils import ExceptionRetryConfiguration
from web3.types import RPCEndpoint, RPCResponse

from chain.accounts import DEV_ACCOUNT_COUNT, DEV_MNEMONIC

IN_PROCESS = "in-process"

# Generous gas limit so large batches fit in one block on the local chain.
_GENESIS_GAS_LIMIT = 60_000_000


def _estimate_in_one_run(state: Any, transaction: Any) -> int:
    """Gas estimate from one execution instead of py-evm's binary search (about 14 executions).

    The transaction runs once with the block gas limit; the estimate is its intrinsic gas plus
    the execution gas with the 64/63 headroom that nested calls need, and it is checked by a
    second run at exactly that limit. Should that run fail, py-evm's binary search decides.
    Estimation was 86% of the time of a transfer on the in-process chain.
    """
    from eth.estimators.gas import binary_gas_search_intrinsic_tolerance
    from eth.vm.spoof import SpoofTransaction

    def run(gas: int) -> Any:
        snap = state.snapshot()
        try:
            return state.apply_transaction(SpoofTransaction(transaction, gas=gas, gas_price=0))
        finally:
            state.revert(snap)

    first = run(state.gas_limit)
    if first.is_error:
        raise first.error
    estimate = transaction.intrinsic_gas + (first.get_gas_used() + first.get_gas_refund()) * 64 // 63 + 2_300
    estimate = min(estimate, state.gas_limit)
    if run(estimate).is_error:
        return int(binary_gas_search_intrinsic_tolerance(state, transaction))
    return int(estimate)


def _indexed_transaction_by_hash(chain: Any, transaction_hash: bytes) -> tuple[Any, Any, int]:
    """eth-tester's transaction lookup by the chain database's hash index instead of a scan.

    eth-tester finds a transaction (``eth_getTransactionByHash``, ``eth_getTransactionReceipt``)
    by walking every block back from the newest (its own TODO says so), so each receipt costs
    more the longer the chain: ~30% of the CPU of the reconciliation's tests. py-evm keeps a
    hash -> (block, index) index of the canonical chain; it is used when its answer holds that
    very transaction (a snapshot revert can leave a stale entry), else the original scan runs."""
    head = chain.get_block()  # the pending block: not in the index
    for index, transaction in enumerate(head.transactions):
        if transaction.hash == transaction_hash:
            return head, transaction, index
    try:
        number, index = chain.chaindb.get_transaction_index(transaction_hash)
        block = chain.get_canonical_block_by_number(number)
    except (EvmTransactionNotFound, BlockNotFound, HeaderNotFound):
        block, index = None, -1
    transactions = [] if block is None else block.transactions
    if 0 <= index < len(transactions) and transactions[index].hash == transaction_hash:
        return block, transactions[index], index
    return _scan_transaction_by_hash(chain, transaction_hash)


_scan_transaction_by_hash = _pyevm_main._get_transaction_by_hash
_pyevm_main._get_transaction_by_hash = _indexed_transaction_by_hash


def new_tester() -> EthereumTester:
    """A fresh py-evm chain whose funded accounts are the development mnemonic's."""
    backend = PyEVMBackend.from_mnemonic(
        DEV_MNEMONIC,
        num_accounts=DEV_ACCOUNT_COUNT,
        hd_path="m/44'/60'/0'/0",
        genesis_parameters=PyEVMBackend.generate_genesis_params(overrides={"gas_limit": _GENESIS_GAS_LIMIT}),
    )
    # py-evm's Chain.__init__ puts binary search on the *instance* when the class has no estimator,
    # so the class attribute alone is never used by this chain; it only reaches the new chain
    # object a snapshot revert builds. Both places: the instance now, the class for later ones.
    type(backend.chain).gas_estimator = staticmethod(_estimate_in_one_run)
    backend.chain.gas_estimator = _estimate_in_one_run
    return EthereumTester(backend)


class _Reverted(Exception):
    """Internal: a call reverted with ``data`` (hex). Not a TransactionFailed on purpose."""

    def __init__(self, data: str) -> None:
        super().__init__(data)
        self.data = data


def _revert_hex(exc: TransactionFailed) -> str:
    """eth-tester reports revert data as bytes, a bytes literal in a str, or a reason string."""
    raw: Any = exc.args[0] if exc.args else b""
    if isinstance(raw, Exception):
        raw = raw.args[0] if raw.args else b""
    if isinstance(raw, str) and raw.startswith(("b'", 'b"')):
        raw = ast.literal_eval(raw)
    if isinstance(raw, str):  # a plain reason: encode it the way Solidity does
        raw = function_signature_to_4byte_selector("Error(string)") + abi_encode(["string"], [raw])
    return "0x" + bytes(raw).hex()


def _keep_revert_data(delegator: Any) -> Any:
    def call(eth_tester: EthereumTester, params: Any) -> Any:
        try:
            return delegator(eth_tester, params)
        except TransactionFailed as exc:
            raise _Reverted(_revert_hex(exc)) from None

    return call


_FILLS_FROM = ("eth_call", "eth_estimateGas", "eth_sendTransaction", "eth_createAccessList")


class _DefaultFrom(DefaultTransactionFieldsMiddleware):
    """web3's ``default_transaction_fields_middleware`` with the first account read once.

    web3's own fills a missing ``from`` with ``w3.eth.accounts[0]``, asking the chain for every
    account (and checksumming each) three times per ``eth_call``: a third of a contract read on
    this backend. The accounts of an in-process chain are fixed at its creation (nothing here
    adds node-managed accounts), so the same address is filled from a value read once.
    """

    def request_processor(self, method: RPCEndpoint, params: Any) -> Any:
        if method in _FILLS_FROM and params[0].get("from") is None:
            provider = cast(TesterProvider, self._w3.provider)
            params = [{**params[0], "from": provider.first_account()}, *list(params)[1:]]
        return method, params


class TesterProvider(EthereumTesterProvider):
    """web3's eth-tester provider, answering reverts the way a JSON-RPC node does.

    web3 7's provider turns a reverted ``eth_call`` / ``eth_estimateGas`` into a string and
    loses the revert data, so custom errors cannot be decoded. Here they come back as a JSON-RPC
    error (code 3, ``data`` = selector + arguments), exactly as from anvil or Besu, so the
    rest of the chain layer has one code path for every backend.
    """

    _middleware = (_DefaultFrom, ethereum_tester_middleware)

    def __init__(self, tester: EthereumTester) -> None:
        endpoints = {ns: dict(fns) for ns, fns in API_ENDPOINTS.items()}
        endpoints["eth"]["call"] = _keep_revert_data(endpoints["eth"]["call"])
        endpoints["eth"]["estimateGas"] = _keep_revert_data(endpoints["eth"]["estimateGas"])
        super().__init__(tester, api_endpoints=endpoints)
        self._lock = threading.RLock()  # py-evm is not thread-safe; web servers call from threads
        self._first_account: str | None = None

    def first_account(self) -> str:
        """``eth_accounts[0]``, as web3's middleware would fill it in, read once."""
        if self._first_account is None:
            tester = cast(EthereumTester, self.ethereum_tester)
            self._first_account = Web3.to_checksum_address(tester.get_accounts()[0])
        return self._first_account

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            with self._lock:
                return super().make_request(method, params)
        except _Reverted as exc:
            return {
                "jsonrpc": "2.0",
                "id": self._current_request_id,
                "error": {"code": 3, "message": "execution reverted", "data": exc.data},
            }


def in_process(tester: EthereumTester | None = None) -> Web3:
    """Web3 over an in-process eth-tester chain (fastest; what most tests use)."""
    return Web3(TesterProvider(tester or new_tester()))


def http(url: str, timeout_s: float = 30.0) -> Web3:
    """Web3 over HTTP JSON-RPC (anvil, Besu...).

    ``eth_chainId`` is answered once per connection: web3's validation asks for it before every
    ``eth_call``, ``eth_estimateGas`` and send (60,046 of a 10k-payroll reconciliation's 90,371
    calls), and a node's chain id does not change under a running connection.
    """
    session = _session(url)
    provider = HTTPProvider(
        url,
        request_kwargs={"timeout": timeout_s},
        session=session,
        cache_allowed_requests=True,
        cacheable_requests={RPCEndpoint("eth_chainId")},
        # web3 retries a read five times, a timeout included: a node that accepts connections
        # but does not answer (hung, stopped with SIGSTOP) held each request for five timeouts
        # (~300 s at 60 s) before the 503 (red team, 2026-11-26). A refused or dropped
        # connection is still retried; a timeout is the node's answer: unavailable.
        exception_retry_configuration=ExceptionRetryConfiguration(
            errors=(ConnectionError, requests.HTTPError)
        ),
    )
    if _plain(url, session):
        provider._request_session_manager = LeanPost(url, timeout_s)
    return Web3(provider)


def _plain(url: str, session: requests.Session) -> bool:
    """Whether ``url`` is reached without what only requests does: plain HTTP, no proxy, no
    credentials (an https node, a proxy, a netrc entry or a user and password in the URL keep the
    requests session)."""
    parts = urllib.parse.urlsplit(url)
    return (
        parts.scheme == "http"
        and bool(parts.hostname)
        and not (parts.username or parts.password)  # requests sends a URL's user:password as Basic auth
        and not session.proxies
        and session.auth is None
    )


class LeanPost(HTTPSessionManager):
    """web3's POST of a JSON-RPC request over one kept-alive ``http.client`` connection per
    thread, instead of a requests session.

    Profiled on one issuance through the operator (issue 19, py-spy on the service, samples that
    held the GIL): a quarter of the service's CPU went to requests and urllib3 preparing and
    sending the five JSON-RPC requests of the operation (URL parsing and quoting, merging
    settings, hooks, the pool), for bodies of a few hundred bytes. This keeps web3's request path
    and its own contract with the transport: it answers the response body as bytes, raises
    ``requests.HTTPError`` for a status of 400 or more, ``requests.Timeout`` when the node does
    not answer in time and ``requests.ConnectionError`` when it cannot be reached, so web3's retry
    of read methods and :func:`chain.sender.node_errors` (down, not refused) see what they saw
    before. A kept-alive connection the node has closed meanwhile is opened again once, as
    urllib3 does, and only when the request was not answered at all.
    """

    def __init__(self, url: str, timeout_s: float) -> None:
        super().__init__()
        parts = urllib.parse.urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout_s = timeout_s
        self._local = threading.local()

    def _connection(self, timeout: float) -> tuple[http_client.HTTPConnection, bool]:
        conn: http_client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.timeout == timeout:
            return conn, True
        if conn is not None:
            conn.close()
        conn = http_client.HTTPConnection(self._host, self._port, timeout=timeout)
        self._local.conn = conn
        return conn, False

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def make_post_request(self, endpoint_uri: Any, data: bytes | dict[str, Any], **kwargs: Any) -> bytes:
        body = data if isinstance(data, bytes) else str(data).encode()
        timeout = kwargs.get("timeout") or self._timeout_s
        timeout = float(timeout[1] if isinstance(timeout, tuple) else timeout)
        headers = {"Content-Type": "application/json", **(kwargs.get("headers") or {})}
        for attempt in (0, 1):
            conn, reused = self._connection(timeout)
            try:
                conn.request("POST", self._path, body, headers)
                response = conn.getresponse()
                content = response.read()
            except TimeoutError as exc:
                self._drop()
                raise requests.Timeout(f"JSON-RPC node at {self._host}:{self._port}: {exc}") from exc
            except (OSError, http_client.HTTPException) as exc:
                self._drop()
                stale = reused and isinstance(
                    exc, http_client.RemoteDisconnected | BrokenPipeError | ConnectionResetError
                )
                if stale and attempt == 0:
                    continue  # the node closed an idle kept-alive connection: a new one, once
                raise requests.ConnectionError(f"JSON-RPC node at {self._host}:{self._port}: {exc}") from exc
            if response.will_close:
                self._drop()
            if response.status >= 400:
                raise requests.HTTPError(
                    f"{response.status} {response.reason} from the JSON-RPC node at {self._host}:{self._port}"
                )
            return content
        raise AssertionError("unreachable")  # pragma: no cover


def _session(url: str) -> requests.Session:
    """One HTTP session for every thread of the process, reading the environment once.

    requests reads the proxy variables (walking the whole environment, twice), the CA bundle
    variables and ~/.netrc again for every request: a quarter of the CPU of a JSON-RPC call once
    web3's own machinery is bypassed (chain/sender.py). The same settings are read here, once,
    for the node's URL. web3 otherwise keeps a session per thread; a shared one has a connection
    pool large enough for the services' worker threads."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    auth = requests.utils.get_netrc_auth(url)
    if auth:
        session.auth = auth
    session.trust_env = False  # read above, once
    return session


def connect(rpc: str | None, timeout_s: float = 30.0) -> Web3:
    """``None`` or ``"in-process"`` gives a fresh in-process chain; anything else is a URL."""
    if rpc is None or rpc == IN_PROCESS:
        return in_process()
    return http(rpc, timeout_s)


def is_in_process(w3: Web3) -> bool:
    return isinstance(w3.provider, EthereumTesterProvider)
