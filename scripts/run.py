"""`make run`: a local anvil node whose chain is kept under var/, the contracts deployed (or reused),
the database migrated and the operator API and the hard-wallet gateway served (one database, one
chain), until Ctrl-C. `make reset` (``scripts/run.py --reset``) moves var/ aside to start afresh.

Environment (all optional):
  XCPAY_RPC_URL       use this node (Besu, another anvil...) instead of starting the local one
  XCPAY_NODE_PORT     port of the local node (8545)
  XCPAY_NODE_STATE    where the local node keeps its chain (var/chain/anvil-state.json)
  XCPAY_API_PORT      port of the operator API (8000)
  XCPAY_GATEWAY_PORT  port of the hard-wallet gateway (8001)
  XCPAY_MANIFEST      deployment manifest (var/manifest.json)
  XCPAY_DATABASE_URL  database (a SQLite file under var/ by default)

The local node writes its chain (blocks, receipts, logs, balances) to its state file when it stops
and loads it on the next start, so a restart keeps the chain, the database (its records and API
keys) and the custodial wallets' keys. Should the state file be missing while the default database
is there, that database belongs to a chain that is gone: it is moved to var/previous/.
"""

from __future__ import annotations

import ctypes
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
from chain.processes import anvil_cmd, stop, stop_persisting_node, wait_for_http, wait_for_rpc  # noqa: E402

DEFAULT_STATE = VAR_DIR / "chain" / "anvil-state.json"
PR_SET_PDEATHSIG = 1


def stamp() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}"


def archive_default_database() -> None:
    db = VAR_DIR / "xcpay.db"
    if not db.exists():
        return
    target = VAR_DIR / "previous" / f"xcpay-{stamp()}.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    db.rename(target)
    for suffix in ("-wal", "-shm"):
        side = db.with_name(db.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    print(f"new chain: the database of the previous one was moved to {target}", flush=True)


def reset() -> int:
    """Move everything under var/ (chain state, database, manifest) aside into var/previous/."""
    port = os.environ.get("XCPAY_NODE_PORT", "8545")
    if port_taken(port):
        print(f"error: something answers on port {port}: stop `make run` first", file=sys.stderr)
        return 1
    entries = [p for p in VAR_DIR.glob("*") if p.name != "previous"] if VAR_DIR.exists() else []
    if not entries:
        print("nothing to reset: var/ holds no chain, database or manifest")
        return 0
    target = VAR_DIR / "previous" / f"reset-{stamp()}"
    target.mkdir(parents=True)
    for p in entries:
        p.rename(target / p.name)
    print(
        "reset: the chain, the database (records, API keys, custodial wallet keys) and the manifest\n"
        f"were moved to {target}\n"
        "The next `make run` starts a new chain. Delete that directory when you no longer need it."
    )
    return 0


def port_taken(port: str) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", int(port))) == 0


def _die_with_parent() -> None:
    """In a child before exec: SIGTERM when `make run` dies, however it dies (even ``kill -9``), so
    that no service is left behind and the node still writes its chain."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_node(port: str, state: Path) -> subprocess.Popen[bytes]:
    state.parent.mkdir(parents=True, exist_ok=True)
    # Its own session: Ctrl-C reaches the node only through the orderly stop in main().
    return subprocess.Popen(
        anvil_cmd(int(port), state), cwd=ROOT, start_new_session=True, preexec_fn=_die_with_parent
    )


def main() -> int:
    if sys.argv[1:] == ["--reset"]:
        return reset()
    # Ctrl-C stops everything even when this process was started with SIGINT ignored (a job put in
    # the background by a non-interactive shell inherits that, and Python then installs no handler).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
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
    services: list[subprocess.Popen[bytes]] = []
    node: subprocess.Popen[bytes] | None = None
    state = Path(env.get("XCPAY_NODE_STATE", DEFAULT_STATE))
    try:
        if not rpc_url:
            port = ports["XCPAY_NODE_PORT"]
            rpc_url = f"http://127.0.0.1:{port}"
            if state.exists():
                print(f"local node: loading the chain from {state}", flush=True)
            else:
                print(f"local node: a new chain, kept in {state}", flush=True)
                if "XCPAY_DATABASE_URL" not in env:
                    archive_default_database()
            node = start_node(port, state)
        env["XCPAY_RPC_URL"] = rpc_url
        try:
            wait_for_rpc(rpc_url, node)
        except RuntimeError as exc:
            hint = f" (is {state} damaged? `make reset` starts afresh)" if node and state.exists() else ""
            raise RuntimeError(f"{exc}{hint}") from None
        deploy = [sys.executable, "-m", "chain", "deploy", "--rpc", rpc_url, "--out", env["XCPAY_MANIFEST"]]
        subprocess.run(deploy, cwd=ROOT, check=True, env=env)
        # Migrate the shared database once, then start the operator and the gateway side by side.
        subprocess.run([sys.executable, "-m", "services.operator", "migrate"], cwd=ROOT, check=True, env=env)
        # A one-time sign-in link of the dashboard (single use, short-lived, stored hashed), made
        # before the services start so that the start-up message comes at once.
        api_url = f"http://127.0.0.1:{api_port}"
        link_cmd = [sys.executable, "-m", "services.operator", "login-link", "--base-url", api_url]
        made = subprocess.run(link_cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        link = (
            made.stdout.strip()
            if made.returncode == 0
            else "(no link: python -m services.operator login-link)"
        )
        for service in ("services.operator", "services.gateway"):
            cmd = [sys.executable, "-m", service, "serve"]
            services.append(subprocess.Popen(cmd, cwd=ROOT, env=env, preexec_fn=_die_with_parent))
        api, gateway = services
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        wait_for_http(f"{api_url}/healthz", api)
        wait_for_http(f"{gateway_url}/healthz", gateway)
        kept = f"  chain state     {state} (written when stopped)\n" if node else ""
        print(
            f"\nxcpay is up.\n  JSON-RPC node   {rpc_url}\n{kept}"
            f"  operator API    {api_url}   (docs: {api_url}/docs)\n"
            f"  dashboard       {api_url}/dashboard\n"
            f"  sign in once    {link}\n"
            f"  gateway         {gateway_url}   (docs: {gateway_url}/docs)\n"
            f"  manifest        {env['XCPAY_MANIFEST']}\nCtrl-C stops.",
            flush=True,
        )
        watched = [*services, *([node] if node else [])]
        while all(c.poll() is None for c in watched):
            time.sleep(0.5)
        failed = [c for c in watched if c.poll() is not None]
        print(f"a process stopped (exit {failed[0].returncode}); shutting down", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"start-up failed ({' '.join(exc.cmd[1:4])}: exit {exc.returncode})", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not cut the stop short: the node still has to write its chain.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for c in services:  # the services first: nothing is sent to the node once it stops mining
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
        for c in services:
            stop(c)
        if node is not None and rpc_url:
            stop_persisting_node(node, rpc_url)
            if node.returncode not in (0, -signal.SIGTERM):
                print(f"the local node exited with {node.returncode}", file=sys.stderr)
            elif state.exists():
                print(f"chain saved to {state}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
