"""The deployment manifest: chain id, block and, for each contract, its address and ABI.

The services load it to find the contracts; ``chain deploy`` reads it to reuse a deployment.
For explorers and auditors each contract also records its deployment transaction, its ABI-encoded
constructor arguments and a directory next to the manifest (``<manifest>.contracts/<Name>/``) with
solc's metadata and the standard-JSON input that rebuilds it (chain/verify.py;
``python -m chain verify``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract

from chain.compiler import Artifact
from chain.errors import ErrorDecoder
from chain.events import EventDecoder
from chain.exceptions import ManifestError


@dataclass(frozen=True)
class Deployed:
    address: str
    abi: list[dict[str, Any]]
    source: str
    runtime_hash: str  # sha256 of the code on chain right after deployment (immutables included)
    tx_hash: str = ""  # the deployment transaction
    constructor_args: str = ""  # 0x + ABI-encoded constructor arguments (as explorers ask for them)
    metadata: str = ""  # the directory of metadata.json and input.json, relative to the manifest's


@dataclass
class Manifest:
    chain_id: int
    block: int
    deployer: str
    contracts: dict[str, Deployed] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    # What save() writes beside the manifest: the artifacts of contracts deployed in this process
    # (a loaded manifest has none; its files are on disk already).
    artifacts: dict[str, Artifact] = field(default_factory=dict, repr=False, compare=False)

    def address(self, name: str) -> str:
        try:
            return self.contracts[name].address
        except KeyError:
            raise ManifestError(f"contract {name} is not in the manifest") from None

    def contract(self, w3: Web3, name: str) -> Contract:
        d = self.contracts[name]
        return w3.eth.contract(address=d.address, abi=d.abi)  # type: ignore[call-overload]

    def error_decoder(self) -> ErrorDecoder:
        return ErrorDecoder(d.abi for d in self.contracts.values())

    def event_decoder(self, w3: Web3) -> EventDecoder:
        dec = EventDecoder(w3)
        for name, d in self.contracts.items():
            dec.add_contract(name, d.address, d.abi)
        return dec

    def to_json(self) -> str:
        body = asdict(self)
        del body["artifacts"]
        return json.dumps(body, indent=2)

    def save(self, path: Path) -> None:
        """Write the manifest and, for contracts deployed in this process, their verification
        files (``<stem>.contracts/<Name>/``, recorded relative to the manifest)."""
        from chain.verify import write_files

        path.parent.mkdir(parents=True, exist_ok=True)
        for name, artifact in self.artifacts.items():
            if name in self.contracts and artifact.metadata:
                relative = f"{path.stem}.contracts/{name}"
                write_files(path.parent / relative, artifact)
                self.contracts[name] = replace(self.contracts[name], metadata=relative)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            raw = json.loads(Path(path).read_text())
            contracts = {k: Deployed(**v) for k, v in raw.pop("contracts").items()}
            return cls(contracts=contracts, **raw)
        except FileNotFoundError:
            raise ManifestError(f"no manifest at {path}; run 'python -m chain deploy' first") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise ManifestError(f"manifest {path} is unreadable: {exc}") from None

    def is_live_on(self, w3: Web3) -> bool:
        """True when this chain is the manifest's and every contract's code is what was deployed."""
        if w3.eth.chain_id != self.chain_id:
            return False
        for d in self.contracts.values():
            code = bytes(w3.eth.get_code(d.address))  # type: ignore[arg-type]
            if not code or runtime_hash(code) != d.runtime_hash:
                return False
        return True


def runtime_hash(code: bytes) -> str:
    """Hash of code as it sits on chain (immutables are patched in at deployment)."""
    return hashlib.sha256(bytes(code)).hexdigest()
