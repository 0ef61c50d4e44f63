"""Run Slither over the project's contracts and hold every finding against the triage file.

The contracts are compiled the way ``chain/compiler.py`` compiles them (solc 0.8.30, EVM cancun,
optimizer 200 runs, the OpenZeppelin remapping) with the same compiler binary: a native solc
0.8.30 when installed, otherwise the solc-js wrapper ``chain/solcjs_wrapper.js``. Slither gets
the sources through crytic-compile's ``SolcStandardJson`` platform, which runs
``<solc> --version`` and ``<solc> --standard-json --allow-paths <root>``: the two calls the
wrapper answers (it ignores ``--allow-paths``). crytic-compile's own ``solc`` platform would run
``--combined-json`` instead, which solc-js cannot do, so this route is the one that works here.

Every finding gets a stable key, ``<detector>:<Contract>.<member>`` (member: the function,
state variable, event...; ``<Contract>.<function>.<local>`` for a local variable), with no line
numbers, so edits elsewhere in a file do not invalidate the triage. The run fails (exit 1) on:

* any High or Medium finding: those are fixed in the contract, or, when they are false
  positives, suppressed on the line with ``// slither-disable-next-line <detector> <reason>``
  (STYLE.md: suppressions are local and carry a reason);
* any Low, Informational or Optimization finding whose key is not in ``audit/slither-triage.md``
  with a reason (a row whose reason is empty or starts with ``TODO`` does not count).

Findings that lie wholly in dependencies (``node_modules``) are left out: OpenZeppelin is not
ours to change. A finding that touches our code and a dependency is kept.

Slither runs from its own tool environment, ``.venv-audit`` (``make audit-env``, pinned in
``audit/requirements.lock``): it pins web3<8 and the project runs web3 8. Started with another
interpreter (the project's ``.venv``), the script runs itself again under ``.venv-audit``.

Usage::

    .venv/bin/python audit/run_slither.py                   # check, print a summary
    .venv/bin/python audit/run_slither.py --write-skeleton  # append TODO rows for new keys
    .venv/bin/python audit/run_slither.py --list            # print every finding in our code
    .venv/bin/python audit/run_slither.py --json build/slither/results.json

Exit codes: 0 clean, 1 unexplained or High/Medium findings, 2 the analysis could not run.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import re
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from chain.compiler import (  # noqa: E402  (needs the project root on sys.path)
    EVM_VERSION,
    OPTIMIZER_RUNS,
    REMAPPINGS,
    SOLC_VERSION,
    find_solc,
)
from chain.exceptions import CompilerNotFound  # noqa: E402
from chain.paths import CONTRACTS_DIR, NODE_MODULES  # noqa: E402

AUDIT_VENV = PROJECT_ROOT / ".venv-audit"
TRIAGE_FILE = PROJECT_ROOT / "audit" / "slither-triage.md"
EXCLUDED_DIRS = ("mocks",)  # under contracts/: test doubles, never deployed
IMPACT_ORDER = ("High", "Medium", "Low", "Informational", "Optimization")
BLOCKING_IMPACTS = ("High", "Medium")
TRIAGE_HEADER = """\
# Slither triage

Every Low, Informational and Optimization finding that Slither reports on `contracts/` (mocks
excluded) and that we keep rather than fix is explained here, one row per stable key
`<detector>:<Contract>.<member>` (no line numbers). `audit/run_slither.py` (`make audit`) fails
on a finding whose key has no row here, or whose reason is empty or starts with `TODO`. High and
Medium findings cannot be accepted here: fix them, or suppress a proven false positive on the
line with `// slither-disable-next-line <detector> <reason>`.

Regenerate rows for new findings with `.venv/bin/python audit/run_slither.py --write-skeleton`,
then replace each `TODO` with the reason. A row whose key no longer matches any finding is
reported as stale; delete it.

