"""`make run`: the embedded chain node, the contracts deployed (or reused), the database migrated
and the operator API and the hard-wallet gateway served (one database, one chain), until Ctrl-C.

Environment (all optional):
  XCPAY_RPC_URL       use this node (anvil, Besu...) instead of starting the embedded one
  XCPAY_NODE_PORT     port of the embedded node (8545)
  XCPAY_API_PORT      port of the operator API (8000)
  XCPAY_GATEWAY_PORT  port of the hard-wallet gateway (8001)
  XCPAY_MANIFEST      deployment manifest (var/manifest.json)
  XCPAY_DATABASE_URL  database (a SQLite file under var/ by default)

The embedded chain lives in memory: every start is a new chain. Its default database is then
moved aside to var/previous/ so that records of a vanished chain never mix with the new one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chain.paths import VAR_DIR  # noqa: E402
from chain.processes import embedded_node_cmd, wait_for_http, wait_for_rpc  # noqa: E402


def archive_default_database() -> None:
    db = VAR_DIR / "xcpay.db"
    if not db.exists():
        return
    target = VAR_DIR / "previous" / f"xcpay-{datetime.now(UTC):%Y%m%dT%H%M%S}.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    db.rename(target)
    for suffix in ("-wal", "-shm"):
        side = db.with_name(db.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    print(f"new embedded chain: the previous database was moved to {target}", flush=True)


def port_taken(port: str) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", int(port))) == 0


def main() -> int:
    # Ctrl-C stops everything even when this process was started with SIGINT ignored (a job put in
    # the background by a non-interactive shell inherits that, and Python then installs no handler).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    env = dict(os.environ)
    rpc_url = env.get("XCPAY_RPC_URL")
    env.setdefault("XCPAY_MANIFEST", str(VAR_DIR / "manifest.json"))
    api_port = env.get("XCPAY_API_PORT", "8000")
    gateway_port = env.get("XCPAY_GATEWAY_PORT", "8001")
    ports = {"XCPAY_API_PORT": api_port, "XCPAY_GATEWAY_PORT": gateway_port}
    if not rpc_url:
        ports["XCPAY_NODE_PORT"] = env.get("XCPAY_NODE_PORT", "8545")
    for name, port in ports.items():
        if port_taken(port):  # else another program's answers would pass for ours
            print(f"error: port {port} is in use (another xcpay?); stop it or set {name}", file=sys.stderr)
            return 1
    children: list[subprocess.Popen[bytes]] = []
    node: subprocess.Popen[bytes] | None = None
    if not rpc_url:
        port = env.get("XCPAY_NODE_PORT", "8545")
        rpc_url = f"http://127.0.0.1:{port}"
        if "XCPAY_DATABASE_URL" not in env:
            archive_default_database()
        node = subprocess.Popen(embedded_node_cmd(int(port)), cwd=ROOT)
        children.append(node)
    env["XCPAY_RPC_URL"] = rpc_url
    try:
        wait_for_rpc(rpc_url, node)
        deploy = [sys.executable, "-m", "chain", "deploy", "--rpc", rpc_url, "--out", env["XCPAY_MANIFEST"]]
        subprocess.run(deploy, cwd=ROOT, check=True, env=env)
        # Migrate the shared database once, then start the operator and the gateway side by side.
        subprocess.run([sys.executable, "-m", "services.operator", "migrate"], cwd=ROOT, check=True, env=env)
        api = subprocess.Popen([sys.executable, "-m", "services.operator", "serve"], cwd=ROOT, env=env)
        children.append(api)
        gateway = subprocess.Popen([sys.executable, "-m", "services.gateway", "serve"], cwd=ROOT, env=env)
        children.append(gateway)
        api_url = f"http://127.0.0.1:{api_port}"
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        wait_for_http(f"{api_url}/healthz", api)
        wait_for_http(f"{gateway_url}/healthz", gateway)
        print(
            f"\nxcpay is up.\n  JSON-RPC node   {rpc_url}\n"
            f"  operator API    {api_url}   (docs: {api_url}/docs)\n"
            f"  gateway         {gateway_url}   (docs: {gateway_url}/docs)\n"
            f"  manifest        {env['XCPAY_MANIFEST']}\nCtrl-C stops.",
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        failed = [c for c in children if c.poll() is not None]
        print(f"a process stopped (exit {failed[0].returncode}); shutting down", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"deployment failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    finally:
        for c in reversed(children):
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
        for c in reversed(children):
            try:
                c.wait(timeout=15)
            except subprocess.TimeoutExpired:
                c.kill()


if __name__ == "__main__":
    sys.exit(main())
