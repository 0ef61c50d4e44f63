"""Deployments that explorers and auditors can verify.

For every deployed contract the manifest records its deployment transaction and constructor
arguments, and a directory (Sourcify's layout) holds:

- ``metadata.json``: solc's metadata, byte for byte, whose hash the compiler appended to the code
  (Sourcify checks it; it names the compiler, settings and the keccak256 of every source);
- ``input.json``: the standard-JSON input that recompiles exactly this contract (its sources,
  OpenZeppelin's included, and the settings of the metadata), which block explorers accept as is.

:func:`verify_deployment` recompiles each contract's input with the pinned compiler and compares
the result with the code on chain: *full* when it is equal byte for byte, metadata hash included
(Sourcify's "full match"), *partial* when only the metadata differs (a comment or a path changed),
*mismatch* otherwise. Immutables (addresses patched in by the constructor) are taken from the
chain code at the positions the compiler reports before comparing; the creation transaction must
carry the compiled creation code followed by the recorded constructor arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import solcx
from eth_hash.auto import keccak
from solcx.exceptions import SolcError
from web3 import Web3

from chain.compiler import Artifact, find_solc
from chain.exceptions import CompilationError, ManifestError
from chain.paths import NODE_MODULES, PROJECT_ROOT

METADATA_FILE = "metadata.json"
INPUT_FILE = "input.json"


def _source_path(name: str) -> Path:
    """Where a source name of the metadata lives: our contracts, or OpenZeppelin's (remapped)."""
    if name.startswith("@openzeppelin/"):
        return NODE_MODULES / name
    return PROJECT_ROOT / name


def standard_input(metadata: str) -> dict[str, Any]:
    """The standard-JSON input that recompiles the contract ``metadata`` describes.

    Each source is read from the project (or node_modules) and must hash to the keccak256 the
    metadata recorded, so the input is the one that was compiled, not whatever is on disk now.
    """
    meta = json.loads(metadata)
    sources = {}
    for name, info in meta["sources"].items():
        path = _source_path(name)
        try:
            content = path.read_text()
        except OSError:
            raise ManifestError(f"source {name} of the metadata is not at {path}") from None
        if "0x" + keccak(content.encode()).hex() != info["keccak256"]:
            raise ManifestError(f"source {name} changed since it was compiled (keccak256 differs)")
        sources[name] = {"content": content}
    settings = {k: v for k, v in meta["settings"].items() if k != "compilationTarget"}
    settings["outputSelection"] = {
        "*": {"*": ["abi", "metadata", "evm.bytecode.object", "evm.deployedBytecode"]}
    }
    return {"language": meta["language"], "sources": sources, "settings": settings}


def target_of(metadata: str) -> tuple[str, str]:
    """(source name, contract name) the metadata was compiled for."""
    ((source, name),) = json.loads(metadata)["settings"]["compilationTarget"].items()
    return source, name


