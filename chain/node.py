"""The embedded node: an eth-tester chain served over HTTP JSON-RPC on one local port.

It lets two processes (the operator and the gateway, a test and the services) share one chain
without installing a client. Standard ``eth_*``/``net_*``/``web3_*`` methods are answered by the
eth-tester provider; ``evm_increaseTime``, ``evm_mine``, ``evm_snapshot`` and ``evm_revert``
use the names anvil and Hardhat use, so tests travel in time the same way on both.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.datastructures import AttributeDict

from chain.backends import TesterProvider, new_tester

log = logging.getLogger("xcpay.node")


def _to_json_rpc(value: Any) -> Any:
    """eth-tester answers in Python types; JSON-RPC wants hex quantities and hex data."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray | HexBytes):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict | AttributeDict):
        return {k: _to_json_rpc(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json_rpc(v) for v in value]
    return value


class EmbeddedChain:
    """One eth-tester chain and a lock: py-evm is not thread-safe, requests are serialised."""

    def __init__(self) -> None:
        self.tester = new_tester()
        self.provider = TesterProvider(self.tester)
        self._w3 = Web3(self.provider, middleware=[])
        self._request = self.provider.request_func(self._w3, self._w3.middleware_onion)
        self.lock = threading.Lock()

    def handle(self, request: Any) -> Any:
        if not isinstance(request, dict) or "method" not in request:
            return _error(None, -32600, "invalid request")
        rid = request.get("id")
        method = request["method"]
        params = request.get("params") or []
        try:
            with self.lock:
                special = self._special(method, params)
                if special is not None:
                    return {"jsonrpc": "2.0", "id": rid, "result": special}
                response = self._request(method, params)
        except Exception as exc:  # the node must answer, never drop the connection
            log.debug("%s failed: %s", method, exc)
            return _error(rid, -32000, str(exc))
        out = {"jsonrpc": "2.0", "id": rid}
        if "error" in response:
            error = dict(response["error"])
            out["error"] = {**_to_json_rpc(error), "code": int(error.get("code", -32000))}
        else:
            out["result"] = _to_json_rpc(response.get("result"))
        return out

    def _special(self, method: str, params: list[Any]) -> Any:
        t = self.tester
        if method == "evm_increaseTime":
            seconds = int(params[0], 16) if isinstance(params[0], str) else int(params[0])
            t.time_travel(t.get_block_by_number("pending")["timestamp"] + seconds)
            return hex(seconds)
        if method == "evm_setNextBlockTimestamp":
            ts = int(params[0], 16) if isinstance(params[0], str) else int(params[0])
            t.time_travel(ts)
            return True
        if method == "evm_mine":
            t.mine_blocks(1)
            return "0x0"
        if method == "evm_snapshot":
            return hex(t.take_snapshot())
        if method == "evm_revert":
            sid = int(params[0], 16) if isinstance(params[0], str) else int(params[0])
            t.revert_to_snapshot(sid)
            return True
        return None


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def make_server(host: str, port: int, chain: EmbeddedChain | None = None) -> ThreadingHTTPServer:
    chain = chain or EmbeddedChain()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
        # client's delayed ACK (about 40 ms a request on Linux).
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                self._send(_error(None, -32700, "parse error"))
                return
            if isinstance(body, list):
                self._send([chain.handle(r) for r in body])
            else:
                self._send(chain.handle(body))

        def _send(self, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # keep stdout for the banner
            log.debug(format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
