"""Where the operator's CPU goes while it serves ``POST /v1/issuance`` (issue 19).

Like ``scripts/profile_gateway.py`` (whose sampler it reuses): the operator app served by uvicorn
in a thread of this process over a real anvil node, one client issuing ``--requests`` mints into
one tier-2 wallet, every thread's stack sampled each millisecond. Prints the SQL statements and
commits per issuance and the functions with the most samples in the service's threads.

    .venv/bin/python scripts/profile_operator.py [--requests 300] [--top 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from chain.processes import free_port  # noqa: E402
from scripts.profile_gateway import print_profile, profiled, served  # noqa: E402
from scripts.stack import deploy, local_node, service_env, sqlite_with_operator_key  # noqa: E402


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
        db_url, operator_key = sqlite_with_operator_key(tmp / "operator.db", "profile operator")
        port = free_port()
        os.environ.update(service_env(rpc, manifest_path, db_url, port, "xcp_profile_admin_0123456789abcdef"))
        from services.operator.app import create_app
        from services.operator.settings import OperatorSettings

        url = stack.enter_context(served(create_app(OperatorSettings()), port))
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
        with profiled() as (sampler, statements):
            started = time.perf_counter()
            for _ in range(args.requests):
                post("/v1/issuance", {"to": wallet, "amount_fen": 100})
            seconds = time.perf_counter() - started
        n = args.requests
        load = Path("/proc/loadavg").read_text().strip()
        print(f"{n} issuances in {seconds:.2f} s: {n / seconds:.1f} /s; load {load}")
        print_profile(sampler, statements, n, "issuance", args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
