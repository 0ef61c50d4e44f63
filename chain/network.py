"""Generate a Hyperledger Besu QBFT network with account and node permissioning.

``python -m chain network besu --validators 4 --out DIR`` writes everything such a network needs:

- ``genesis.json``: QBFT consensus, zero base fee (a permissioned network does not charge gas),
  every fork up to Cancun at genesis (the contracts are compiled for Cancun), and ``extraData``
  holding the validators, RLP-encoded as Besu's ``QbftExtraDataCodec`` does:
  ``[32-byte vanity, [validator addresses], [] (no vote), round 0, [] (no seals)]``.
- ``node-N/key`` (the node's private key, as Besu reads it) and ``node-N/key.pub``; a validator's
  address is its node key's address.
- ``static-nodes.json`` and ``permissions_config.toml`` (``nodes-allowlist``: exactly the
  validators' enodes; ``accounts-allowlist``: exactly the deployer, operator, regulator and
  gateway accounts and the institution accounts given with ``--institution``).
- ``accounts/<role>.json``: Ethereum v3 keystores of the service accounts, encrypted with the
  password in ``XCPAY_NETWORK_PASSWORD`` (or a new random one written to
  ``accounts/password.txt``, mode 0600).
- ``docker-compose.yml``: one Besu container per validator on a fixed-address bridge network,
  node 1 serving JSON-RPC on 127.0.0.1:8545. Each node keeps its chain in a named volume
  (``validatorN-data``, so ``docker compose down`` and a restart keep the chain; ``down -v`` starts
  afresh), made writable for the image's ``besu`` user by a one-shot ``volumes`` service; each
  node has a health check on Besu's ``/liveness`` (plain bash, the image has no curl), and
  restarts unless stopped.
- ``network.json``: a summary (chain id, validators, enodes, accounts) that the tests read.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlp
import yaml
from eth_account import Account
from eth_keys import keys
from eth_keys.datatypes import PrivateKey
from eth_utils import to_checksum_address

SERVICE_ROLES = ("deployer", "operator", "regulator", "gateway")
SUBNET = "172.16.239"
P2P_PORT = 30303
RPC_PORT = 8545
BESU_IMAGE = "hyperledger/besu:24.12.2"
DATA_PATH = "/opt/besu/data"
# GET /liveness on the node's own RPC port answers 200 while Besu runs (bash's /dev/tcp: no curl).
LIVENESS = (
    f"exec 3<>/dev/tcp/127.0.0.1/{RPC_PORT} && "
    "printf 'GET /liveness HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && "
    "head -n1 <&3 | grep -q ' 200'"
)


@dataclass(frozen=True)
class Node:
    index: int
    private_key: PrivateKey

    @property
    def address(self) -> str:
        return self.private_key.public_key.to_checksum_address()

    @property
    def ip(self) -> str:
        return f"{SUBNET}.{10 + self.index}"

    @property
    def enode(self) -> str:
        return f"enode://{self.private_key.public_key.to_hex()[2:]}@{self.ip}:{P2P_PORT}"


def qbft_extra_data(validators: list[str]) -> str:
    """The genesis ``extraData`` for QBFT with these validators (Besu's encoding)."""
    addresses = [bytes.fromhex(v[2:]) for v in validators]
    return "0x" + rlp.encode([b"\x00" * 32, addresses, [], 0, []]).hex()


def decode_qbft_extra_data(extra: str) -> dict[str, Any]:
    """Inverse of :func:`qbft_extra_data`, for checks and for reading a network's genesis."""
    vanity, validators, vote, round_, seals = rlp.decode(bytes.fromhex(extra.removeprefix("0x")))
    return {
        "vanity": vanity,
        "validators": [to_checksum_address(v) for v in validators],
        "vote": vote,
        "round": int.from_bytes(round_, "big"),
        "seals": seals,
    }


def genesis(chain_id: int, validators: list[str], block_period_s: int) -> dict[str, Any]:
    forks = [
        "homesteadBlock", "eip150Block", "eip155Block", "eip158Block", "byzantiumBlock",
        "constantinopleBlock", "petersburgBlock", "istanbulBlock", "muirGlacierBlock", "berlinBlock",
        "londonBlock",
    ]  # fmt: skip
    config: dict[str, Any] = {"chainId": chain_id, **dict.fromkeys(forks, 0)}
    config.update(
        shanghaiTime=0,
        cancunTime=0,
        zeroBaseFee=True,
        qbft={"blockperiodseconds": block_period_s, "epochlength": 30000, "requesttimeoutseconds": 4},
    )
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": "0x0",
        "gasLimit": "0x1fffffffffffff",
        "difficulty": "0x1",
        "mixHash": "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365",
        "coinbase": "0x0000000000000000000000000000000000000000",
        "alloc": {},
        "extraData": qbft_extra_data(validators),
    }


