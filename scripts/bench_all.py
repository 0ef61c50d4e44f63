"""`make bench`: run every benchmark script at full scale and gather issue 19's targets.

Each script prints its own tables (every figure beside a baseline measured in the same run, on
the default node) and writes its JSON under ``bench-results/``; the scripts that measure a target
of issue 19 put it there as ``rows``: ``{"name", "value", "baseline", "ratio", "goal"}`` (plus
``met``, ``unit``, ``note``). This collects every row into ``bench/results.json`` (with the machine,
the scale and each script's whole document under ``details``) and writes ``bench/results.md``
(the rows as a table, then each script's printed output), which the README quotes.

The reconciliation benchmark (``scripts/bench_reconcile.py``, rows in
``bench-results/reconcile.json``) is run and gathered too when it is present.

    .venv/bin/python scripts/bench_all.py [--quick] [--only bench_token,bench_gateway]

``--quick`` runs each script at its own default (modest) scale instead of the full one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.benchlib import RESULTS_DIR, environment, table  # noqa: E402

# name -> (arguments at full scale, the JSON it writes under bench-results/)
SCRIPTS: dict[str, tuple[list[str], str]] = {
    "bench_token": (["--transfers", "200"], "bench_token.json"),
    "bench_operator": (["--requests", "200"], "bench_operator.json"),
    "bench_disburse": (
        ["--people", "10000", "--baseline", "200", "--merkle-leaves", "100000"],
        "bench_disburse.json",
    ),
    "bench_gateway": (["--uploads-1", "20", "--uploads-big", "10"], "bench_gateway.json"),
    "load_test": (["--clients", "50", "--duration", "60", "--baseline", "15"], "load_test.json"),
    "bench_reconcile": ([], "reconcile.json"),
    "bench_prepaid": ([], "bench_prepaid.json"),
    # 100,000 holders (the script's default) exceed the API's 1 MiB body limit (413).
    "bench_vouchers": (["--holders", "10000"], "bench_vouchers.json"),
    # the dashboard's data call after the whole demo day (make demo's scale)
    "bench_dashboard": (["--scale", "full"], "bench_dashboard.json"),
}
OUT = ROOT / "bench"


def rows_of(doc: Any) -> list[dict[str, Any]]:
    """The target rows of one script's document (a document with ``rows``, or a bare list)."""
    rows = doc.get("rows", []) if isinstance(doc, dict) else doc if isinstance(doc, list) else []
    keys = {"name", "value", "baseline", "ratio", "goal"}
    return [r for r in rows if isinstance(r, dict) and keys <= set(r)]


def _cell(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, int | float) and not isinstance(x, bool):
        return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"
    return str(x)


def render(rows: list[dict[str, Any]]) -> str:
    body = [
        [
            r["name"],
            f"{_cell(r['value'])} {r.get('unit', '')}".strip(),
            _cell(r["baseline"]),
            _cell(r["ratio"]),
            r["goal"] or "-",
            {True: "yes", False: "NO", None: "-"}[r.get("met")],
        ]
        for r in rows
    ]
    return table(["target", "value", "baseline", "ratio", "goal", "met"], body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated script names")
    parser.add_argument("--quick", action="store_true", help="each script at its default (modest) scale")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        parser.error(f"unknown scripts: {', '.join(unknown)}")
    details: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    sections: list[str] = []
    failed, skipped = [], []
    for name in names:
        script = ROOT / "scripts" / f"{name}.py"
        if not script.exists():
            skipped.append(name)
            continue
        full_args, doc_name = SCRIPTS[name]
        cmd = [sys.executable, str(script), *([] if args.quick else full_args)]
        print(f"== {name} {' '.join(cmd[2:])} ==", flush=True)
        started = time.monotonic()
        doc_path = RESULTS_DIR / doc_name
        doc_path.unlink(missing_ok=True)  # a figure from an earlier run is never gathered as this one's
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        seconds = time.monotonic() - started
        print(done.stdout, flush=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr, flush=True)
            failed.append(name)
            sections.append(f"## {name}\n\nFAILED (exit {done.returncode}) after {seconds:.0f} s\n")
        else:
            sections.append(f"## {name} ({seconds:.0f} s)\n\n```\n{done.stdout.strip()}\n```\n")
        if doc_path.exists():
            doc = json.loads(doc_path.read_text())
            details[name] = doc
            rows += [{"benchmark": name, **r} for r in rows_of(doc)]
    OUT.mkdir(exist_ok=True)
    env = environment()
    measured = datetime.now(UTC)
    scale = "quick (each script's defaults)" if args.quick else "full (make bench)"
    (OUT / "results.json").write_text(
        json.dumps(
            {
                "measured_at": measured.isoformat(timespec="seconds"),
                "scale": scale,
                "environment": env,
                "failed": failed,
                "rows": rows,
                "details": details,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    machine = f"{env['platform']}, {env['cpus']} CPUs, Python {env['python']}, commit {env['git_commit']}"
    header = f"# Benchmark results\n\nMeasured {measured:%Y-%m-%d %H:%M} UTC on {machine}; scale: {scale}.\n"
    summary = f"## Targets (issue 19)\n\n```\n{render(rows)}\n```\n" if rows else ""
    (OUT / "results.md").write_text(header + "\n" + summary + "\n" + "\n".join(sections))
    if rows:
        print(render(rows))
    print(
        f"written: bench/results.json, bench/results.md; failed: {failed or 'none'};"
        f" not present: {skipped or 'none'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