| Key | Impact | Reason |
|-----|--------|--------|
"""


@dataclass(frozen=True)
class Finding:
    key: str
    check: str
    impact: str
    confidence: str
    description: str
    first_location: str


# --------------------------------------------------------------------------------------------
# Running Slither
# --------------------------------------------------------------------------------------------


def contract_sources(contracts_dir: Path = CONTRACTS_DIR) -> list[Path]:
    """Every ``.sol`` file under ``contracts_dir`` except the excluded folders."""
    files = [
        f
        for f in sorted(contracts_dir.rglob("*.sol"))
        if not any(part in EXCLUDED_DIRS for part in f.relative_to(contracts_dir).parts[:-1])
    ]
    if not files:
        raise SystemExit(f"run_slither: no Solidity sources under {contracts_dir}")
    return files


def snapshot(files: list[Path], root: Path) -> list[Path]:
    """Copy ``files`` to ``root/contracts/...`` and link ``root/node_modules``.

    Other people edit contracts while this runs; Slither reads each file twice (the compiler, then
    its own source mapping), so it works on a private copy taken once.
    """
    copies = []
    for f in files:
        copy = root / f.relative_to(PROJECT_ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(f.read_bytes())
        copies.append(copy)
    (root / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    return copies


def standard_input(files: list[Path], root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The compiler input, with the settings of ``chain/compiler.py``.

    Sources are named ``contracts/<family>/<Name>.sol`` relative to ``root``, which is also the
    compiler's working directory, so Slither maps them back to the files. ``outputSelection`` is
    left to crytic-compile, which asks for the AST and the source maps.
    """
    return {
        "language": "Solidity",
        "sources": {f.relative_to(root).as_posix(): {"content": f.read_text()} for f in files},
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "remappings": list(REMAPPINGS),
        },
    }


def run_slither(solc: Path, files: list[Path]) -> list[dict[str, Any]]:
    """All detectors' results (Slither's JSON dicts) over a snapshot of ``files``."""
    from crytic_compile.platform.exceptions import InvalidCompilation
    from crytic_compile.platform.solc import get_version
    from crytic_compile.platform.solc_standard_json import SolcStandardJson
    from slither import Slither
    from slither.detectors import all_detectors
    from slither.detectors.abstract_detector import AbstractDetector

    version = get_version(str(solc), None)
    if version != SOLC_VERSION:
        raise SystemExit(f"run_slither: {solc} is solc {version}, the project pins {SOLC_VERSION}")

    with tempfile.TemporaryDirectory(prefix="slither-") as tmp:
        root = Path(tmp).resolve() / "src"
        input_json = standard_input(snapshot(files, root), root)
        _SOURCE_ROOTS.insert(0, root)
        # Slither silently drops findings listed in a triage database (slither.db.json) or a
        # SARIF triage file in the working directory; point both at files that do not exist so
        # that only this script's triage file and in-source comments decide.
        none = str(Path(tmp) / "none")
        try:
            slither = Slither(
                SolcStandardJson(input_json),
                solc=str(solc),
                solc_working_dir=str(root),
                triage_database=none + ".json",
            )
        except InvalidCompilation as exc:
            raise SystemExit(f"run_slither: compilation failed:\n{exc}") from None
        slither.sarif_input = none + ".sarif"
        slither.sarif_triage = none + ".sarifexplorer"
        detectors = [
            d
            for _, d in inspect.getmembers(all_detectors, inspect.isclass)
            if issubclass(d, AbstractDetector)
        ]
        for detector in detectors:
            slither.register_detector(detector)
        return [r for results in slither.run_detectors() for r in results]


# --------------------------------------------------------------------------------------------
# Stable keys
# --------------------------------------------------------------------------------------------


_SOURCE_ROOTS: list[Path] = [PROJECT_ROOT]  # run_slither puts its snapshot first


def _relative(element: dict[str, Any]) -> str:
    """The element's file relative to the project (``contracts/...``, ``node_modules/...``)."""
    mapping = element.get("source_mapping") or {}
    absolute = mapping.get("filename_absolute")
    if not absolute:
        return mapping.get("filename_relative", "")
    path = Path(absolute)
    for root in _SOURCE_ROOTS:
        if path.is_relative_to(root):  # our sources (node_modules resolves out of the snapshot)
            return path.relative_to(root).as_posix()
    resolved = path.resolve()
    for root in _SOURCE_ROOTS:
        if resolved.is_relative_to(root):
            return resolved.relative_to(root).as_posix()
    return resolved.as_posix()


def _is_ours(element: dict[str, Any]) -> bool:
    path = _relative(element)
    return path.startswith("contracts/") and not any(f"/{d}/" in path for d in EXCLUDED_DIRS)


def _parent(element: dict[str, Any]) -> dict[str, Any] | None:
    return (element.get("type_specific_fields") or {}).get("parent")


def _member_path(element: dict[str, Any]) -> str:
    """``Contract.function``, ``Contract.function.local``, ``Contract.variable``, ``Contract``..."""
    kind = element.get("type")
    if kind == "pragma":
        return _relative(element)
    if kind == "node":  # a statement: key on the function that holds it
        parent = _parent(element)
        return _member_path(parent) if parent else _relative(element)
    names = [element.get("name", "?")]
    parent = _parent(element)
    while parent is not None:
        names.append(parent.get("name", "?"))
        parent = _parent(parent)
    return ".".join(reversed(names))


