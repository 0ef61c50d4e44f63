"""Verifiable deployments: the manifest records each contract's deployment transaction,
constructor arguments and Sourcify-style files (solc metadata + standard-JSON input), and
``python -m chain verify`` recompiles them and holds the result against the chain -- on a real
anvil through the CLI, and on eth-tester for the tampered cases, which must fail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3

from chain.backends import http, in_process
from chain.compiler import CompileResult
from chain.deploy import deploy_all
from chain.manifest import Manifest
from chain.paths import PROJECT_ROOT
from chain.verify import INPUT_FILE, METADATA_FILE, verify_manifest
from tests.processes import anvil_node


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chain", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
def test_deploy_records_what_explorers_need_and_verify_matches_on_anvil(tmp_path: Path) -> None:
    out = tmp_path / "manifest.json"
    with anvil_node() as url:
        deployed = cli("deploy", "--rpc", url, "--out", str(out))
        assert deployed.returncode == 0, deployed.stderr
        raw = json.loads(out.read_text())
        w3 = http(url)
        for name, d in raw["contracts"].items():
            tx = w3.eth.get_transaction(d["tx_hash"])
            assert w3.eth.get_transaction_receipt(d["tx_hash"])["contractAddress"] == d["address"]
            assert bytes(tx["input"]).hex().endswith(d["constructor_args"].removeprefix("0x")), name
            folder = tmp_path / d["metadata"]
            assert folder == tmp_path / "manifest.contracts" / name
            metadata = json.loads((folder / METADATA_FILE).read_text())
            assert metadata["compiler"]["version"].startswith("0.8.30")
            assert metadata["settings"]["compilationTarget"] == {d["source"]: name}
            std_input = json.loads((folder / INPUT_FILE).read_text())
            assert set(std_input["sources"]) == set(metadata["sources"])
        assert (
            raw["contracts"]["WalletRegistry"]["constructor_args"]
            == "0x" + "00" * 12 + raw["deployer"][2:].lower()
        )
        # two contracts keep the test short (each recompile takes seconds with solc-js); every
        # contract is verified by the long test below
        verified = cli("verify", "--rpc", url, "--manifest", str(out), "DigitalCash", "QuickPay")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    lines = verified.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["full", "DigitalCash"], ["full", "QuickPay"]], lines


@pytest.fixture(scope="module")
def deployment(compiled: CompileResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[Web3, Path]:
    w3 = in_process()
    path = tmp_path_factory.mktemp("verify") / "manifest.json"
    deploy_all(w3, compiled=compiled).save(path)
    return w3, path


def input_of(path: Path, name: str) -> tuple[Path, dict]:
    folder = path.parent / Manifest.load(path).contracts[name].metadata
    return folder / INPUT_FILE, json.loads((folder / INPUT_FILE).read_text())


@pytest.mark.long
def test_every_deployed_contract_is_a_full_match(deployment: tuple[Web3, Path]) -> None:
    w3, path = deployment
    verdicts = verify_manifest(w3, path)
    assert {v.name: v.status for v in verdicts} == {name: "full" for name in Manifest.load(path).contracts}


def test_the_recorded_input_matches_and_a_changed_source_or_comment_does_not_fully(
    deployment: tuple[Web3, Path], tmp_path: Path
) -> None:
    w3, path = deployment
    (verdict,) = verify_manifest(w3, path, ["QuickPay"])
    assert (verdict.name, verdict.status) == ("QuickPay", "full")
    file, original = input_of(path, "QuickPay")
    name = "contracts/hardwallet/QuickPay.sol"
    source = original["sources"][name]["content"]
    try:
        assert "_DAY_OFFSET = 8 hours" in source
        tampered = json.loads(json.dumps(original))
        tampered["sources"][name]["content"] = source.replace(
            "_DAY_OFFSET = 8 hours", "_DAY_OFFSET = 9 hours"
        )
        file.write_text(json.dumps(tampered))
        (verdict,) = verify_manifest(w3, path, ["QuickPay"])
        assert verdict.status == "mismatch" and not verdict.ok
        commented = json.loads(json.dumps(original))
        commented["sources"][name]["content"] = source + "\n// a comment\n"
        file.write_text(json.dumps(commented))
        (verdict,) = verify_manifest(w3, path, ["QuickPay"])
        assert verdict.status == "partial" and verdict.ok
    finally:
        file.write_text(json.dumps(original))


def test_another_address_or_other_constructor_arguments_are_a_mismatch(
    deployment: tuple[Web3, Path], tmp_path: Path
) -> None:
    w3, path = deployment
    raw = json.loads(path.read_text())
    swapped = json.loads(json.dumps(raw))
    swapped["contracts"]["QuickPay"]["address"] = raw["contracts"]["WalletRegistry"]["address"]
    (tmp_path / "manifest.json").write_text(json.dumps(swapped))
    (tmp_path / "manifest.contracts").symlink_to(path.parent / "manifest.contracts")
    (verdict,) = verify_manifest(w3, tmp_path / "manifest.json", ["QuickPay"])
    assert (verdict.status, verdict.detail) == ("mismatch", "the runtime code differs from the compiled code")
    args = json.loads(json.dumps(raw))
    ctor = args["contracts"]["QuickPay"]["constructor_args"]
    args["contracts"]["QuickPay"]["constructor_args"] = ctor[:-1] + ("0" if ctor[-1] != "0" else "1")
    (tmp_path / "manifest.json").write_text(json.dumps(args))
    (verdict,) = verify_manifest(w3, tmp_path / "manifest.json", ["QuickPay"])
    assert (verdict.status, verdict.detail) == (
        "mismatch",
        "the creation transaction does not match code and arguments",
    )


def test_a_manifest_without_recorded_inputs_is_held_against_the_sources(
    deployment: tuple[Web3, Path], tmp_path: Path
) -> None:
    """Manifests written before this change: the project's sources stand in for the input."""
    w3, path = deployment
    raw = json.loads(path.read_text())
    for d in raw["contracts"].values():
        for key in ("metadata", "tx_hash", "constructor_args"):
            d.pop(key)
    (tmp_path / "old.json").write_text(json.dumps(raw))
    (verdict,) = verify_manifest(w3, tmp_path / "old.json", ["QuickPay"])
    assert verdict.status == "full"
