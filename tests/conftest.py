"""Shared fixtures: one in-process chain per session, deployed once, reverted to a snapshot per test.

`make test` runs the suite on every core (pytest-xdist, ``--dist loadfile``: a module's tests stay
in one worker, so module-scoped stacks are built once). That is safe because nothing is shared
between workers but the compiled contracts: each worker has its own in-process chains, every
process (anvil, the services) listens on a free port, every PostgreSQL database is created fresh
under a random name (tests/databases.py), and files go to pytest's per-worker temporary
directories. The contracts are compiled once, by the controller, before the workers start.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain import devtools
from chain.accounts import dev_account
from chain.backends import in_process
from chain.clients.disburse import DisbursementClient
from chain.clients.prepaid import PrepaidClient
from chain.clients.token import CashClient, Kind
from chain.compiler import CompileResult, compile_contracts
from chain.deploy import deploy_all
from chain.manifest import Manifest

# wallets/keystore.py's documented low-cost test profile: keystores written with scrypt n >= 2**10
# (2**17 otherwise), so that the suites stay fast. Never set outside the tests.
os.environ.setdefault("XCPAY_KEYSTORE_COST", "test")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, compile in the controller first: the workers then all load the cached
    artifacts (chain/compiler.py) instead of each compiling and writing the same cache file."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        compile_contracts()


# Modules made of a few long tests (state machines, real processes, the schema fuzz) run first, so
# that under pytest-xdist no worker is left finishing one alone while the other is idle (`make test`
# passes --no-loadscope-reorder, which would otherwise schedule the modules with most tests first).
LONG_FIRST = ("tests/properties/", "tests/e2e/", "tests/fuzz/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Stable: moves the LONG_FIRST directories ahead, in that order, the rest as collected."""

    def rank(item: pytest.Item) -> int:
        return next((i for i, d in enumerate(LONG_FIRST) if item.nodeid.startswith(d)), len(LONG_FIRST))

    items.sort(key=rank)


@dataclass(frozen=True)
class Actors:
    """Named by role, as the tests read. All are funded development accounts (they pay gas)."""

    admin: LocalAccount
    operator: LocalAccount
    regulator: LocalAccount
    alice: LocalAccount
    bob: LocalAccount
    carol: LocalAccount
    gym: LocalAccount
    outsider: LocalAccount


def identity(name: str) -> bytes:
    return hashlib.sha256(f"id:{name}".encode()).digest()


@pytest.fixture(scope="session")
def compiled() -> CompileResult:
    return compile_contracts()


@pytest.fixture(scope="session")
def actors() -> Actors:
    return Actors(*(dev_account(i) for i in range(8)))


@pytest.fixture(scope="session")
def _session_chain(compiled: CompileResult) -> tuple[Web3, Manifest]:
    w3 = in_process()
    return w3, deploy_all(w3, compiled=compiled)


@pytest.fixture(scope="session")
def w3(_session_chain: tuple[Web3, Manifest]) -> Web3:
    return _session_chain[0]


@pytest.fixture(scope="session")
def manifest(_session_chain: tuple[Web3, Manifest]) -> Manifest:
    return _session_chain[1]


@pytest.fixture(scope="session")
def cash(w3: Web3, manifest: Manifest) -> CashClient:
    return CashClient(w3, manifest)


@pytest.fixture(autouse=False)
def fresh(w3: Web3, cash: CashClient) -> Iterator[None]:
    """Revert the session chain to where it was before the test."""
    snap = devtools.snapshot(w3)
    yield
    devtools.revert(w3, snap)
    cash.tx.nonces.reset()


@pytest.fixture
def registered(fresh: None, cash: CashClient, actors: Actors) -> Actors:
    """alice (tier 3), bob (tier 4), carol (tier 2) personal; gym a merchant (tier 2, MCC 7997)."""
    op = actors.operator
    cash.register(op, actors.alice.address, Kind.PERSONAL, 3, 0, identity("alice"))
    cash.register(op, actors.bob.address, Kind.PERSONAL, 4, 0, identity("bob"))
    cash.register(op, actors.carol.address, Kind.PERSONAL, 2, 0, identity("carol"))
    cash.register(op, actors.gym.address, Kind.MERCHANT, 2, 7997, identity("gym"))
    return actors


# Hypothesis profiles for the per-family state machines (tests/properties; the all-families one has
# its own, XCPAY_FUZZ). `fast` (`make test`): derandomized, the same few short sequences every run;
# a machine may set its own sizes for it (tests.helpers.fast_profile_sizes: fewer where fewer still
# reach every rule, more where the default does not). XCPAY_RULE_REACH (tests/properties/conftest.py)
# counts the rules reached. `audit` (`make audit`: HYPOTHESIS_PROFILE=audit): random sequences,
# many more and longer, where the depth is.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "fast",
    max_examples=6,
    stateful_step_count=20,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "audit",
    max_examples=40,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(__import__("os").environ.get("HYPOTHESIS_PROFILE", "fast"))


@pytest.fixture(scope="session")
def prepaid(w3: Web3, manifest: Manifest, cash: CashClient) -> PrepaidClient:
    return PrepaidClient(w3, manifest, cash.tx)


@pytest.fixture(scope="session")
def disburse(w3: Web3, manifest: Manifest, cash: CashClient) -> DisbursementClient:
    return DisbursementClient(w3, manifest, cash.tx)


from chain.clients.collective import CollectiveClient  # noqa: E402


@pytest.fixture(scope="session")
def collective(w3: Web3, manifest: Manifest, cash: CashClient) -> CollectiveClient:
    return CollectiveClient(w3, manifest, cash.tx)


from chain.clients.vouchers import VoucherClient  # noqa: E402


@pytest.fixture(scope="session")
def vouchers(w3: Web3, manifest: Manifest, cash: CashClient) -> VoucherClient:
    return VoucherClient(w3, manifest, cash.tx)


from chain.clients.hardwallet import HardWalletClient, QuickPayClient  # noqa: E402


@pytest.fixture(scope="session")
def hardwallet(w3: Web3, manifest: Manifest, cash: CashClient) -> HardWalletClient:
    return HardWalletClient(w3, manifest, cash.tx)


@pytest.fixture(scope="session")
def quickpay(w3: Web3, manifest: Manifest, cash: CashClient) -> QuickPayClient:
    return QuickPayClient(w3, manifest, cash.tx)


from chain.clients.devices import DeviceClient  # noqa: E402


@pytest.fixture(scope="session")
def devices(w3: Web3, manifest: Manifest, cash: CashClient) -> DeviceClient:
    return DeviceClient(w3, manifest, cash.tx)
