"""Hostile input against real server processes (uvicorn subprocesses, tests/security/hostile_server.py):
the process answers 4xx and keeps serving.

Before the guard (services/common/guard.py): a JSON body nested 100,000 deep killed either service
with SIGSEGV (py_ecc had raised the recursion limit to 100,000, and FastAPI parsed the body before
the key was checked); a 200 MB body without a key was read whole before the 401. Raw sockets here,
so that what is sent, and when, is exact: a refused body is never sent at all.

The short version runs in ``make test``; ``XCPAY_HOSTILE=long`` (``make audit``) adds the heavier
runs (a 200 MB chunked body, a CSV beyond 16 MiB at the default limit, bursts of nested bodies).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chain.processes import free_port, running, wait_for_http
from tests.security.hostile_server import ADMIN_KEY, OPERATOR_KEY

LONG = os.environ.get("XCPAY_HOSTILE") == "long"
NESTED = b"[" * 100_000 + b"]" * 100_000  # ~200 KB, the depth that crashed the process
UPLOAD_LIMIT = 2 * 1024 * 1024  # the operator process's XCPAY_MAX_UPLOAD_BYTES (16 MiB in long runs)
BODY_LIMIT = 1024 * 1024  # the default XCPAY_MAX_BODY_BYTES


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    write_path: str  # a POST route taking a JSON body (and a key)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serving(self) -> bool:
        """Still running, and answering."""
        return self.proc.poll() is None and httpx.get(f"{self.url}/healthz", timeout=30).status_code == 200

    def lines_of(self, request_id: str, timeout_s: float = 10.0) -> list[dict]:
        """The log lines of one request. The access line is written after the answer is sent, so
        a client that has its answer may look before the server wrote it: wait for it."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [a for a in self.log_lines() if a.get("request_id") == request_id]
            if any(a.get("logger") == "xcpay.access" for a in found) or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def log_lines(self) -> list[dict]:
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """Both services, started together (each deploys the contracts on its own in-process chain)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XCPAY_")}
    upload = str(16 * 1024 * 1024 if LONG else UPLOAD_LIMIT)
    with ExitStack() as stack:
        started = {}
        for name, path in (("operator", "/v1/transfers"), ("gateway", "/v1/terminals")):
            where = tmp_path_factory.mktemp(f"hostile-{name}")
            port, log = free_port(), where / "server.log"
            cmd = [sys.executable, "-m", "tests.security.hostile_server", name, str(port), str(where)]
            proc = stack.enter_context(running(cmd, env={**env, "XCPAY_MAX_UPLOAD_BYTES": upload}, log=log))
            started[name] = Server(name, port, proc, log, path)
        for s in started.values():
            wait_for_http(f"{s.url}/healthz", s.proc, timeout_s=240)
        yield started


def _exchange(port: int, head: str, chunks: Iterable[bytes] = ()) -> tuple[int, dict[str, str], bytes, int]:
    """Send ``head`` and then ``chunks`` until the server answers or closes; returns the status,
    headers, body and how many body bytes were sent."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode("latin-1"))
        try:
            for chunk in chunks:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending: what we test
        sock.settimeout(60)
        raw = b""
        while b"\r\n\r\n" not in raw:
            part = sock.recv(65536)
            if not part:
                break
            raw += part
        head_bytes, _, rest = raw.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            part = sock.recv(65536)
            if not part:
                break
            rest += part
    return status, headers, rest, sent


def _head(
    method: str, path: str, *, key: str | None, length: int | None, kind: str = "application/json"
) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {kind}", "Connection: close"]
    if key:
        lines.append(f"X-API-Key: {key}")
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    return "\r\n".join(lines) + "\r\n\r\n"


