"""Benchmark the operator API's issuance path against minting straight through the chain layer.

What it measures, in one run, on one local anvil node (the node of `make run`, started here on a
free port, deployed here, stopped at the end whatever happens):

1. **API, sequential**: ``POST /v1/issuance`` requests per second from one HTTP client to the
   operator service (``python -m services.operator serve``, a separate process, as in production),
   each awaiting its answer before the next starts. Every request mints into one tier-2 personal
   wallet (the typical wallet: its balance cap is checked on every mint) created through the API
   first. A request is the whole intent-first
   path: API key check, idempotency row, estimate, sign, store the signed bytes, send, poll for
   the receipt, record the outcome and the audit row -- it answers 200 only once confirmed.
2. **API, concurrent**: the same with C clients (threads, each its own ``httpx.Client``).
3. **Baseline, direct**: the same number of mints sent straight through ``chain/``
   (:meth:`chain.clients.token.CashClient.mint` signed by ``dev_account(1)``, the key the service
   signs with in the local profile) to the same node and the same wallet, sequentially and with C
   threads sharing one ``CashClient`` (its Transactor's nonce manager is thread-safe).

Each mode runs N requests in total, in two halves timed in ABBA order -- API sequential and
concurrent, then the direct baseline twice, then the API again -- so a chain that slows down as it
grows favours neither path. The service stays up, idle, while the baseline runs, so the node carries
the same background load (the service's event indexer following the chain) under both paths; it is
restarted for the second API half because it signs with the same key and its cached nonce is stale
after the direct mints. Each start is warmed up with a few untimed requests, and the indexer has
caught up with the chain before any timing starts.

Why the figures must be read beside the baseline measured in the same run: absolute requests per
second say more about the machine (the node, the service and this script share its cores) than
about the service. Only the API-to-direct ratio measured here,
on the same node and the same machine, isolates what the service adds (HTTP, the database, the
idempotency and audit bookkeeping); an absolute figure compared with another run means little.

At the end the wallet's on-chain balance must equal everything minted through both paths.

    .venv/bin/python scripts/bench_operator.py [--requests N] [--concurrency C] [--database-url URL]

The service's database is a SQLite file in a temporary directory unless ``--database-url`` names
another: a ``sqlite:///`` URL must name a file that does not exist yet (the service binds its
database to the chain it first ran on, and every run starts a new chain); a ``postgresql+psycopg://``
URL names a server and an existing database used only to create a fresh ``xcpay_bench_*`` database
for the run, which is dropped afterwards (as ``tests/databases.py`` does).

Prints a table and writes ``bench-results/bench_operator.json``; its two rows (API / direct,
sequential and concurrent; issue 19's goal: at least 0.7) go to ``bench/results.json``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from chain.accounts import dev_account  # noqa: E402
from chain.backends import http  # noqa: E402
from chain.clients.token import CashClient  # noqa: E402
from chain.manifest import Manifest  # noqa: E402
from chain.processes import free_port  # noqa: E402
from scripts.benchlib import Target, cpu_s, environment, render_rows, table, write_result  # noqa: E402
from scripts.stack import (  # noqa: E402
    database,
    deploy,
    local_node,
    operator_service,
    service_env,
    tail_of,
)

OUT_FILE = ROOT / "bench-results" / "bench_operator.json"
AMOUNT_FEN = 100  # per issuance / mint
TIER = 2  # the typical wallet: a tier-2 person
GOAL = ">= 0.7"
WARMUP = 2  # untimed requests after each start of the service, and before the first direct mint
HTTP_TIMEOUT_S = 60.0
ADMIN_KEY = "xcp_bench_admin_" + secrets.token_hex(16)

Call = Callable[[], None]
Session = Callable[[], AbstractContextManager[Call]]  # a worker's own client, yielding one request


# -- the two paths ------------------------------------------------------------------------------------


class Tally:
    """Fen minted through one path, counted once each request has succeeded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self) -> None:
        with self._lock:
            self.count += 1

    @property
    def fen(self) -> int:
        return self.count * AMOUNT_FEN