def finding_key(result: dict[str, Any]) -> str:
    elements = result.get("elements") or []
    check = result["check"]
    if not elements:
        return f"{check}:*"
    if all(e.get("type") == "pragma" for e in elements):
        return f"{check}:*"  # a project-wide remark (several pragma versions in use)
    ours = [e for e in elements if _is_ours(e) and e.get("type") != "pragma"]
    element = ours[0] if ours else elements[0]
    return f"{check}:{_member_path(element)}"


def to_findings(results: list[dict[str, Any]]) -> list[Finding]:
    findings = []
    for r in results:
        elements = r.get("elements") or []
        if elements and not any(_is_ours(e) for e in elements):
            continue  # wholly inside node_modules (or mocks)
        first = next((e for e in elements if _is_ours(e)), elements[0] if elements else {})
        lines = (first.get("source_mapping") or {}).get("lines") or []
        location = _relative(first) + (f"#{lines[0]}" if lines else "")
        findings.append(
            Finding(
                key=finding_key(r),
                check=r["check"],
                impact=r["impact"],
                confidence=r["confidence"],
                description=r["description"].strip(),
                first_location=location,
            )
        )
    return findings


# --------------------------------------------------------------------------------------------
# The triage file
# --------------------------------------------------------------------------------------------

_ROW = re.compile(r"^\s*\|(?P<cells>.*)\|\s*$")


def read_triage(path: Path) -> dict[str, tuple[str, str]]:
    """``key -> (impact, reason)`` from the Markdown table rows of ``path``."""
    entries: dict[str, tuple[str, str]] = {}
    if not path.exists():
        return entries
    for line in path.read_text().splitlines():
        m = _ROW.match(line)
        if not m:
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", m.group("cells"))]  # '\|' is a literal bar
        if len(cells) < 3 or set(cells[0]) <= set("-: ") or cells[0].lower() == "key":
            continue
        key = cells[0].strip("`").strip()
        reason = " | ".join(cells[2:]).strip()
        entries[key] = (cells[1], reason)
    return entries


def is_explained(reason: str | None) -> bool:
    return bool(reason) and not reason.upper().startswith("TODO")


def write_skeleton(path: Path, new: list[Finding]) -> int:
    """Append one ``TODO`` row per new key; returns the number of rows added."""
    existing = read_triage(path)
    rows: dict[str, Finding] = {}
    for f in new:
        if f.impact in BLOCKING_IMPACTS or f.key in existing:
            continue
        rows.setdefault(f.key, f)
    if not rows:
        return 0
    text = path.read_text() if path.exists() else TRIAGE_HEADER
    if not text.endswith("\n"):
        text += "\n"
    for key in sorted(rows):
        f = rows[key]
        summary = f.description.splitlines()[0].replace("|", "\\|")
        text += f"| `{key}` | {f.impact} | TODO: {summary} ({f.first_location}) |\n"
    path.write_text(text)
    return len(rows)


# --------------------------------------------------------------------------------------------
# Inline suppressions (listed, so that a reviewer sees them all in one place)
# --------------------------------------------------------------------------------------------

_SUPPRESSION = re.compile(r"//\s*slither-disable(?:-next-line|-start|-end)?\s+([A-Za-z0-9_,-]+)(.*)$")


