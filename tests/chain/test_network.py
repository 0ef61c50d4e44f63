"""The Besu QBFT network generator: what can be checked without running Besu here."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from eth_account import Account
from eth_keys import keys

from chain.network import decode_qbft_extra_data, generate_besu, qbft_extra_data
from chain.paths import PROJECT_ROOT

INSTITUTION = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("besu") / "net"
    summary = generate_besu(
        out, validators=4, institutions=(INSTITUTION,), password="pw", keystore_scrypt_n=2**10
    )
    return out, summary


def test_extra_data_matches_besus_encoding_byte_for_byte() -> None:
    # RLP by hand: [a0 + 32 zero bytes, [94 + address], c0 (no vote), 80 (round 0), c0 (no seals)]
    one = "0x" + "00" * 19 + "01"
    expected = "0xf83a" + "a0" + "00" * 32 + "d5" + "94" + "00" * 19 + "01" + "c0" + "80" + "c0"
    assert qbft_extra_data([one]) == expected


def test_extra_data_decodes_to_the_validators(network: tuple[Path, dict]) -> None:
    out, summary = network
    genesis = json.loads((out / "genesis.json").read_text())
    decoded = decode_qbft_extra_data(genesis["extraData"])
    assert decoded["validators"] == summary["validators"] and len(decoded["validators"]) == 4
    assert decoded["vanity"] == b"\0" * 32
    assert (decoded["vote"], decoded["round"], decoded["seals"]) == ([], 0, [])


def test_genesis_is_qbft_with_free_gas_and_cancun(network: tuple[Path, dict]) -> None:
    out, summary = network
    config = json.loads((out / "genesis.json").read_text())["config"]
    assert config["chainId"] == summary["chain_id"]
    assert config["qbft"]["blockperiodseconds"] == 2
    assert config["zeroBaseFee"] is True
    assert config["londonBlock"] == 0 and config["shanghaiTime"] == 0 and config["cancunTime"] == 0


def test_node_keys_match_validator_addresses_and_enodes(network: tuple[Path, dict]) -> None:
    out, summary = network
    for i, address in enumerate(summary["validators"], start=1):
        key = keys.PrivateKey(bytes.fromhex((out / f"node-{i}" / "key").read_text()))
        assert key.public_key.to_checksum_address() == address
        assert (out / f"node-{i}" / "address").read_text() == address
        assert summary["enodes"][i - 1].startswith(f"enode://{key.public_key.to_hex()[2:]}@")
        assert (out / f"node-{i}" / "key").stat().st_mode & 0o077 == 0  # not readable by others


def test_allowlists_admit_exactly_the_expected_accounts_and_nodes(network: tuple[Path, dict]) -> None:
    out, summary = network
    perms = tomllib.loads((out / "permissions_config.toml").read_text())
    expected_accounts = {*summary["accounts"].values(), INSTITUTION}
    assert set(perms["accounts-allowlist"]) == expected_accounts
    assert len(perms["accounts-allowlist"]) == len(expected_accounts) == 5
    assert set(summary["accounts"]) == {"deployer", "operator", "regulator", "gateway"}
    assert perms["nodes-allowlist"] == summary["enodes"]
    assert json.loads((out / "static-nodes.json").read_text()) == summary["enodes"]


def test_account_keystores_open_to_the_allowlisted_addresses(network: tuple[Path, dict]) -> None:
    out, summary = network
    for role, address in summary["accounts"].items():
        keystore = json.loads((out / "accounts" / f"{role}.json").read_text())
        assert Account.from_key(Account.decrypt(keystore, "pw")).address == address
        with pytest.raises(ValueError):
            Account.decrypt(keystore, "wrong")


def test_compose_runs_one_validator_per_node_with_rpc_on_the_first(network: tuple[Path, dict]) -> None:
    out, _ = network
    compose = yaml.safe_load((out / "docker-compose.yml").read_text())
    services = {k: v for k, v in compose["services"].items() if k != "volumes"}
    assert list(services) == ["validator1", "validator2", "validator3", "validator4"]
    ips = {s["networks"]["xcpay"]["ipv4_address"] for s in services.values()}
    assert len(ips) == 4
    assert services["validator1"]["ports"] == ["127.0.0.1:8545:8545"]
    assert all("ports" not in s for name, s in services.items() if name != "validator1")
    for s in services.values():
        assert "--permissions-accounts-config-file-enabled" in s["command"]
        assert "--permissions-nodes-config-file-enabled" in s["command"]


def test_compose_keeps_each_chain_in_a_volume_and_checks_health(network: tuple[Path, dict]) -> None:
    out, _ = network
    compose = yaml.safe_load((out / "docker-compose.yml").read_text())
    services = compose["services"]
    names = [f"validator{i}" for i in range(1, 5)]
    assert set(compose["volumes"]) == {f"{n}-data" for n in names}
    init = services["volumes"]  # a new named volume is root's; Besu runs as `besu`
    assert init["user"] == "0:0" and init["entrypoint"][:3] == ["chown", "-R", "besu:besu"]
    assert set(init["entrypoint"][3:]) == {f"/volumes/{n}-data" for n in names}
    for name in names:
        s = services[name]
        data = [v for v in s["volumes"] if v.startswith(f"{name}-data:")]
        assert data == [f"{name}-data:/opt/besu/data"]
        assert "--data-path=/opt/besu/data" in s["command"]
        assert s["depends_on"] == {"volumes": {"condition": "service_completed_successfully"}}
        test = s["healthcheck"]["test"]
        assert test[:3] == ["CMD", "bash", "-c"] and "/liveness" in test[3] and "/8545" in test[3]


def test_refuses_to_overwrite_an_existing_network(network: tuple[Path, dict]) -> None:
    out, _ = network
    with pytest.raises(FileExistsError):
        generate_besu(out, validators=4, password="pw", keystore_scrypt_n=2**10)


def test_cli_generates_a_network_and_reports_bad_arguments(tmp_path: Path) -> None:
    env_cmd = [sys.executable, "-m", "chain", "network", "besu"]
    ok = subprocess.run(
        [*env_cmd, "--validators", "4", "--out", str(tmp_path / "n")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={"XCPAY_NETWORK_PASSWORD": "pw", "PATH": "/usr/bin"},
    )
    assert ok.returncode == 0, ok.stderr
    assert "validator 4" in ok.stdout and (tmp_path / "n" / "genesis.json").exists()
    assert not (tmp_path / "n" / "accounts" / "password.txt").exists()  # the given password is not written
    bad = subprocess.run(
        [*env_cmd, "--validators", "0", "--out", str(tmp_path / "m")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "at least one validator" in bad.stderr
