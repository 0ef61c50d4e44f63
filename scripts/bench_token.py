"""Benchmark the permissioned DigitalCash token against a plain OpenZeppelin ERC20 baseline.

What it measures, in one run:

Every wallet is a tier-2 person (the typical wallet: capped, so every cap is checked; tier 1 is
unlimited and cheaper).

1. **Throughput**: sequential transfers per second of ``DigitalCash`` on anvil (the node of
   `make run`; ``--backends in-process,anvil`` adds the in-process eth-tester chain). Each transfer
   goes through the project's own client path (:class:`chain.clients.token.CashClient` /
   :class:`chain.sender.Transactor`: estimate gas, read the fee, sign locally, send raw, poll for
   the receipt), and waits for its receipt before the next one starts. On the same chain, with
   the same sender, receiver and client path, the same number of transfers of ``PlainERC20``
   (OpenZeppelin ERC20, no permission checks) is timed as the in-run baseline. The two are timed
   in ABBA order (token, plain, plain, token; N/2 each) so that a chain that slows down as it
   grows does not favour whichever runs first.

2. **Gas per transfer**: exact ``gasUsed`` of a DigitalCash transfer and of a PlainERC20 transfer
   on the same anvil chain in the same run, between two fresh tier-2 persons, for the first
   transfer (receiver holds nothing, sender has not spent today) and for a warm one (receiver
   already holds a balance, sender already spent today). The difference and the ratio are the
   price of the permission checks (one registry call for both ends, the daily-spend bookkeeping,
   the pause flag); calldata is identical, so the difference is all execution. Issue 19's goal:
   at most 1.5 times the plain transfer.

Why the figures must be read beside the baseline: absolute transfers per second here say more
about the machine, the Python client and the backend (py-evm is an interpreter in Python; every
transfer costs several JSON-RPC round trips) than about the contract. Only the token-to-baseline
ratio measured in the same run, on the same backend, isolates what the permission checks cost;
comparing an absolute figure with one from another run or another machine means little.

    .venv/bin/python scripts/bench_token.py [--transfers N] [--backends in-process,anvil]

Prints tables and writes ``bench-results/bench_token.json`` (its ``rows`` go to ``bench/results.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eth_account.signers.local import LocalAccount  # noqa: E402
from web3 import Web3  # noqa: E402
from web3.contract import Contract  # noqa: E402

from chain.accounts import dev_account  # noqa: E402
from chain.backends import http, in_process  # noqa: E402
from chain.clients.token import CashClient, Kind  # noqa: E402
from chain.compiler import CompileResult, compile_contracts  # noqa: E402
from chain.deploy import deploy_all  # noqa: E402
from chain.processes import ANVIL, ANVIL_HARDFORK, anvil_node  # noqa: E402
from chain.sender import TxResult  # noqa: E402
from scripts.benchlib import Target, environment, render_rows, table, write_result  # noqa: E402

OUT_FILE = ROOT / "bench-results" / "bench_token.json"
BACKENDS = ("in-process", "anvil")
TIER = 2  # the typical wallet: a tier-2 person (capped)
GAS_GOAL = "<= 1.5"
WARMUP_TRANSFERS = 2  # untimed, per token: the first (cold) transfer and one warm one


@contextmanager
def _backend(name: str) -> Iterator[Web3]:
    if name == "in-process":
        yield in_process()
    elif name == "anvil":
        with anvil_node() as url:
            yield http(url)
    else:
        raise ValueError(f"unknown backend {name!r}")


# -- one chain set up for the benchmark --------------------------------------------------------------


@dataclass
class Bench:
    """DigitalCash and PlainERC20 deployed on one chain, the sender funded with both."""

    w3: Web3
    cash: CashClient
    plain: Contract
    sender: LocalAccount
    receiver: str

    def cash_transfer(self) -> TxResult:
        return self.cash.transfer(self.sender, self.receiver, 1)

    def plain_transfer(self) -> TxResult:
        return self.cash.tx.transact(self.sender, self.plain.functions.transfer(self.receiver, 1))


def _identity(label: str) -> bytes:
    return hashlib.sha256(f"bench:{label}".encode()).digest()


def set_up(w3: Web3, compiled: CompileResult, supply: int) -> Bench:
    manifest = deploy_all(w3, compiled=compiled)
    cash = CashClient(w3, manifest)
    deployer, operator = dev_account(0), dev_account(1)
    sender, receiver = dev_account(3), dev_account(4)
    for who, label in ((sender, "sender"), (receiver, "receiver")):
        cash.register(operator, who.address, Kind.PERSONAL, TIER, 0, _identity(label))
    cash.mint(operator, sender.address, supply)

    art = compiled["PlainERC20"]
    deployed = cash.tx.deploy(deployer, art.abi, art.bytecode)
    plain = w3.eth.contract(address=deployed.receipt["contractAddress"], abi=art.abi)
    cash.tx.transact(sender, plain.functions.mint(sender.address, supply))
    return Bench(w3, cash, plain, sender, receiver.address)


# -- throughput ---------------------------------------------------------------------------------------


@dataclass
class Timing:
    transfers: int
    seconds: float
    tps: float
    latency_ms_p50: float
    latency_ms_p95: float
    gas_per_transfer: float


def _summarise(latencies: list[float], gas: list[int]) -> Timing:
    total = sum(latencies)
    ms = sorted(x * 1000 for x in latencies)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return Timing(len(ms), total, len(ms) / total, statistics.median(ms), p95, statistics.fmean(gas))


def _run(transfer: Callable[[], TxResult], n: int, latencies: list[float], gas: list[int]) -> None:
    for _ in range(n):
        start = time.perf_counter()
        result = transfer()
        latencies.append(time.perf_counter() - start)
        gas.append(result.gas_used)


@dataclass
class BackendResult:
    backend: str
    digital_cash: Timing
    plain_erc20: Timing

    @property
    def tps_ratio(self) -> float:
        return self.digital_cash.tps / self.plain_erc20.tps


def bench_backend(name: str, compiled: CompileResult, n: int) -> tuple[BackendResult, list[GasCase]]:
    with _backend(name) as w3:
        bench = set_up(w3, compiled, supply=10 * (n + WARMUP_TRANSFERS))
        gas_cases = bench_gas(bench)
        for _ in range(WARMUP_TRANSFERS):
            bench.cash_transfer()
            bench.plain_transfer()
        first, second = n // 2, n - n // 2
        lat: dict[str, list[float]] = {"cash": [], "plain": []}
        gas: dict[str, list[int]] = {"cash": [], "plain": []}
        _run(bench.cash_transfer, first, lat["cash"], gas["cash"])  # A
        _run(bench.plain_transfer, first, lat["plain"], gas["plain"])  # B
        _run(bench.plain_transfer, second, lat["plain"], gas["plain"])  # B
        _run(bench.cash_transfer, second, lat["cash"], gas["cash"])  # A
        expected = n + WARMUP_TRANSFERS  # 1 fen per transfer
        got = bench.cash.balance_of(bench.receiver)
        if got != expected:
            raise RuntimeError(f"{name}: receiver holds {got} fen after the run, expected {expected}")
        timing = BackendResult(
            name, _summarise(lat["cash"], gas["cash"]), _summarise(lat["plain"], gas["plain"])
        )
        return timing, gas_cases


# -- gas ----------------------------------------------------------------------------------------------


@dataclass
class GasCase:
    case: str
    digital_cash: int
    plain_erc20: int

    @property
    def difference(self) -> int:
        return self.digital_cash - self.plain_erc20

    @property
    def ratio(self) -> float:
        return self.digital_cash / self.plain_erc20


def bench_gas(bench: Bench) -> list[GasCase]:
    """First and warm transfer of each token between two fresh tier-2 persons, on the bench's chain."""
    cash, operator = bench.cash, dev_account(1)
    sender, receiver = dev_account(6), dev_account(7).address
    for address, label in ((sender.address, "gas sender"), (receiver, "gas receiver")):
        cash.register(operator, address, Kind.PERSONAL, TIER, 0, _identity(label))
    cash.mint(operator, sender.address, 1_000)
    cash.tx.transact(sender, bench.plain.functions.mint(sender.address, 1_000))
    if cash.spent_today(sender.address) or cash.balance_of(receiver):
        raise RuntimeError("the first case needs an empty receiver and nothing spent today")

    def both() -> tuple[int, int]:
        dc = cash.transfer(sender, receiver, 1).gas_used
        return dc, cash.tx.transact(sender, bench.plain.functions.transfer(receiver, 1)).gas_used

    first_cash, first_plain = both()
    warm_cash, warm_plain = both()
    return [
        GasCase("first transfer (receiver empty, nothing spent today)", first_cash, first_plain),
        GasCase("warm transfer (receiver holds, spent today)", warm_cash, warm_plain),
    ]


