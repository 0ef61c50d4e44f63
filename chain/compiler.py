"""Compile the project's Solidity sources with a pinned compiler, caching artifacts by source hash.

py-solc-x drives the compiler. A native ``solc`` of the pinned version is used when installed;
otherwise the npm ``solc`` package (solc-js) through ``chain/solcjs_wrapper.js``, because no
compiler download works on the machines this project targets. Artifacts are cached under
``build/`` keyed by the hash of every input (sources, OpenZeppelin version, compiler, settings),
so a second run with unchanged sources never starts the compiler.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import solcx
from solcx.exceptions import SolcError

from chain.exceptions import CompilationError, CompilerNotFound
from chain.paths import BUILD_DIR, CONTRACTS_DIR, NODE_MODULES, PROJECT_ROOT, SOLCJS_WRAPPER

SOLC_VERSION = "0.8.30"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200
REMAPPINGS = ["@openzeppelin/=node_modules/@openzeppelin/"]


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    # solc's metadata JSON, byte for byte (its hash ends the bytecode): what Sourcify verifies with,
    # and the recipe for the contract's standard-JSON input (chain/verify.py)
    metadata: str = ""


@dataclass(frozen=True)
class CompileResult:
    artifacts: dict[str, Artifact]
    from_cache: bool
    cache_file: Path

    def __getitem__(self, name: str) -> Artifact:
        return self.artifacts[name]


def find_solc() -> Path:
    """The compiler binary to use: ``XCPAY_SOLC``, a native solc of the pinned version, or the wrapper."""
    override = os.environ.get("XCPAY_SOLC")
    if override:
        return Path(override)
    native = shutil.which("solc")
    if native and _version_of(Path(native)) == SOLC_VERSION:
        return Path(native)
    if not (NODE_MODULES / "solc").is_dir():
        raise CompilerNotFound(
            f"no native solc {SOLC_VERSION} and no npm 'solc' package in {NODE_MODULES}; "
            "run 'npm ci' (make does it for you)"
        )
    if shutil.which("node") is None:
        raise CompilerNotFound("the solc-js wrapper needs Node.js on PATH")
    return SOLCJS_WRAPPER


def _version_of(binary: Path) -> str | None:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):  # e.g. a solc-select shim with no compiler installed
        return None
    for token in out.stdout.split():
        if token[:1].isdigit():
            return token.split("+")[0]
    return None


def _sources(contracts_dir: Path) -> dict[str, str]:
    files = sorted(contracts_dir.rglob("*.sol"))
    if not files:
        raise CompilationError(f"no Solidity sources under {contracts_dir}")
    # Source names read "contracts/<family>/<Name>.sol" wherever the tree is.
    return {
        (Path(contracts_dir.name) / f.relative_to(contracts_dir)).as_posix(): f.read_text() for f in files
    }


def _standard_input(sources: dict[str, str]) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "remappings": REMAPPINGS,
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"]}
            },
        },
    }


def _oz_version() -> str:
    pkg = NODE_MODULES / "@openzeppelin" / "contracts" / "package.json"
    return json.loads(pkg.read_text())["version"] if pkg.exists() else "missing"


def cache_key(sources: dict[str, str]) -> str:
    """Hash of everything that can change the output."""
    h = hashlib.sha256()
    h.update(json.dumps(_standard_input(sources), sort_keys=True).encode())
    h.update(f"solc={SOLC_VERSION};oz={_oz_version()}".encode())
    return h.hexdigest()[:32]


def compile_contracts(
    contracts_dir: Path = CONTRACTS_DIR,
    build_dir: Path = BUILD_DIR,
    solc_binary: Path | None = None,
) -> CompileResult:
    """Compile every ``.sol`` file under ``contracts_dir`` (or load the cached result)."""
    sources = _sources(contracts_dir)
    cache_file = build_dir / f"artifacts-{cache_key(sources)}.json"
    if cache_file.exists():
        return CompileResult(_load(cache_file), from_cache=True, cache_file=cache_file)

    binary = solc_binary or find_solc()
    try:
        output = solcx.compile_standard(
            _standard_input(sources),
            base_path=str(PROJECT_ROOT),
            allow_paths=[str(PROJECT_ROOT)],
            solc_binary=str(binary),
        )
    except SolcError as exc:
        raise CompilationError(_format_errors(exc)) from None

    artifacts: dict[str, dict[str, Any]] = {}
    for source, contracts in output.get("contracts", {}).items():
        if not source.startswith("contracts/"):
            continue  # OpenZeppelin dependencies: not ours to deploy
        for name, out in contracts.items():
            if name in artifacts:
                raise CompilationError(
                    f"two contracts named {name}: {artifacts[name]['source']} and {source}"
                )
            artifacts[name] = {
                "name": name,
                "source": source,
                "abi": out["abi"],
                "bytecode": "0x" + out["evm"]["bytecode"]["object"],
                "deployed_bytecode": "0x" + out["evm"]["deployedBytecode"]["object"],
                "metadata": out["metadata"],
            }
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(artifacts))
    tmp.replace(cache_file)  # atomic: concurrent test workers never read half a file
    return CompileResult(_load(cache_file), from_cache=False, cache_file=cache_file)


def export_abis(result: CompileResult, out_dir: Path) -> list[Path]:
    """Write ``<Name>.abi.json`` per contract (the plain ABI array, as ``forge inspect <Name> abi``
    and ``cast`` read it), so that tools outside Python need not parse our artifact cache."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, artifact in sorted(result.artifacts.items()):
        path = out_dir / f"{name}.abi.json"
        path.write_text(json.dumps(artifact.abi, indent=2) + "\n")
        written.append(path)
    return written


def _load(cache_file: Path) -> dict[str, Artifact]:
    raw = json.loads(cache_file.read_text())
    return {name: Artifact(**a) for name, a in raw.items()}


def _format_errors(exc: SolcError) -> str:
    """The compiler's own formatted messages (they carry ``--> file:line:col``)."""
    try:
        output = json.loads(exc.stdout_data or "")
        errors = [e["formattedMessage"].strip() for e in output.get("errors", []) if e["severity"] == "error"]
        if errors:
            return "Solidity compilation failed:\n" + "\n\n".join(errors)
    except (TypeError, ValueError, KeyError):
        pass
    return f"Solidity compilation failed: {exc.message}\n{exc.stderr_data or ''}"
