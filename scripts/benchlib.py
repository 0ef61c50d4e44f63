"""What the benchmark scripts share: the plain-text table, the environment block of the JSON, the
rows of ``bench/results.json`` (one per target of issue 19), the bare-batch baseline (the node's
limit) and the memory of a stack."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from chain.accounts import dev_account
from chain.compiler import CompileResult, compile_contracts
from chain.sender import Transactor

ROOT = Path(__file__).resolve().parent.parent


def table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A plain-text table; the first ``left`` columns are left-aligned, the rest right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(**extra: Any) -> dict[str, Any]:
    """Where the figures were measured: machine, Python, key packages, git commit, plus ``extra``."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "web3": version("web3"),
        "py-evm": version("py-evm"),
        "eth-tester": version("eth-tester"),
    }
    try:
        env["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        env["git_commit"] = None
    env.update(extra)
    return env


# -- the rows of bench/results.json -------------------------------------------------------------------

RESULTS_DIR = ROOT / "bench-results"


@dataclass
class Target:
    """One target of issue 19: a figure, the baseline measured in the same run, and the goal.

    ``goal`` ("<op> <number>", e.g. ``">= 0.5"``) applies to ``ratio`` (value / baseline) when there
    is a baseline, else to ``value``; ``None`` when the figure is reported without a target.
    """

    name: str
    value: float
    baseline: float | None
    goal: str | None
    unit: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        subject = self.ratio if self.baseline is not None else self.value
        if subject is None:
            return False
        op, number = self.goal.split()
        return bool(_OPS[op](subject, float(number)))

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _round(self.value),
            "baseline": _round(self.baseline),
            "ratio": _round(self.ratio),
            "goal": self.goal,
            "met": self.met,
            "unit": self.unit,
            "note": self.note,
        }


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def render_rows(rows: list[Target]) -> str:
    """The rows as the table every script prints last (and bench_all gathers)."""
    body = [
        [
            r.name,
            f"{_fmt(r.value)} {r.unit}".strip(),
            _fmt(r.baseline),
            _fmt(r.ratio),
            r.goal or "-",
            {True: "yes", False: "NO", None: "-"}[r.met],
        ]
        for r in rows
    ]
    return table(["target", "value", "baseline", "ratio", "goal", "met"], body)


def write_result(script: str, rows: list[Target], scale: dict[str, Any], **details: Any) -> Path:
    """``bench-results/<script>.json``: the rows, the scale they were measured at, and details."""
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{script}.json"
    doc = {
        "benchmark": script,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "scale": scale,
        "rows": [r.as_json() for r in rows],
        **details,
    }
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return out


# -- the node's limit: a bare batch contract ----------------------------------------------------------

BARE_SIGNER_INDEX = 5  # a development account no service and no other benchmark actor signs with


class BareBatchLimit:
    """``PlainERC20`` and ``BareBatch`` (contracts/mocks) deployed on one node: plain ERC20 transfers
    in chunks, each chunk one transaction signed and sent through ``chain/`` with its gas estimated
    once per chunk size (build, sign, send, mine), awaited before the next. What the node sustains
    with no permission checks and no records: the ceiling a batch path of the platform is read
    against."""

    def __init__(self, w3: Web3, tx: Transactor, compiled: CompileResult | None = None) -> None:
        compiled = compiled or compile_contracts()
        self.w3, self.tx = w3, tx
        self.signer = dev_account(BARE_SIGNER_INDEX)
        plain, bare = compiled["PlainERC20"], compiled["BareBatch"]
        self.token = w3.eth.contract(
            address=tx.deploy(self.signer, plain.abi, plain.bytecode).receipt["contractAddress"],
            abi=plain.abi,
        )
        self.bare = w3.eth.contract(
            address=tx.deploy(self.signer, bare.abi, bare.bytecode).receipt["contractAddress"], abi=bare.abi
        )
        tx.transact(self.signer, self.token.functions.mint(self.bare.address, 10**30))
        self._gas: dict[int, int] = {}
        self.gas_used = 0  # the receipts' gasUsed over every run: gas per transfer = gas_used / paid
        self.paid = 0

    def _chunk_fn(self, recipients: list[str], amount: int) -> Any:
        return self.bare.functions.transferBatch(self.token.address, recipients, [amount] * len(recipients))

    def run(self, recipients: int, chunk: int, *, to: str | None = None, amount: int = 100) -> float:
        """Pay ``recipients`` (fresh addresses, or all ``to``) in chunks; returns recipients per second."""
        targets = [to] * recipients if to else [Account.create().address for _ in range(recipients)]
        chunks = [targets[i : i + chunk] for i in range(0, len(targets), chunk)]
        for size in {len(c) for c in chunks} - set(self._gas):
            probe = [Account.create().address for _ in range(size)] if to is None else [to] * size
            self._gas[size] = int(self.tx.estimate(self._chunk_fn(probe, amount), self.signer.address) * 1.2)
        started = time.perf_counter()
        for c in chunks:
            sent = self.tx.send(self.signer, self._chunk_fn(c, amount), gas=self._gas[len(c)])
            self.gas_used += int(self.tx.wait(sent.tx_hash).receipt["gasUsed"])
        rate = recipients / (time.perf_counter() - started)
        self.paid += recipients
        return rate

    @property
    def gas_per_transfer(self) -> float:
        """Gas per transfer over every run (the transaction's base cost and calldata shared by its
        chunk, as a batch of the platform shares them): what the node executes per payment."""
        return self.gas_used / self.paid


# -- memory of the stack ------------------------------------------------------------------------------


def rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes and their descendants, in MB (Linux /proc)."""
    seen: set[int] = set()
    todo = list(pids)
    total_kb = 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total_kb / 1024


def cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) these processes have used so far, descendants excluded (Linux
    /proc). On a shared machine a phase's CPU is steadier than its wall time: the load of other
    work stretches the wall clock, much less the CPU a row costs."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / tick
