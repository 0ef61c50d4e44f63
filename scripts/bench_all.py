"""`make bench`: run every benchmark script in turn and gather their results.

Each script prints its own table (every figure beside a baseline measured in the same run) and
writes its JSON under ``bench-results/``. This collects them into ``bench/results.json`` (every
script's document, keyed by name) and ``bench/results.md`` (each script's printed tables and the
machine they ran on), which the README quotes.

    .venv/bin/python scripts/bench_all.py [--only bench_token,bench_prepaid]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.benchlib import environment  # noqa: E402

SCRIPTS = [
    "bench_token",
    "bench_operator",
    "bench_prepaid",
    "bench_disburse",
    "bench_vouchers",
    "bench_gateway",
    "load_test",
]
OUT = ROOT / "bench"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated script names")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else SCRIPTS
    results: dict[str, object] = {}
    sections: list[str] = []
    failed = []
    for name in names:
        print(f"== {name} ==", flush=True)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / f"{name}.py")], cwd=ROOT, capture_output=True, text=True
        )
        seconds = time.monotonic() - started
        print(done.stdout, flush=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr, flush=True)
            failed.append(name)
            sections.append(f"## {name}\n\nFAILED (exit {done.returncode}) after {seconds:.0f} s\n")
            continue
        doc = ROOT / "bench-results" / f"{name}.json"
        if doc.exists():
            results[name] = json.loads(doc.read_text())
        sections.append(f"## {name} ({seconds:.0f} s)\n\n```\n{done.stdout.strip()}\n```\n")
    OUT.mkdir(exist_ok=True)
    env = environment()
    (OUT / "results.json").write_text(
        json.dumps(
            {"measured_at": datetime.now(UTC).isoformat(), "environment": env, "results": results}, indent=2
        )
    )
    machine = f"{env['platform']}, {env['cpus']} CPUs, Python {env['python']}, commit {env['git_commit']}"
    header = f"# Benchmark results\n\nMeasured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}.\n"
    (OUT / "results.md").write_text(header + "\n" + "\n".join(sections))
    print(f"written: bench/results.json, bench/results.md; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