@dataclass
class Api:
    url: str
    operator_key: str = ""
    auditor_key: str = ""
    tally: Tally = field(default_factory=Tally)

    def admin_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(self.url + path, json=body, headers={"X-API-Key": ADMIN_KEY}, timeout=HTTP_TIMEOUT_S)
        if r.status_code != 201:
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text}")
        return dict(r.json())

    def create_keys(self) -> None:
        self.operator_key = str(self.admin_post("/v1/api-keys", {"role": "operator"})["key"])
        self.auditor_key = str(self.admin_post("/v1/api-keys", {"role": "auditor"})["key"])

    def create_wallet(self) -> str:
        body = {
            "kind": "personal",
            "tier": TIER,
            "display_name": "bench",
            "identity": f"bench-{uuid.uuid4()}",
        }
        headers = {"X-API-Key": self.operator_key, "Idempotency-Key": str(uuid.uuid4())}
        r = httpx.post(self.url + "/v1/wallets", json=body, headers=headers, timeout=HTTP_TIMEOUT_S)
        if r.status_code != 201:
            raise RuntimeError(f"POST /v1/wallets: {r.status_code} {r.text}")
        return str(r.json()["request"]["address"])

    def issue(self, client: httpx.Client, to: str) -> None:
        headers = {"X-API-Key": self.operator_key, "Idempotency-Key": str(uuid.uuid4())}
        r = client.post("/v1/issuance", json={"to": to, "amount_fen": AMOUNT_FEN}, headers=headers)
        if r.status_code != 200 or r.json().get("status") != "confirmed":
            raise RuntimeError(f"POST /v1/issuance: {r.status_code} {r.text}")
        self.tally.add()

    def issued_events(self) -> int:
        """How many Issued events the service has indexed (the endpoint indexes up to the head first)."""
        r = httpx.get(
            self.url + "/v1/audit/events",
            params={"name": "Issued", "limit": 1},
            headers={"X-API-Key": self.auditor_key},
            timeout=HTTP_TIMEOUT_S,
        )
        r.raise_for_status()
        return int(r.json()["total"])

    def session(self, to: str) -> Session:
        @contextmanager
        def open_() -> Iterator[Call]:
            with httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT_S) as client:
                yield lambda: self.issue(client, to)

        return open_


@dataclass
class Direct:
    cash: CashClient
    tally: Tally = field(default_factory=Tally)

    def mint(self, to: str) -> None:
        self.cash.mint(dev_account(1), to, AMOUNT_FEN)  # waits for the receipt; raises if reverted
        self.tally.add()

    def session(self, to: str) -> Session:
        @contextmanager
        def open_() -> Iterator[Call]:
            yield lambda: self.mint(to)  # every thread shares the one CashClient

        return open_


# -- timing -------------------------------------------------------------------------------------------