# -- output -------------------------------------------------------------------------------------------


def render(results: list[BackendResult], gas: list[GasCase], n: int, gas_backend: str) -> str:
    tps_rows = [
        [
            r.backend,
            str(n),
            f"{r.digital_cash.tps:.1f}",
            f"{r.plain_erc20.tps:.1f}",
            f"{r.tps_ratio:.2f}",
            f"{r.digital_cash.latency_ms_p50:.2f}",
            f"{r.plain_erc20.latency_ms_p50:.2f}",
            f"{r.digital_cash.latency_ms_p95:.2f}",
            f"{r.plain_erc20.latency_ms_p95:.2f}",
            f"{r.digital_cash.gas_per_transfer:,.0f}",
            f"{r.plain_erc20.gas_per_transfer:,.0f}",
        ]
        for r in results
    ]
    tps_headers = [
        "backend",
        "transfers",
        "DigitalCash tx/s",
        "PlainERC20 tx/s",
        "tx/s ratio DC/ERC20",
        "DC p50 ms",
        "ERC20 p50 ms",
        "DC p95 ms",
        "ERC20 p95 ms",
        "DC gas/tx",
        "ERC20 gas/tx",
    ]
    gas_rows = [
        [
            g.case,
            f"{g.digital_cash:,}",
            f"{g.plain_erc20:,}",
            f"{g.difference:+,}",
            f"{g.ratio:.3f}",
        ]
        for g in gas
    ]
    gas_headers = [
        f"case ({gas_backend}, tier-2 persons)",
        "DigitalCash gas",
        "PlainERC20 gas",
        "difference",
        "ratio DC/ERC20",
    ]
    return "\n".join(
        [
            f"Throughput: {n} sequential transfers per token per backend between tier-{TIER} persons,"
            " each awaiting its receipt",
            "(baseline PlainERC20 timed in the same run on the same chain; compare the ratio, not absolutes)",
            "",
            table(tps_headers, tps_rows),
            "",
            "Gas per transfer: the price of the permission checks",
            "",
            table(gas_headers, gas_rows),
        ]
    )


