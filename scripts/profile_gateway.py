"""Where the gateway's CPU goes while it settles uploads of 100 card payments (issue 19).

An in-process harness over a real anvil node and real HTTP: the gateway app served by uvicorn in a
thread of this process, a terminal uploading ``--uploads`` batches of 100 through httpx, and a
sampler that reads every thread's stack each millisecond (``sys._current_frames``), so that the
event loop, the worker threads and the receipt wait are all seen -- cProfile sees one thread only.
Prints the functions with the most samples (self and cumulative) in the gateway's threads.

    .venv/bin/python scripts/profile_gateway.py [--uploads 10] [--top 40]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from chain.clients.hardwallet import MAX_BATCH  # noqa: E402
from chain.processes import free_port  # noqa: E402
from scripts.bench_gateway import CARDS, card_scene  # noqa: E402
from scripts.stack import local_node, service_env  # noqa: E402


class Sampler(threading.Thread):
    """Every ``interval_s``, the stack of every other thread: self and cumulative counts per function."""

    def __init__(self, interval_s: float = 0.001) -> None:
        super().__init__(daemon=True)
        self.interval_s, self.stop = interval_s, threading.Event()
        self.self_counts: collections.Counter[str] = collections.Counter()
        self.cum_counts: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self.skip: set[int] = set()

    def run(self) -> None:
        me = threading.get_ident()
        while not self.stop.is_set():
            for ident, frame in sys._current_frames().items():
                if ident == me or ident in self.skip:
                    continue
                seen: set[str] = set()
                top = True
                f: Any = frame
                while f is not None:
                    code = f.f_code
                    name = f"{Path(code.co_filename).name}:{code.co_firstlineno}:{code.co_name}"
                    if top:
                        if code.co_name in ("wait", "select", "_worker", "get", "sleep", "run_forever"):
                            break  # an idle thread: not CPU
                        self.self_counts[name] += 1
                        self.samples += 1
                        top = False
                    if name not in seen:
                        self.cum_counts[name] += 1
                        seen.add(name)
                    f = f.f_back
            time.sleep(self.interval_s)


@contextmanager
def served(app: Any, port: int) -> Iterator[str]:
    """``app`` served by uvicorn in a thread of this process (so that the sampler sees its
    threads); its URL once ``/healthz`` answers; stopped on the way out."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def profiled() -> Iterator[tuple[Sampler, collections.Counter[str]]]:
    """While the block runs: every SQL statement (its first four words) and commit of this
    process's engines, and the stacks of every thread but the calling one (the client's)."""
    statements: collections.Counter[str] = collections.Counter()

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements[" ".join(statement.split()[:4])] += 1

    def count_commit(conn: Any) -> None:
        statements["COMMIT"] += 1

    event.listen(Engine, "before_cursor_execute", count)
    event.listen(Engine, "commit", count_commit)
    sampler = Sampler()
    sampler.skip.add(threading.get_ident())
    sampler.start()
    try:
        yield sampler, statements
    finally:
        sampler.stop.set()
        sampler.join()
        event.remove(Engine, "before_cursor_execute", count)
        event.remove(Engine, "commit", count_commit)


def print_profile(
    sampler: Sampler, statements: collections.Counter[str], n: int, unit: str, top: int
) -> None:
    """The statements per ``unit`` (``n`` of them were timed) and the most sampled functions."""
    print(f"{sampler.samples} busy samples in the service's threads ({sampler.samples / n:.1f} per {unit})")
    print(f"\n-- SQL statements per {unit} ({sum(statements.values()) / n:.2f}) --")
    for name, c in statements.most_common():
        print(f"{c / n:7.2f}  {name}")
    for title, counts in (("self", sampler.self_counts), ("cumulative", sampler.cum_counts)):
        print(f"\n-- {title} --")
        for name, c in counts.most_common(top):
            print(f"{c:7d} {100 * c / max(1, sampler.samples):5.1f}%  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=10)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="profile-gateway-") as d, ExitStack() as stack:
        tmp = Path(d)
        rpc = stack.enter_context(local_node(tmp))
        scene = card_scene(rpc, tmp, "profile")
        w3, merchant, cards = scene.w3, scene.merchant, scene.cards

        port = free_port()
        os.environ.update(
            service_env(
                rpc, scene.manifest_path, scene.db_url, free_port(), "xcp_profile_admin_0123456789abcdef"
            )
        )
        os.environ["XCPAY_GATEWAY_PORT"] = str(port)
        from services.gateway.app import create_app
        from services.gateway.settings import GatewaySettings

        app = create_app(GatewaySettings())
        url = stack.enter_context(served(app, port))
        client = httpx.Client(base_url=url, headers={"X-API-Key": scene.operator_key}, timeout=300)
        r = client.post("/v1/terminals", json={"merchant": merchant.address, "location": "profile"})
        r.raise_for_status()
        terminal = httpx.Client(base_url=url, headers={"X-API-Key": r.json()["key"]}, timeout=300)
        now = int(w3.eth.get_block("latest")["timestamp"])
        turn = 0

        def batch(size: int) -> list[dict[str, Any]]:
            nonlocal turn
            out = []
            for _ in range(size):
                out.append(cards[turn % CARDS].sign_payment(merchant.address, 100, now).to_json())
                turn += 1
            return out

        def upload(payments: list[dict[str, Any]]) -> None:
            r = terminal.post(
                "/v1/offline-payments",
                json={"payments": payments},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert r.status_code == 200 and r.json()["counts"]["settled"] == len(payments), r.text

        upload(batch(MAX_BATCH))  # warm-up
        prepared = [batch(MAX_BATCH) for _ in range(args.uploads)]
        with profiled() as (sampler, statements):
            started = time.perf_counter()
            for payments in prepared:
                upload(payments)
            seconds = time.perf_counter() - started
        n = args.uploads * MAX_BATCH
        per_upload_ms = seconds / args.uploads * 1000
        print(f"{n} payments in {seconds:.2f} s: {n / seconds:.1f} /s ({per_upload_ms:.0f} ms per upload)")
        print_profile(sampler, statements, args.uploads, "upload", args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
