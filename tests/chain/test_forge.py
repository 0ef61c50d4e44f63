"""Foundry on this repo: ``forge build`` (foundry.toml: offline, the pinned solc through our
wrapper) gives the same ABIs as chain/compiler.py -- the files ``python -m chain abi`` exports --
and the same runtime code up to the metadata hash; ``forge test`` runs the Solidity tests."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from chain.__main__ import main as chain_cli
from chain.compiler import compile_contracts
from chain.paths import NODE_MODULES, PROJECT_ROOT

FORGE = NODE_MODULES / ".bin" / "forge"

pytestmark = [
    pytest.mark.slow,  # runs forge, which compiles everything with solc-js (about a minute)
    pytest.mark.skipif(not FORGE.exists(), reason="needs the npm forge package (npm ci)"),
]


def forge(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FOUNDRY_OUT": str(tmp / "out"), "FOUNDRY_CACHE_PATH": str(tmp / "cache")}
    return subprocess.run(
        [str(FORGE), *args, "--root", str(PROJECT_ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )


def without_metadata(code: str) -> str:
    """Runtime code without its CBOR metadata (its last 2 bytes give the length), which hashes the
    compiler's input paths and settings as each tool lays them out."""
    raw = bytes.fromhex(code.removeprefix("0x"))
    return raw[: -(int.from_bytes(raw[-2:], "big") + 2)].hex()


def canonical(abi: list[dict]) -> list[str]:
    """An ABI as a set of entries: forge lists functions, events and errors in its own order."""
    return sorted(json.dumps(entry, sort_keys=True) for entry in abi)


@pytest.fixture(scope="module")
def forge_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("forge")
    done = forge("build", tmp=tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp / "out"


def test_forge_builds_our_abis_and_code(forge_out: Path, tmp_path: Path) -> None:
    assert chain_cli(["abi", "--out", str(tmp_path)]) == 0
    ours = compile_contracts()
    exported = sorted(p.name.removesuffix(".abi.json") for p in tmp_path.glob("*.abi.json"))
    assert exported == sorted(ours.artifacts)
    for name, artifact in ours.artifacts.items():
        built = json.loads((forge_out / Path(artifact.source).name / f"{name}.json").read_text())
        assert canonical(json.loads((tmp_path / f"{name}.abi.json").read_text())) == canonical(
            built["abi"]
        ), name
        if artifact.deployed_bytecode != "0x":  # interfaces have no code
            assert without_metadata(built["deployedBytecode"]["object"]) == without_metadata(
                artifact.deployed_bytecode
            ), name


def test_forge_test_runs_the_solidity_tests(tmp_path: Path) -> None:
    done = forge("test", tmp=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 tests passed, 0 failed" in done.stdout
