"""The chain layer on both backends: in-process eth-tester (the contract tests' chain) and a real
anvil process (the node of `make run`). Same calls, same decoded errors, same events."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from web3 import Web3

from chain import devtools
from chain.accounts import dev_account
from chain.backends import http, in_process
from chain.clients.token import CashClient, Kind
from chain.compiler import CompileResult
from chain.deploy import FAMILIES, deploy_all
from chain.exceptions import ContractError, NodeUnavailable
from chain.manifest import Manifest
from chain.paths import PROJECT_ROOT
from tests.conftest import identity
from tests.helpers import assert_reverts
from tests.processes import anvil_node

BACKENDS = ["in-process", "anvil"]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str | None]]:
    if request.param == "in-process":
        yield request.param, None
    else:
        with anvil_node() as url:
            yield request.param, url


@pytest.fixture(scope="module")
def chain(backend: tuple[str, str | None], compiled: CompileResult) -> tuple[Web3, CashClient]:
    _, url = backend
    w3 = in_process() if url is None else http(url)
    manifest = deploy_all(w3, compiled=compiled)
    cash = CashClient(w3, manifest)
    op = dev_account(1)
    for i, name in ((3, "alice"), (4, "bob")):
        cash.register(op, dev_account(i).address, Kind.PERSONAL, 3, 0, identity(name))
    return w3, cash


def test_mints_and_transfers_with_decoded_events(chain: tuple[Web3, CashClient]) -> None:
    _, cash = chain
    alice, bob = dev_account(3), dev_account(4)
    before = cash.balance_of(bob.address)
    cash.mint(dev_account(1), alice.address, 1_000)
    result = cash.transfer(alice, bob.address, 250)
    (event,) = result.named("Transfer")
    assert event.contract == "DigitalCash"
    assert event.args == {"from": alice.address, "to": bob.address, "value": 250}
    assert event.block_number == result.block_number
    assert cash.balance_of(bob.address) == before + 250


def test_estimation_revert_is_a_named_custom_error(chain: tuple[Web3, CashClient]) -> None:
    _, cash = chain
    stranger = dev_account(9).address
    assert_reverts(lambda: cash.mint(dev_account(1), stranger, 1), "WalletNotRegistered", stranger)


def test_mined_revert_is_decoded_from_the_receipt(chain: tuple[Web3, CashClient]) -> None:
    _, cash = chain
    stranger = dev_account(9).address
    fn = cash.cash.functions.mint(stranger, 1)
    err = assert_reverts(
        lambda: cash.tx.transact(dev_account(1), fn, gas=150_000), "WalletNotRegistered", stranger
    )
    assert err.tx_hash is not None  # it was mined, with status 0


def test_time_travel_resets_the_daily_cap(chain: tuple[Web3, CashClient]) -> None:
    w3, cash = chain
    alice, bob = dev_account(3), dev_account(4)
    cash.mint(dev_account(1), alice.address, 600_00)
    cash.transfer(alice, bob.address, 500_00)
    assert cash.spent_today(alice.address) >= 500_00
    devtools.increase_time(w3, 86_400)
    assert cash.spent_today(alice.address) == 0


def test_concurrent_senders_share_one_nonce_manager(chain: tuple[Web3, CashClient]) -> None:
    _, cash = chain
    op, alice = dev_account(1), dev_account(3)
    before = cash.balance_of(alice.address)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: cash.mint(op, alice.address, 1), range(24)))
    assert len({r.tx_hash for r in results}) == 24
    assert cash.balance_of(alice.address) == before + 24


def test_unreachable_node_raises_node_unavailable() -> None:
    from tests.processes import free_port

    w3 = http(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    manifest = Manifest(chain_id=1, block=0, deployer=dev_account(0).address)
    from chain.sender import Transactor

    with pytest.raises(NodeUnavailable):
        _ = Transactor(w3, manifest.error_decoder()).chain_id


@pytest.mark.slow
def test_deploy_cli_reuses_a_live_manifest_and_redeploys_with_fresh(tmp_path: Path) -> None:
    with anvil_node() as url:
        out = tmp_path / "manifest.json"
        cmd = [sys.executable, "-m", "chain", "deploy", "--rpc", url, "--out", str(out)]
        first = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
        assert "deployed" in first.stdout
        manifest = json.loads(out.read_text())
        assert set(manifest["contracts"]) == {c for family in FAMILIES for c in family.contracts}
        assert all(c["address"] and c["abi"] for c in manifest["contracts"].values())
        assert manifest["chain_id"] == http(url).eth.chain_id and manifest["block"] > 0

        second = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
        assert "reused" in second.stdout
        assert json.loads(out.read_text())["contracts"] == manifest["contracts"]

        # Contracts deployed from older sources (red team 8: a `git pull` changed Disbursement,
        # a restart reused the old code and payroll failed later): refused, naming the contract
        # and the way out; the manifest is left as it was.
        older = json.loads(out.read_text())
        older["contracts"]["Disbursement"]["abi"] = [
            e for e in older["contracts"]["Disbursement"]["abi"] if e.get("name") != "addChunks"
        ]
        out.write_text(json.dumps(older))
        stale = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True)
        assert stale.returncode == 1, stale.stdout
        assert "Disbursement" in stale.stderr and "make reset" in stale.stderr, stale.stderr
        assert json.loads(out.read_text()) == older

        third = subprocess.run(
            [*cmd, "--fresh"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        )
        assert "deployed" in third.stdout
        fresh = Manifest.load(out)
        assert fresh.address("DigitalCash") != manifest["contracts"]["DigitalCash"]["address"]


@pytest.mark.slow
def test_manifest_of_a_vanished_chain_is_not_reused(tmp_path: Path) -> None:
    out = tmp_path / "manifest.json"
    with anvil_node() as url:
        subprocess.run(
            [sys.executable, "-m", "chain", "deploy", "--rpc", url, "--out", str(out)],
            check=True,
            cwd=PROJECT_ROOT,
            capture_output=True,
        )
    with anvil_node() as url:  # a new chain: same chain id, no code at the old addresses...
        w3 = http(url)
        old = Manifest.load(out)
        # ...until something else is deployed there, which is still not our code:
        assert not old.is_live_on(w3)


def test_deploy_cli_reports_an_unreachable_node(tmp_path: Path) -> None:
    from tests.processes import free_port

    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "chain", "deploy", "--rpc", url, "--out", str(tmp_path / "m.json")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "no JSON-RPC node answers" in done.stderr


def test_custom_error_is_exposed_by_name_and_arguments(chain: tuple[Web3, CashClient]) -> None:
    _, cash = chain
    with pytest.raises(ContractError) as info:
        cash.mint(dev_account(1), dev_account(9).address, 1)
    assert info.value.signature == f"WalletNotRegistered(wallet={dev_account(9).address})"
    assert info.value.args_dict == {"wallet": dev_account(9).address}


def test_transactions_are_found_by_the_hash_index_as_the_scan_finds_them() -> None:
    """chain/backends.py looks transactions up by py-evm's hash index instead of eth-tester's scan
    of every block: the same (block, transaction, index) for every transaction, the scan's answer
    after a snapshot revert and a different transaction in the same place, and not found for an
    unknown hash (as before), without scanning for those found."""
    from eth_tester.backends.pyevm import main as pyevm_main
    from eth_tester.exceptions import TransactionNotFound
    from web3.exceptions import TransactionNotFound as Web3TransactionNotFound

    from chain import backends
    from chain.backends import new_tester

    assert pyevm_main._get_transaction_by_hash is backends._indexed_transaction_by_hash
    tester = new_tester()
    w3 = in_process(tester)
    sender, to = dev_account(3).address, dev_account(4).address
    hashes = [w3.eth.send_transaction({"from": sender, "to": to, "value": v}) for v in range(1, 6)]
    chain = tester.backend.chain
    scans = 0
    scan = backends._scan_transaction_by_hash

    def counted(c: object, h: bytes) -> object:
        nonlocal scans
        scans += 1
        return scan(c, h)

    backends._scan_transaction_by_hash = counted  # type: ignore[assignment]
    try:
        for h in hashes:
            block, tx, index = backends._indexed_transaction_by_hash(chain, bytes(h))
            expected = scan(chain, bytes(h))
            assert (block.hash, tx.hash, index) == (expected[0].hash, expected[1].hash, expected[2])
        assert scans == 0
        assert w3.eth.get_transaction_receipt(hashes[2])["transactionHash"] == hashes[2]

        snapshot = tester.take_snapshot()
        later = w3.eth.send_transaction({"from": sender, "to": to, "value": 100})
        tester.revert_to_snapshot(snapshot)
        other = w3.eth.send_transaction({"from": sender, "to": to, "value": 200})  # same block and place
        assert w3.eth.get_transaction_receipt(other)["transactionHash"] == other
        with pytest.raises(Web3TransactionNotFound):
            w3.eth.get_transaction_receipt(later)  # reverted away: found by neither way
        with pytest.raises(TransactionNotFound):
            backends._indexed_transaction_by_hash(chain, b"\x01" * 32)
    finally:
        backends._scan_transaction_by_hash = scan
