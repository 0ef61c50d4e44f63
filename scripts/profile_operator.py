"""Where the operator's CPU goes while it serves ``POST /v1/issuance`` (issue 19).

Like ``scripts/profile_gateway.py`` (whose sampler it reuses): the operator app served by uvicorn
in a thread of this process over a real anvil node, one client issuing ``--requests`` mints into
one tier-2 wallet, every thread's stack sampled each millisecond. Prints the SQL statements and
commits per issuance and the functions with the most samples in the service's threads.

    .venv/bin/python scripts/profile_operator.py [--requests 300] [--top 40]
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
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from chain.processes import free_port  # noqa: E402
from scripts.profile_gateway import Sampler  # noqa: E402
from scripts.stack import deploy, local_node, service_env  # noqa: E402
from services.common.db import Database, upgrade  # noqa: E402
from services.common.keys import Role, create_key  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="profile-operator-") as d, ExitStack() as stack:
        tmp = Path(d)
        rpc = stack.enter_context(local_node(tmp))
        manifest_path = tmp / "manifest.json"
        deploy(rpc, manifest_path)
        db_url = f"sqlite:///{tmp / 'operator.db'}"
        upgrade(db_url)
        db = Database(db_url)
        with db.session() as s:
            _, operator_key = create_key(s, Role.OPERATOR, "profile operator")
            s.commit()
        db.dispose()
        port = free_port()
        os.environ.update(service_env(rpc, manifest_path, db_url, port, "xcp_profile_admin_0123456789abcdef"))
        from services.operator.app import create_app
        from services.operator.settings import OperatorSettings

        app = create_app(OperatorSettings())
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
        client = httpx.Client(base_url=url, headers={"X-API-Key": operator_key}, timeout=300)

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            r = client.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
            assert r.status_code in (200, 201), r.text
            return r.json()  # type: ignore[no-any-return]

        wallet = post(
            "/v1/wallets",
            {"kind": "personal", "tier": 2, "display_name": "profile", "identity": f"id-{uuid.uuid4()}"},
        )["request"]["address"]
        for _ in range(10):  # warm-up
            post("/v1/issuance", {"to": wallet, "amount_fen": 100})
        statements: collections.Counter[str] = collections.Counter()

        def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            statements[" ".join(statement.split()[:4])] += 1

        def count_commit(conn: Any) -> None:
            statements["COMMIT"] += 1

        event.listen(Engine, "before_cursor_execute", count)
        event.listen(Engine, "commit", count_commit)
        sampler = Sampler()
        sampler.skip.add(threading.get_ident())  # the client (this thread) is not the service
        sampler.start()
        started = time.perf_counter()
        for _ in range(args.requests):
            post("/v1/issuance", {"to": wallet, "amount_fen": 100})
        seconds = time.perf_counter() - started
        sampler.stop.set()
        sampler.join()
        server.should_exit = True
        thread.join(timeout=10)
        n = args.requests
        load = Path("/proc/loadavg").read_text().strip()
        print(f"{n} issuances in {seconds:.2f} s: {n / seconds:.1f} /s; load {load}")
        per = sampler.samples / n
        print(f"{sampler.samples} busy samples in the service's threads ({per:.1f} per issuance)")
        print(f"\n-- SQL statements per issuance ({sum(statements.values()) / n:.2f}) --")
        for name, c in statements.most_common():
            print(f"{c / n:7.2f}  {name}")
        for title, counts in (("self", sampler.self_counts), ("cumulative", sampler.cum_counts)):
            print(f"\n-- {title} --")
            for name, c in counts.most_common(args.top):
                print(f"{c:7d} {100 * c / max(1, sampler.samples):5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
