"""`make run`: the embedded chain node, the contracts deployed (or reused), until Ctrl-C.

Set ``XCPAY_RPC_URL`` to use another node (anvil, Besu) instead of starting the embedded one.
``XCPAY_NODE_PORT`` (default 8545) and ``XCPAY_MANIFEST`` (default var/manifest.json) move them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chain.backends import http  # noqa: E402
from chain.paths import VAR_DIR  # noqa: E402


def wait_for_node(url: str, proc: subprocess.Popen[bytes] | None, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    w3 = http(url, timeout_s=2)
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the embedded node exited with code {proc.returncode}")
        try:
            _ = w3.eth.block_number
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"no JSON-RPC node answered at {url} within {timeout_s:.0f}s")


def main() -> int:
    rpc_url = os.environ.get("XCPAY_RPC_URL")
    manifest = os.environ.get("XCPAY_MANIFEST", str(VAR_DIR / "manifest.json"))
    children: list[subprocess.Popen[bytes]] = []
    node: subprocess.Popen[bytes] | None = None
    if not rpc_url:
        port = os.environ.get("XCPAY_NODE_PORT", "8545")
        rpc_url = f"http://127.0.0.1:{port}"
        node = subprocess.Popen(
            [sys.executable, "-m", "chain", "node", "--host", "127.0.0.1", "--port", port], cwd=ROOT
        )
        children.append(node)
    try:
        wait_for_node(rpc_url, node)
        deploy = [sys.executable, "-m", "chain", "deploy", "--rpc", rpc_url, "--out", manifest]
        subprocess.run(deploy, cwd=ROOT, check=True)
        print(f"\nxcpay is up. JSON-RPC: {rpc_url}   manifest: {manifest}\nCtrl-C stops.", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        failed = [c for c in children if c.poll() is not None]
        if failed:
            print(f"a service stopped (exit {failed[0].returncode}); shutting down", file=sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"deployment failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    finally:
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
        for c in children:
            try:
                c.wait(timeout=10)
            except subprocess.TimeoutExpired:
                c.kill()


if __name__ == "__main__":
    sys.exit(main())