def _environment(backends: list[str]) -> dict[str, Any]:
    """The shared environment block, plus the anvil version when anvil ran."""
    env = environment()
    if "anvil" in backends:
        try:
            out = subprocess.run([str(ANVIL), "--version"], capture_output=True, text=True, timeout=10).stdout
            env["anvil"] = out.splitlines()[0] if out else None
        except OSError:
            env["anvil"] = None
        env["anvil_hardfork"] = ANVIL_HARDFORK
    return env


# -- main ---------------------------------------------------------------------------------------------


def _backends_arg(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in names if v not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"backends are a comma-separated subset of {','.join(BACKENDS)}")
    return names


def _positive(value: str) -> int:
    n = int(value)
    if n < 2:
        raise argparse.ArgumentTypeError("at least 2 transfers")
    return n


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the node processes are terminated by their context managers."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=_positive, default=100, help="timed transfers per token (100)")
    parser.add_argument(
        "--backends",
        type=_backends_arg,
        default=["anvil"],
        help=f"comma-separated subset of {','.join(BACKENDS)} (anvil, the default node)",
    )
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _interrupt)

    compiled = compile_contracts()
    results: list[BackendResult] = []
    gas_by_backend: dict[str, list[GasCase]] = {}
    for name in args.backends:
        print(f"benchmarking {name}...", file=sys.stderr, flush=True)
        timing, gas_by_backend[name] = bench_backend(name, compiled, args.transfers)
        results.append(timing)
    gas_backend = "anvil" if "anvil" in gas_by_backend else args.backends[0]
    gas = gas_by_backend[gas_backend]

    print(render(results, gas, args.transfers, gas_backend))
    first, warm = gas
    rows = [
        Target(
            f"gas: tier-2 transfer (warm) vs PlainERC20 ({gas_backend})",
            warm.digital_cash,
            warm.plain_erc20,
            GAS_GOAL,
            "gas",
        ),
        Target(
            f"gas: tier-2 transfer (first, receiver empty) vs PlainERC20 ({gas_backend})",
            first.digital_cash,
            first.plain_erc20,
            GAS_GOAL,
            "gas",
        ),
        *(
            Target(f"tier-2 transfers/s vs PlainERC20 ({r.backend}, sequential)", r.digital_cash.tps,
                r.plain_erc20.tps, None, "tx/s")
            for r in results
        ),
    ]  # fmt: skip
    print()
    print(render_rows(rows))

    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "transfers_per_token": args.transfers,
        "order": "ABBA: DigitalCash N/2, PlainERC20 N/2, PlainERC20 N/2, DigitalCash N/2",
        "warmup_transfers_per_token": WARMUP_TRANSFERS,
        "environment": _environment(args.backends),
        "tier": TIER,
        "gas_backend": gas_backend,
        "throughput": [
            {
                "backend": r.backend,
                "digital_cash": asdict(r.digital_cash),
                "plain_erc20": asdict(r.plain_erc20),
                "tps_ratio_dc_over_erc20": r.tps_ratio,
            }
            for r in results
        ],
        "gas": [
            {
                "case": g.case,
                "digital_cash": g.digital_cash,
                "plain_erc20": g.plain_erc20,
                "difference": g.difference,
                "ratio_dc_over_erc20": g.ratio,
            }
            for g in gas
        ],
    }
    report.pop("environment")
    write_result("bench_token", rows, {"transfers_per_token": args.transfers}, **report)
    print(f"\nwritten: {OUT_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # node processes were already stopped on the way out
        print("interrupted", file=sys.stderr)
        sys.exit(130)