@dataclass
class Samples:
    """The timed requests of one mode, accumulated over its two halves."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # CPU of the whole stack (this process, anvil, the operator) while timed


def run_measured(
    session: Session, n: int, clients: int, samples: Samples, stack: Callable[[], list[int]]
) -> None:
    """:func:`run_batch`, adding the CPU every process of the stack used meanwhile to ``samples``
    (``stack``: their process ids now; the service is restarted halfway)."""
    pids = [os.getpid(), *stack()]
    before = cpu_s(pids)
    run_batch(session, n, clients, samples)
    samples.cpu_s += cpu_s(pids) - before


def run_batch(session: Session, n: int, clients: int, samples: Samples) -> None:
    """``n`` requests from ``clients`` workers (1: sequential in this thread); wall time and latencies."""
    if clients == 1:
        with session() as call:
            start = time.perf_counter()
            for _ in range(n):
                t0 = time.perf_counter()
                call()
                samples.latencies.append(time.perf_counter() - t0)
            samples.seconds += time.perf_counter() - start
        return

    remaining = [n]
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)  # the clock starts once every worker has its client

    def take() -> bool:
        with lock:
            if remaining[0] <= 0 or stop.is_set():
                return False
            remaining[0] -= 1
            return True

    def worker() -> None:
        try:
            with session() as call:
                barrier.wait()
                while take():
                    t0 = time.perf_counter()
                    call()
                    samples.latencies.append(time.perf_counter() - t0)
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:
            errors.append(exc)
            stop.set()
            barrier.abort()

    threads = [threading.Thread(target=worker, name=f"bench-{i}", daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        samples.seconds += time.perf_counter() - start
    except threading.BrokenBarrierError:
        for t in threads:
            t.join()
    except BaseException:  # Ctrl-C: the workers stop after their current request
        stop.set()
        barrier.abort()
        raise
    if errors:
        raise errors[0]


@dataclass
class Result:
    mode: str
    path: str
    clients: int
    requests: int
    seconds: float
    req_per_s: float
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_mean: float
    cpu_ms_per_request: float  # the whole stack's CPU (client, anvil, the operator) per request


def summarise(mode: str, path: str, clients: int, s: Samples) -> Result:
    ms = sorted(x * 1000 for x in s.latencies)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return Result(
        mode,
        path,
        clients,
        len(ms),
        s.seconds,
        len(ms) / s.seconds,
        statistics.median(ms),
        p95,
        statistics.fmean(ms),
        s.cpu_s * 1000 / max(1, len(ms)),
    )


# -- the run ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    results: list[Result]
    wallet: str
    balance_fen: int
    api_fen: int
    direct_fen: int
    issued_events: int
    mints: int
    database: str


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench(n: int, clients: int, database_url: str | None, tmp: Path) -> Outcome:
    try:
        return _bench(n, clients, database_url, tmp)
    except Exception:
        tail = tail_of(tmp / "operator.log", 40)
        if tail:
            _log(f"-- last lines of the operator service's log --\n{tail}")
        raise


def _bench(n: int, clients: int, database_url: str | None, tmp: Path) -> Outcome:
    first, second = n // 2, n - n // 2
    api_seq, api_conc, direct_seq, direct_conc = Samples(), Samples(), Samples(), Samples()
    manifest = tmp / "manifest.json"
    service_log = tmp / "operator.log"

    node_pids: list[int] = []
    service_pids: list[int] = []  # the running operator service's, the newest last

    def stack() -> list[int]:
        return [*node_pids, *service_pids[-1:]]

    _log("starting anvil and deploying...")
    with local_node(tmp, node_pids) as rpc, database(database_url, tmp) as db_url:
        deploy(rpc, manifest)
        env = service_env(rpc, manifest, db_url, free_port(), ADMIN_KEY)
        direct = Direct(CashClient(http(rpc), Manifest.load(manifest)))

        _log(f"starting the operator service; API key and a tier-{TIER} wallet...")
        with operator_service(env, service_log, service_pids) as url:
            api = Api(url)
            api.create_keys()
            wallet = api.create_wallet()
            run_batch(api.session(wallet), WARMUP, 1, Samples())
            api.issued_events()  # the indexer is up to date before the clock starts
            _log(f"API: {first} sequential, {first} with {clients} clients...")
            run_measured(api.session(wallet), first, 1, api_seq, stack)
            run_measured(api.session(wallet), first, clients, api_conc, stack)

            # The service stays up, idle, while the baseline runs: the node carries the same
            # background load (the service's indexer following the chain) under both paths.
            _log(f"direct: {first} sequential, {first} + {second} with {clients} threads, {second} seq...")
            run_batch(direct.session(wallet), WARMUP, 1, Samples())
            run_measured(direct.session(wallet), first, 1, direct_seq, stack)
            run_measured(direct.session(wallet), first, clients, direct_conc, stack)
            run_measured(direct.session(wallet), second, clients, direct_conc, stack)
            run_measured(direct.session(wallet), second, 1, direct_seq, stack)
            api.issued_events()  # indexed up to the head, so the restarted service has nothing to catch up

        _log("restarting the operator service (its nonce cache is stale after the direct mints)...")
        with operator_service(env, service_log, service_pids) as url:
            api.url = url
            run_batch(api.session(wallet), WARMUP, 1, Samples())
            api.issued_events()
            _log(f"API: {second} with {clients} clients, {second} sequential...")
            run_measured(api.session(wallet), second, clients, api_conc, stack)
            run_measured(api.session(wallet), second, 1, api_seq, stack)
            issued = api.issued_events()

        balance = direct.cash.balance_of(wallet)
        results = [
            summarise("API sequential", "api", 1, api_seq),
            summarise("direct chain/ sequential", "direct", 1, direct_seq),
            summarise(f"API concurrent ({clients} clients)", "api", clients, api_conc),
            summarise(f"direct chain/ concurrent ({clients} threads)", "direct", clients, direct_conc),
        ]
        return Outcome(
            results=results,
            wallet=wallet,
            balance_fen=balance,
            api_fen=api.tally.fen,
            direct_fen=direct.tally.fen,
            issued_events=issued,
            mints=api.tally.count + direct.tally.count,
            database=make_url(db_url).get_backend_name(),
        )


# -- output -------------------------------------------------------------------------------------------


def ratios(results: list[Result]) -> dict[str, float]:
    by = {(r.path, r.clients > 1): r for r in results}
    return {
        "sequential": by[("api", False)].req_per_s / by[("direct", False)].req_per_s,
        "concurrent": by[("api", True)].req_per_s / by[("direct", True)].req_per_s,
    }


def render(o: Outcome, n: int, clients: int) -> str:
    rows = [
        [
            r.mode,
            str(r.requests),
            f"{r.seconds:.2f}",
            f"{r.req_per_s:.2f}",
            f"{r.latency_ms_p50:.1f}",
            f"{r.latency_ms_p95:.1f}",
            f"{r.cpu_ms_per_request:.1f}",
        ]
        for r in o.results
    ]
    rt = ratios(o.results)
    expected = o.api_fen + o.direct_fen
    ok = o.balance_fen == expected
    return "\n".join(
        [
            f"Issuance of {AMOUNT_FEN} fen into one tier-{TIER} wallet on anvil, {n} requests a mode,",
            f"each awaiting its receipt. API: the operator service ({o.database}); direct: CashClient.mint",
            "(baseline timed in the same run on the same node, ABBA order; compare the ratio, not absolutes)",
            "",
            table(["mode", "requests", "seconds", "req/s", "p50 ms", "p95 ms", "stack CPU ms/req"], rows),
            "",
            "API overhead ratio (API req/s / direct chain req/s):",
            f"  sequential  {rt['sequential']:.2f}",
            f"  concurrent  {rt['concurrent']:.2f}  ({clients} clients / threads)",
            "",
            f"Correctness: balance of {o.wallet} (CashClient.balance_of) = {o.balance_fen:,} fen",
            f"  minted {expected:,} fen = API {o.api_fen:,} + direct {o.direct_fen:,} (warm-ups included)"
            f" -> {'OK' if ok else 'MISMATCH'}",
            f"  Issued events indexed by the service: {o.issued_events} of {o.mints} mints",
        ]
    )


# -- main ---------------------------------------------------------------------------------------------


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        n = int(value)
        if n < minimum:
            raise argparse.ArgumentTypeError(f"at least {minimum}")
        return n

    return parse


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the node and the service are stopped on the way out."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=_at_least(2), default=40, help="timed requests per mode (40)")
    parser.add_argument(
        "--concurrency", type=_at_least(2), default=16, help="clients / threads of the concurrent modes (16)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="the service's database: a new sqlite:/// file, or a postgresql+psycopg:// server "
        "where a fresh database is created and dropped (default: SQLite in a temporary directory)",
    )
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _interrupt)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="xcpay-bench-") as tmp:
        outcome = bench(args.requests, args.concurrency, args.database_url, Path(tmp))
    elapsed = time.monotonic() - started

    print(render(outcome, args.requests, args.concurrency))

    expected = outcome.api_fen + outcome.direct_fen
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "requests_per_mode": args.requests,
        "concurrency": args.concurrency,
        "amount_fen": AMOUNT_FEN,
        "database": outcome.database,
        "order": "API seq N/2, API conc N/2, direct seq N/2, direct conc N/2, direct conc N/2, "
        "direct seq N/2 (service up, idle) | service restarted | API conc N/2, API seq N/2",
        "warmup_requests_per_start": WARMUP,
        "wall_seconds_total": elapsed,
        "environment": environment(),
        "results": [asdict(r) for r in outcome.results],
        "api_over_direct_ratio": ratios(outcome.results),
        "correctness": {
            "wallet": outcome.wallet,
            "balance_fen": outcome.balance_fen,
            "minted_fen": expected,
            "minted_via_api_fen": outcome.api_fen,
            "minted_direct_fen": outcome.direct_fen,
            "issued_events_indexed": outcome.issued_events,
            "mints": outcome.mints,
            "ok": outcome.balance_fen == expected,
        },
    }
    by = {(r.path, r.clients > 1): r for r in outcome.results}
    rows = [
        Target(
            f"issuance: HTTP API vs direct chain/ mints, {label}",
            by[("api", conc)].req_per_s,
            by[("direct", conc)].req_per_s,
            GOAL,
            "req/s",
        )
        for label, conc in (("sequential", False), (f"{args.concurrency} concurrent", True))
    ]
    # With many clients both paths are bound by the machine's CPU (the client, anvil and the
    # service share its cores), so their rates can differ at most as their CPU per request does:
    # the direct path's CPU per mint over the API's per issuance is the ceiling of the ratio.
    api_c, direct_c = by[("api", True)], by[("direct", True)]
    rows += [
        Target(
            f"issuance: stack CPU per request, API vs direct mints, {args.concurrency} concurrent",
            round(api_c.cpu_ms_per_request, 2),
            round(direct_c.cpu_ms_per_request, 2),
            None,
            "ms",
        ),
        Target(
            "issuance: ceiling the CPU sets on the concurrent ratio (direct CPU / API CPU per request)",
            round(direct_c.cpu_ms_per_request / max(api_c.cpu_ms_per_request, 1e-9), 3),
            None,
            GOAL,
            "x",
        ),
    ]
    print()
    print(render_rows(rows))
    report.pop("environment")
    write_result("bench_operator", rows, {"requests_per_mode": args.requests}, **report)
    print(f"\nwritten: {OUT_FILE.relative_to(ROOT)} (whole run {elapsed:.0f} s)")
    return 0 if outcome.balance_fen == expected else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the node and the service were already stopped on the way out
        print("interrupted", file=sys.stderr)
        sys.exit(130)