def _chunked(total: int, piece: bytes) -> Iterator[bytes]:
    """``total`` bytes of ``piece`` repeated, in HTTP/1.1 chunks of 64 KiB, then the last chunk."""
    block = (piece * (65536 // len(piece) + 1))[:65536]
    for _ in range(total // len(block)):
        yield f"{len(block):x}\r\n".encode() + block + b"\r\n"
    yield b"0\r\n\r\n"


def _problem(status: int, headers: dict[str, str], body: bytes, expected: int, slug: str) -> dict:
    assert status == expected, (status, body[:300])
    assert headers["content-type"].startswith("application/problem+json")
    doc = json.loads(body)
    assert doc["type"] == f"urn:xcpay:problem:{slug}" and doc["request_id"] == headers["x-request-id"]
    return doc


@pytest.mark.parametrize("service", ["operator", "gateway"])
def test_a_deeply_nested_body_is_refused_and_the_process_keeps_serving(
    servers: dict[str, Server], service: str
) -> None:
    s = servers[service]
    key = OPERATOR_KEY
    for _ in range(20 if LONG else 1):
        answer = _exchange(s.port, _head("POST", s.write_path, key=None, length=len(NESTED)), [NESTED])
        _problem(*answer[:3], 401, "missing-api-key")  # no key: refused before the body is read
        answer = _exchange(s.port, _head("POST", s.write_path, key=key, length=len(NESTED)), [NESTED])
        _problem(*answer[:3], 400, "json-too-deep")
    assert s.serving()
    # a body within the depth limit still gets its ordinary answer (validation, not the guard)
    r = httpx.post(
        s.url + s.write_path,
        content=b"[" * 30 + b"]" * 30,
        headers={"X-API-Key": key, "Idempotency-Key": "n1"},
    )
    assert r.status_code == 422 and r.json()["type"].endswith("invalid-request"), r.text


@pytest.mark.parametrize("service", ["operator", "gateway"])
def test_an_oversized_body_is_refused_from_content_length_before_a_byte_is_read(
    servers: dict[str, Server], service: str
) -> None:
    s = servers[service]
    key = OPERATOR_KEY
    huge = 200 * 1024 * 1024
    # no key: 401 at once, though the client announced 200 MB and sent none of it
    status, headers, body, sent = _exchange(s.port, _head("POST", s.write_path, key=None, length=huge))
    _problem(status, headers, body, 401, "missing-api-key")
    assert sent == 0
    status, headers, body, _ = _exchange(s.port, _head("POST", s.write_path, key=key, length=huge))
    doc = _problem(status, headers, body, 413, "body-too-large")
    assert str(BODY_LIMIT) in doc["detail"]
    assert s.serving()


def test_an_oversized_streamed_body_is_refused_while_it_streams(servers: dict[str, Server]) -> None:
    s = servers["operator"]
    total = (200 if LONG else 64) * 1024 * 1024  # beyond what loopback buffers hold
    status, headers, body, sent = _exchange(
        s.port, _head("POST", "/v1/transfers", key=ADMIN_KEY, length=None), _chunked(total, b" ")
    )
    _problem(status, headers, body, 413, "body-too-large")
    assert sent < total  # refused before the end: the server stopped reading
    assert s.serving()


def test_the_csv_upload_routes_keep_their_larger_limit_also_while_streaming(
    servers: dict[str, Server],
) -> None:
    s = servers["operator"]
    limit = int(16 * 1024 * 1024 if LONG else UPLOAD_LIMIT)
    query = "reference=big&payer=0x" + "11" * 20 + "&purpose=salary&ends_at=2100-01-01T00:00:00Z"
    row = b"0x1111111111111111111111111111111111111111,1\n"
    csv_head = b"recipient,amount_fen\n"
    for path in (f"/v1/disbursements/csv?{query}", "/v1/voucher-programs/1/grants/csv"):
        # above the JSON limit, below the upload limit: past the guard (refused for what it says)
        within = csv_head + row * ((BODY_LIMIT + 65536) // len(row))
        head = _head("POST", path, key=OPERATOR_KEY, length=len(within), kind="text/csv")
        status, _, body, _ = _exchange(
            s.port, head.replace("\r\n\r\n", "\r\nIdempotency-Key: csv1\r\n\r\n"), [within]
        )
        assert status not in (413, 500), (path, status, body[:300])
        status, headers, body, _ = _exchange(
            s.port,
            _head("POST", path, key=OPERATOR_KEY, length=None, kind="text/csv"),
            _chunked(limit + 2 * 65536, row),
        )
        doc = _problem(status, headers, body, 413, "body-too-large")
        assert str(limit) in doc["detail"], path
    assert s.serving()


@pytest.mark.parametrize("service", ["operator", "gateway"])
def test_every_answer_carries_the_security_headers(servers: dict[str, Server], service: str) -> None:
    s = servers[service]
    key = OPERATOR_KEY
    public = httpx.get(f"{s.url}/healthz")
    private = httpx.get(
        f"{s.url}/v1/operations/00000000-0000-0000-0000-000000000000", headers={"X-API-Key": key}
    )
    refused = httpx.get(f"{s.url}/v1/operations/x")
    for r in (public, private, refused):
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-request-id"], r.url
    assert private.headers["cache-control"] == "no-store" and refused.headers["cache-control"] == "no-store"
    assert private.json()["request_id"] == private.headers["x-request-id"]
    # a caller's well-formed request id is kept (to follow one request through the logs)
    mine = httpx.get(f"{s.url}/healthz", headers={"X-Request-ID": "trace-42"})
    assert mine.headers["x-request-id"] == "trace-42"


def test_the_processes_log_json_lines_with_an_access_line_per_request_and_no_key(
    servers: dict[str, Server],
) -> None:
    for s in servers.values():
        httpx.get(f"{s.url}/healthz", headers={"X-Request-ID": f"probe-{s.name}"})
        key = OPERATOR_KEY
        httpx.get(f"{s.url}/v1/operations/00000000-0000-0000-0000-000000000000", headers={"X-API-Key": key})
    for s in servers.values():
        s.lines_of(f"probe-{s.name}")  # written after the answer: wait until it is there
        text = s.log.read_text()
        assert ADMIN_KEY not in text and OPERATOR_KEY not in text
        lines = s.log_lines()
        access = [line for line in lines if line["logger"] == "xcpay.access"]
        assert any(a["request_id"] == f"probe-{s.name}" and a["status"] == 200 for a in access), s.name
        assert any(a["status"] == 413 for a in access) and any(a["status"] == 401 for a in access)
        assert all({"method", "path", "status", "duration_ms", "client", "key_id"} <= set(a) for a in access)


HEADER_LIMIT = 64 * 1024  # the default XCPAY_MAX_HEADER_BYTES


def _send_head(port: int, pieces: Iterable[bytes]) -> tuple[bytes, int]:
    """Send a request head in ``pieces``; returns what the server answered (b"" if it reset the
    connection before we read) and how many bytes were sent before it stopped reading."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        try:
            for piece in pieces:
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused and closed while we were still sending: what we test
        raw = b""
        try:
            while part := sock.recv(65536):
                raw += part
        except ConnectionResetError:
            pass  # it closed with our unread bytes in its buffer: a reset instead of the answer
    return raw, sent


@pytest.mark.parametrize("service", ["operator", "gateway"])
def test_an_oversized_header_is_refused_before_it_is_read_whole(
    servers: dict[str, Server], service: str
) -> None:
    """Without the bound (uvicorn's httptools), a 200 MB header was read whole and grew the process
    to 500 MB before the guard saw the request."""
    s = servers[service]
    total = 64 * 1024 * 1024  # one header of 64 MiB, no key; beyond what loopback buffers hold

    def one_huge_header() -> Iterator[bytes]:
        yield b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
        for _ in range(total // 65536):
            yield b"a" * 65536
        yield b"\r\n\r\n"

    answer, sent = _send_head(s.port, one_huge_header())
    assert sent < total  # the server stopped reading at the limit
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    # many small headers add up the same way (20,000 of them, about 400 KB)
    many = [b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"]
    many += [f"X-H{i}: v\r\n".encode() for i in range(20_000)] + [b"\r\n"]
    answer, _ = _send_head(s.port, many)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert s.serving()
    # a request whose headers fit is served as before
    fits = httpx.get(f"{s.url}/healthz", headers={"X-Big": "a" * (HEADER_LIMIT // 2)})
    assert fits.status_code == 200


@pytest.mark.parametrize("service", ["operator", "gateway"])
def test_a_body_that_arrives_with_its_head_is_not_counted_as_head(
    servers: dict[str, Server], service: str
) -> None:
    """The head bound (services/common/serve.py) counts the bytes before the end of the headers:
    a small head sent in one piece with a body four times the head limit is answered by the app
    (405 for a POST to /healthz), not refused as a long head."""
    s = servers[service]
    body = b"a" * (4 * HEADER_LIMIT)
    head = (
        "POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    answer, _ = _send_head(s.port, [head + body])
    assert answer.startswith(b"HTTP/1.1 405 "), answer[:200]


def test_a_forged_x_forwarded_for_does_not_change_the_logged_client(servers: dict[str, Server]) -> None:
    """uvicorn believes X-Forwarded-For from 127.0.0.1 by default; no proxy is trusted here."""
    for s in servers.values():
        httpx.get(
            f"{s.url}/healthz", headers={"X-Forwarded-For": "203.0.113.7", "X-Request-ID": "xff-" + s.name}
        )
    for s in servers.values():
        access = [a for a in s.lines_of("xff-" + s.name) if a["logger"] == "xcpay.access"]
        assert [a["client"] for a in access] == ["127.0.0.1"], s.name