def inline_suppressions(files: list[Path]) -> list[tuple[str, int, str, str]]:
    found = []
    for f in files:
        for number, line in enumerate(f.read_text().splitlines(), start=1):
            m = _SUPPRESSION.search(line)
            if m and "slither-disable-end" not in line:
                found.append((f.relative_to(PROJECT_ROOT).as_posix(), number, m.group(1), m.group(2).strip()))
    return found


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def run_in_tool_env(argv: list[str]) -> None:
    """Run this script again under ``.venv-audit`` when Slither is not importable here.

    Slither pins web3<8 and the project's venv has web3 8, so Slither cannot live in it; the
    tool venv holds Slither (and py-solc-x, for ``chain/compiler.py``) and nothing of the
    project. Returns only when Slither is importable in this interpreter.
    """
    if importlib.util.find_spec("slither") is not None:
        return
    python = AUDIT_VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == AUDIT_VENV.resolve() or not python.exists():
        print(
            f"run_slither: Slither is not installed in {python.parent.parent}; "
            "`make audit-env` creates Slither's tool environment",
            file=sys.stderr,
        )
        raise SystemExit(2)
    sys.stdout.flush()
    os.execv(python, [str(python), str(Path(__file__).resolve()), *argv])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triage", type=Path, default=TRIAGE_FILE, help="the triage Markdown file")
    parser.add_argument("--solc", type=Path, help="compiler binary (default: as chain/compiler.py)")
    parser.add_argument(
        "--write-skeleton", action="store_true", help="append TODO rows for new Low/Info/Opt keys"
    )
    parser.add_argument("--list", action="store_true", help="print every finding in our code")
    parser.add_argument("--json", type=Path, help="also write the findings in our code as JSON")
    parser.add_argument(
        "--write-input", type=Path, help="write the compiler input (for the slither CLI) and stop"
    )
    args = parser.parse_args(argv)

    files = contract_sources()
    if args.write_input:
        input_json = standard_input(files)
        args.write_input.parent.mkdir(parents=True, exist_ok=True)
        args.write_input.write_text(json.dumps(input_json, indent=1))
        print(f"wrote {args.write_input}")
        return 0

    try:
        solc = args.solc or find_solc()
    except CompilerNotFound as exc:
        print(f"run_slither: {exc}", file=sys.stderr)
        return 2
    print(f"Slither over {len(files)} files under contracts/ (mocks excluded), compiler {solc}")
    try:
        results = run_slither(solc, files)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    findings = to_findings(results)
    triage = read_triage(args.triage)

    blocking = [f for f in findings if f.impact in BLOCKING_IMPACTS]
    rest = [f for f in findings if f.impact not in BLOCKING_IMPACTS]
    explained = [f for f in rest if f.key in triage and is_explained(triage[f.key][1])]
    new = [f for f in rest if not (f.key in triage and is_explained(triage[f.key][1]))]
    seen_keys = {f.key for f in findings}
    stale = sorted(k for k in triage if k not in seen_keys)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([f.__dict__ for f in findings], indent=1))

    if args.list:
        for f in sorted(findings, key=lambda f: (IMPACT_ORDER.index(f.impact), f.key)):
            print(f"\n[{f.impact}/{f.confidence}] {f.key}\n  " + f.description.replace("\n", "\n  "))

    if args.write_skeleton:
        added = write_skeleton(args.triage, new)
        print(f"{args.triage}: {added} TODO row(s) added; fill in the reasons")

    # Summary --------------------------------------------------------------------------------
    by_impact: dict[str, Counter[str]] = defaultdict(Counter)
    for f in blocking:
        by_impact[f.impact]["blocking"] += 1
    for f in explained:
        by_impact[f.impact]["explained"] += 1
    for f in new:
        by_impact[f.impact]["new"] += 1
    print(f"\n{'impact':<14}{'findings':>9}{'explained':>11}{'new':>6}")
    for impact in IMPACT_ORDER:
        c = by_impact[impact]
        total = c["blocking"] + c["explained"] + c["new"]
        new_count = c["blocking"] + c["new"]
        print(f"{impact:<14}{total:>9}{c['explained']:>11}{new_count:>6}")
    print(
        f"{len(findings)} finding(s) in our code ({len({f.key for f in findings})} keys), "
        f"{len(results) - len(findings)} in dependencies left out"
    )

    suppressions = inline_suppressions(files)
    if suppressions:
        print(f"\n{len(suppressions)} inline suppression(s):")
        for path, line, detectors, reason in suppressions:
            print(f"  {path}:{line} {detectors} -- {reason or 'NO REASON GIVEN'}")
    if stale:
        print(f"\n{len(stale)} stale triage row(s) (no such finding any more; delete them):")
        for key in stale:
            print(f"  {key}")

    failed = False
    if blocking:
        failed = True
        print(
            f"\nFAIL: {len(blocking)} High/Medium finding(s); fix them, or suppress a false positive inline:"
        )
        for f in sorted(blocking, key=lambda f: (IMPACT_ORDER.index(f.impact), f.key)):
            print(f"  [{f.impact}] {f.key} ({f.first_location})")
    if new:
        failed = True
        keys = sorted({f.key for f in new})
        print(f"\nFAIL: {len(new)} finding(s) under {len(keys)} key(s) not explained in {args.triage}:")
        for f in sorted(new, key=lambda f: (IMPACT_ORDER.index(f.impact), f.key)):
            print(f"  [{f.impact}] {f.key} ({f.first_location})")
        if not args.write_skeleton:
            print("  (audit/run_slither.py --write-skeleton appends TODO rows for them)")
    if not failed:
        print("\nOK: no High/Medium finding, every other finding is explained")
    return 1 if failed else 0


if __name__ == "__main__":
    run_in_tool_env(sys.argv[1:])
    sys.exit(main())