def compose(nodes: list[Node]) -> dict[str, Any]:
    services: dict[str, Any] = {}
    for node in nodes:
        name = f"validator{node.index}"
        cmd = [
            f"--data-path={DATA_PATH}",
            "--genesis-file=/config/genesis.json",
            "--node-private-key-file=/config/node/key",
            "--min-gas-price=0",
            f"--p2p-host={node.ip}",
            f"--p2p-port={P2P_PORT}",
            "--static-nodes-file=/config/static-nodes.json",
            "--permissions-nodes-config-file-enabled",
            "--permissions-accounts-config-file-enabled",
            "--permissions-nodes-config-file=/config/permissions_config.toml",
            "--permissions-accounts-config-file=/config/permissions_config.toml",
            "--rpc-http-enabled",
            "--rpc-http-host=0.0.0.0",
            "--rpc-http-api=ETH,NET,WEB3,QBFT,TXPOOL,PERM",
            "--host-allowlist=*",
            "--sync-min-peers=0",
        ]
        service: dict[str, Any] = {
            "image": BESU_IMAGE,
            "command": cmd,
            "volumes": [
                "./genesis.json:/config/genesis.json:ro",
                "./static-nodes.json:/config/static-nodes.json:ro",
                "./permissions_config.toml:/config/permissions_config.toml",
                f"./node-{node.index}:/config/node:ro",
                f"{name}-data:{DATA_PATH}",
            ],
            "networks": {"xcpay": {"ipv4_address": node.ip}},
            "depends_on": {"volumes": {"condition": "service_completed_successfully"}},
            "healthcheck": {
                "test": ["CMD", "bash", "-c", LIVENESS],
                "interval": "10s",
                "timeout": "5s",
                "retries": 6,
                "start_period": "60s",
            },
            "restart": "unless-stopped",
        }
        if node.index == 1:
            service["ports"] = [f"127.0.0.1:{RPC_PORT}:{RPC_PORT}"]
        services[name] = service
    volumes: dict[str, dict[str, Any]] = {f"validator{n.index}-data": {} for n in nodes}
    # A new named volume is owned by root; the image runs Besu as its `besu` user.
    init = {
        "image": BESU_IMAGE,
        "user": "0:0",
        "entrypoint": ["chown", "-R", "besu:besu", *(f"/volumes/{v}" for v in volumes)],
        "volumes": [f"{v}:/volumes/{v}" for v in volumes],
        "restart": "no",
    }
    return {
        "services": {"volumes": init, **services},
        "volumes": volumes,
        "networks": {"xcpay": {"driver": "bridge", "ipam": {"config": [{"subnet": f"{SUBNET}.0/24"}]}}},
    }


def permissions_toml(accounts: list[str], enodes: list[str]) -> str:
    def array(values: list[str]) -> str:
        return "[" + ", ".join(json.dumps(v) for v in values) + "]"

    return f"accounts-allowlist={array(accounts)}\nnodes-allowlist={array(enodes)}\n"


def parse_permissions_toml(text: str) -> dict[str, list[str]]:
    import tomllib

    return tomllib.loads(text)


def generate_besu(
    out: Path,
    validators: int = 4,
    chain_id: int = 20_231_201,
    institutions: tuple[str, ...] = (),
    block_period_s: int = 2,
    password: str | None = None,
    keystore_scrypt_n: int = 2**18,
) -> dict[str, Any]:
    """Write the network files under ``out`` and return the summary (also in network.json)."""
    if validators < 1:
        raise ValueError("a QBFT network needs at least one validator (4 tolerate one faulty node)")
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; refusing to overwrite a network's keys")

    nodes = [Node(i, keys.PrivateKey(secrets.token_bytes(32))) for i in range(1, validators + 1)]
    nodes.sort(key=lambda n: n.address.lower())  # QBFT orders validators by address
    nodes = [Node(i, n.private_key) for i, n in enumerate(nodes, start=1)]
    for node in nodes:
        d = out / f"node-{node.index}"
        d.mkdir()
        (d / "key").write_text(node.private_key.to_hex()[2:])
        (d / "key").chmod(0o600)
        (d / "key.pub").write_text(node.private_key.public_key.to_hex())
        (d / "address").write_text(node.address)

    if password is None:
        password = os.environ.get("XCPAY_NETWORK_PASSWORD")
    accounts_dir = out / "accounts"
    accounts_dir.mkdir()
    if not password:
        password = secrets.token_urlsafe(24)
        pw = accounts_dir / "password.txt"
        pw.write_text(password)
        pw.chmod(0o600)
    roles: dict[str, str] = {}
    for role in SERVICE_ROLES:
        account = Account.create()
        keystore = Account.encrypt(account.key, password, kdf="scrypt", iterations=keystore_scrypt_n)
        path = accounts_dir / f"{role}.json"
        path.write_text(json.dumps(keystore))
        path.chmod(0o600)
        roles[role] = account.address

    validator_addresses = [n.address for n in nodes]
    enodes = [n.enode for n in nodes]
    allowed = [*roles.values(), *(to_checksum_address(a) for a in institutions)]
    (out / "genesis.json").write_text(
        json.dumps(genesis(chain_id, validator_addresses, block_period_s), indent=2)
    )
    (out / "static-nodes.json").write_text(json.dumps(enodes, indent=2))
    (out / "permissions_config.toml").write_text(permissions_toml(allowed, enodes))
    (out / "docker-compose.yml").write_text(yaml.safe_dump(compose(nodes), sort_keys=False))
    summary = {
        "chain_id": chain_id,
        "consensus": "qbft",
        "block_period_s": block_period_s,
        "validators": validator_addresses,
        "enodes": enodes,
        "accounts": roles,
        "institutions": [to_checksum_address(a) for a in institutions],
        "rpc": "http://127.0.0.1:8545",
    }
    (out / "network.json").write_text(json.dumps(summary, indent=2))
    return summary
