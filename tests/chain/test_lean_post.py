"""The JSON-RPC transport of :func:`chain.backends.http` (``LeanPost``, issue 19): one kept-alive
``http.client`` connection per thread instead of a requests session. It must answer what the
requests session answers, on a real anvil, and fail the way requests failed, so that web3's retry
of reads and ``node_errors`` (down, not refused) are unchanged: against small real HTTP servers
that close kept-alive connections, answer 500, or never answer."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

from chain.backends import LeanPost, http
from chain.exceptions import NodeUnavailable
from chain.processes import anvil_node, free_port
from chain.sender import node_errors


@pytest.fixture(scope="module")
def anvil() -> Iterator[str]:
    with anvil_node() as url:
        yield url


def test_plain_http_node_uses_the_lean_transport(anvil: str) -> None:
    provider = http(anvil).provider
    assert isinstance(provider, HTTPProvider)
    assert isinstance(provider._request_session_manager, LeanPost)


def test_a_proxy_keeps_the_requests_session(anvil: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")
    provider = http(anvil).provider
    assert isinstance(provider, HTTPProvider)
    assert not isinstance(provider._request_session_manager, LeanPost)


def test_credentials_in_the_url_keep_the_requests_session(anvil: str) -> None:
    """requests sends a URL's user and password as Basic auth; the lean transport would drop them."""
    provider = http(anvil.replace("http://", "http://rpc:secret@")).provider
    assert isinstance(provider, HTTPProvider)
    assert not isinstance(provider._request_session_manager, LeanPost)


def test_answers_equal_the_requests_session(anvil: str) -> None:
    lean = http(anvil)
    plain = Web3(HTTPProvider(anvil))
    assert lean.eth.chain_id == plain.eth.chain_id
    for method, params in (
        ("eth_getBlockByNumber", ["latest", False]),
        ("eth_getBalance", ["0x0000000000000000000000000000000000000000", "latest"]),
        ("eth_call", [{"to": "0x0000000000000000000000000000000000000001", "data": "0x"}, "latest"]),
        ("eth_noSuchMethod", []),
    ):
        mine = dict(lean.provider.make_request(RPCEndpoint(method), params))
        theirs = dict(plain.provider.make_request(RPCEndpoint(method), params))
        mine.pop("id"), theirs.pop("id")  # each provider numbers its own requests
        assert mine == theirs
        assert ("error" in mine) == (method == "eth_noSuchMethod")
    # A batch goes through the same transport.
    batch = lean.provider.make_batch_request(
        [(RPCEndpoint("eth_chainId"), []), (RPCEndpoint("eth_blockNumber"), [])]
    )
    assert isinstance(batch, list) and len(batch) == 2
    assert int(batch[0]["result"], 16) == plain.eth.chain_id


def test_threads_each_keep_one_connection(anvil: str) -> None:
    w3 = http(anvil)
    manager = w3.provider._request_session_manager  # type: ignore[attr-defined]
    seen: list[object] = []

    def reads() -> None:
        for _ in range(3):
            _ = w3.eth.block_number
            seen.append(manager._local.conn)

    threads = [threading.Thread(target=reads) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 12
    assert len({id(c) for c in seen}) == 4  # one per thread, kept alive across its requests


class _Server:
    """A real HTTP server on a free port whose handler answers as the test says."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _ClosesAfterEachAnswer(BaseHTTPRequestHandler):
    """Answers ``eth_blockNumber`` as 0x7, keeps the connection open by its headers (HTTP/1.1,
    no ``Connection: close``) and then closes it: the next request on the kept-alive connection
    meets a closed socket, as after a node's idle timeout."""

    protocol_version = "HTTP/1.1"
    answered = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"jsonrpc":"2.0","id":0,"result":"0x7"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        type(self).answered += 1
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


class _Answers500(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_connection_the_node_closed_is_opened_again() -> None:
    with _Server(_ClosesAfterEachAnswer) as server:
        manager = LeanPost(server.url, 5.0)
        answers = [
            manager.make_post_request(server.url, b'{"jsonrpc":"2.0","id":0,"method":"eth_blockNumber"}')
            for _ in range(3)
        ]
    assert answers == [b'{"jsonrpc":"2.0","id":0,"result":"0x7"}'] * 3
    assert _ClosesAfterEachAnswer.answered == 3  # each request answered once: no request sent twice


def test_an_error_status_is_requests_http_error() -> None:
    with _Server(_Answers500) as server:
        manager = LeanPost(server.url, 5.0)
        with pytest.raises(requests.HTTPError, match="500"):
            manager.make_post_request(server.url, b"{}")


def test_a_node_that_is_not_there_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    manager = LeanPost(url, 5.0)
    with pytest.raises(requests.ConnectionError):
        manager.make_post_request(url, b"{}")
    with pytest.raises(NodeUnavailable), node_errors():
        manager.make_post_request(url, b"{}")


def test_a_node_that_does_not_answer_times_out() -> None:
    with socket.socket() as listener:  # accepts (the kernel's backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        manager = LeanPost(url, 0.2)
        with pytest.raises(requests.Timeout):
            manager.make_post_request(url, b"{}")
        with pytest.raises(NodeUnavailable), node_errors():
            manager.make_post_request(url, b"{}")


def test_a_read_from_a_node_that_does_not_answer_is_tried_once() -> None:
    """web3 retried a timed-out read five times: a hung node held a request for five timeouts
    (~300 s) before its 503. A timeout is now final; the connections the node accepted count it."""
    accepted: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.1)
        done = threading.Event()

        def accept() -> None:  # accepts, reads nothing, never answers
            while not done.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except TimeoutError:
                    continue

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        w3 = http(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_s=0.3)
        try:
            with pytest.raises(requests.Timeout):
                w3.eth.get_block_number()
        finally:
            done.set()
            t.join(timeout=5)
            for conn in accepted:
                conn.close()
    assert len(accepted) == 1