def write_files(directory: Path, artifact: Artifact) -> None:
    """Write ``metadata.json`` and ``input.json`` of ``artifact`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / METADATA_FILE).write_text(artifact.metadata)
    (directory / INPUT_FILE).write_text(json.dumps(standard_input(artifact.metadata)))


@dataclass(frozen=True)
class Verdict:
    name: str
    address: str
    status: str  # full | partial | mismatch
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in {"full", "partial"}


def _strip_metadata(code: bytes) -> bytes:
    """Code without its trailing CBOR metadata (the last two bytes give its length)."""
    if len(code) < 2:
        return code
    length = int.from_bytes(code[-2:], "big") + 2
    return code[:-length] if length <= len(code) else code


def _with_immutables(compiled: bytes, chain: bytes, references: dict[str, list[dict[str, int]]]) -> bytes:
    """``compiled`` with the chain's bytes at the immutables' positions (zeros in compiled code)."""
    out = bytearray(compiled)
    for ranges in references.values():
        for r in ranges:
            start, end = r["start"], r["start"] + r["length"]
            if end <= len(chain):
                out[start:end] = chain[start:end]
    return bytes(out)


def _compile(std_input: dict[str, Any], source: str, name: str, solc_binary: Path | None) -> dict[str, Any]:
    try:
        output = solcx.compile_standard(
            std_input,
            base_path=str(PROJECT_ROOT),
            allow_paths=[str(PROJECT_ROOT)],
            solc_binary=str(solc_binary or find_solc()),
        )
    except SolcError as exc:
        raise CompilationError(f"the recorded input of {name} does not compile: {exc.message}") from None
    try:
        return dict(output["contracts"][source][name])
    except KeyError:
        raise CompilationError(f"the recorded input does not produce {source}:{name}") from None


def verify_contract(
    w3: Web3,
    name: str,
    address: str,
    metadata: str,
    std_input: dict[str, Any],
    *,
    tx_hash: str = "",
    constructor_args: str = "",
    solc_binary: Path | None = None,
) -> Verdict:
    """Recompile ``std_input`` and hold the result against the code at ``address``."""
    source, target = target_of(metadata)
    if target != name:
        return Verdict(name, address, "mismatch", f"the metadata describes {target}, not {name}")
    out = _compile(std_input, source, target, solc_binary)
    chain = bytes(w3.eth.get_code(Web3.to_checksum_address(address)))
    if not chain:
        return Verdict(name, address, "mismatch", "no code at this address")
    deployed = out["evm"]["deployedBytecode"]
    compiled = _with_immutables(
        bytes.fromhex(deployed["object"]), chain, deployed.get("immutableReferences", {})
    )
    if compiled == chain:
        status = "full"
    elif _strip_metadata(compiled) == _strip_metadata(chain):
        status = "partial"
    else:
        return Verdict(name, address, "mismatch", "the runtime code differs from the compiled code")
    if tx_hash:
        tx = w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        sent = bytes(tx["input"])
        args = bytes.fromhex(constructor_args.removeprefix("0x"))
        creation = bytes.fromhex(out["evm"]["bytecode"]["object"])
        if receipt["contractAddress"] != Web3.to_checksum_address(address):
            return Verdict(name, address, "mismatch", f"transaction {tx_hash} created another contract")
        if not sent.endswith(args) or (status == "full" and sent != creation + args):
            return Verdict(
                name, address, "mismatch", "the creation transaction does not match code and arguments"
            )
    detail = (
        ""
        if status == "full"
        else "the code matches but its metadata hash differs (sources' comments or paths)"
    )
    return Verdict(name, address, status, detail)


def verify_manifest(
    w3: Web3, manifest_path: Path, names: list[str] | None = None, *, solc_binary: Path | None = None
) -> list[Verdict]:
    """Verify the contracts of the manifest at ``manifest_path`` (all, or ``names``) on ``w3``.

    Each contract's recorded input is recompiled; a manifest written before inputs were recorded
    is held against the project's sources as they are now.
    """
    from chain.compiler import compile_contracts
    from chain.manifest import Manifest

    manifest = Manifest.load(manifest_path)
    if w3.eth.chain_id != manifest.chain_id:
        raise ManifestError(
            f"the manifest is for chain {manifest.chain_id}, the node is chain {w3.eth.chain_id}"
        )
    unknown = set(names or ()) - set(manifest.contracts)
    if unknown:
        raise ManifestError(f"not in the manifest: {', '.join(sorted(unknown))}")
    verdicts = []
    current = None
    for name, d in manifest.contracts.items():
        if names and name not in names:
            continue
        if d.metadata:
            directory = manifest_path.parent / d.metadata
            metadata = (directory / METADATA_FILE).read_text()
            std_input = json.loads((directory / INPUT_FILE).read_text())
        else:
            current = current or compile_contracts()
            metadata = current[name].metadata
            std_input = standard_input(metadata)
        verdicts.append(
            verify_contract(
                w3,
                name,
                d.address,
                metadata,
                std_input,
                tx_hash=d.tx_hash,
                constructor_args=d.constructor_args,
                solc_binary=solc_binary,
            )
        )
    return verdicts
