"""Start real node processes for tests: the embedded node and anvil, each on a free port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from chain.backends import http
from chain.paths import NODE_MODULES, PROJECT_ROOT

ANVIL = NODE_MODULES / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_rpc(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    w3 = http(url, timeout_s=2)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"node process exited with {proc.returncode}")
        try:
            _ = w3.eth.block_number
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"no node at {url} after {timeout_s}s")


@contextmanager
def running(cmd: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def embedded_node() -> Iterator[str]:
    """``python -m chain node`` in a second process; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "chain", "node", "--port", str(port)]) as proc:
        wait_for_rpc(url, proc)
        yield url


@contextmanager
def anvil_node() -> Iterator[str]:
    """A real anvil process from the npm package; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running([str(ANVIL), "--port", str(port), "--silent", "--hardfork", "cancun"]) as proc:
        wait_for_rpc(url, proc)
        yield url
