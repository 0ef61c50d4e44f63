"""Deploy every contract family present and write the manifest.

Families are deployed in the order of the registry (:data:`chain.families.FAMILIES`), each by its
steps (deploy, register as a wallet, grant a role), which record the contracts in the manifest. A
new family is a descriptor in the registry, not code here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_typing import ABIConstructor
from eth_utils.abi import get_abi_input_types
from web3 import Web3

from chain.accounts import GATEWAY_DEV_ACCOUNT, SECOND_REGULATOR_DEV_ACCOUNT, dev_account
from chain.compiler import CompileResult, compile_contracts
from chain.errors import ErrorDecoder
from chain.exceptions import ChainError, ManifestError
from chain.families import FAMILIES, Deploy, Family, Grant, Link, RegisterWallet, Role, Step
from chain.manifest import Deployed, Manifest, runtime_hash
from chain.sender import Transactor


@dataclass(frozen=True)
class Roles:
    """Who holds which role. The deployer is the admin of every contract."""

    deployer: LocalAccount
    operator: str  # registers wallets, issues and redeems cash
    regulator: str  # freezes wallets, pauses the system
    # The hard-wallet gateway's own key (registers cards, reports them lost): a key of its own, so
    # the operator service and the gateway never wait for or fight over one nonce.
    gateway: str
    # The second regulator key (issue 22): court orders are maker-checker, a regulator proposes
    # and a *different* regulator key approves, so the deployment grants REGULATOR_ROLE to both.
    second_regulator: str = ""

    @classmethod
    def local(cls) -> Roles:
        """Development accounts 0 (deployer/admin), 1 (operator), 2 (regulator), 10 (gateway),
        11 (the second regulator key)."""
        return cls(
            dev_account(0),
            dev_account(1).address,
            dev_account(2).address,
            dev_account(GATEWAY_DEV_ACCOUNT).address,
            dev_account(SECOND_REGULATOR_DEV_ACCOUNT).address,
        )


class Deployment:
    """The state a family step works with: the transactor, the artifacts, the manifest so far."""

    def __init__(self, w3: Web3, roles: Roles, compiled: CompileResult) -> None:
        self.w3 = w3
        self.roles = roles
        self.compiled = compiled
        self.tx = Transactor(w3, ErrorDecoder(a.abi for a in compiled.artifacts.values()))
        # `block` is the first block of the deployment: event indexers start there.
        self.manifest = Manifest(
            chain_id=w3.eth.chain_id, block=w3.eth.block_number + 1, deployer=roles.deployer.address
        )

    def deploy(self, name: str, *args: Any) -> Any:
        art = self.compiled[name]
        result = self.tx.deploy(self.roles.deployer, art.abi, art.bytecode, *args)
        address = result.receipt["contractAddress"]
        if address is None:  # a creation transaction's receipt always names the new contract
            raise RuntimeError(f"deploying {name}: the receipt names no contract address")
        code = bytes(self.w3.eth.get_code(address))
        self.manifest.contracts[name] = Deployed(
            address,
            art.abi,
            art.source,
            runtime_hash(code),
            tx_hash=result.tx_hash,
            constructor_args=constructor_args(art.abi, args),
        )
        self.manifest.artifacts[name] = art
        return self.w3.eth.contract(address=address, abi=art.abi)

    def grant(self, contract: Any, role_name: str, account: str) -> None:
        role = contract.functions[role_name]().call()
        self.tx.transact(self.roles.deployer, contract.functions.grantRole(role, account))


def constructor_args(abi: list[dict[str, Any]], args: tuple[Any, ...]) -> str:
    """0x + the ABI encoding of ``args`` for the constructor in ``abi`` (what follows the creation
    code in the deployment transaction, and what explorers ask for)."""
    ctor = next((e for e in abi if e["type"] == "constructor"), None)
    if ctor is None:
        return "0x"
    # The artifact's ABI is JSON; the entry picked above is a constructor's by its "type".
    return "0x" + encode(get_abi_input_types(cast(ABIConstructor, ctor)), list(args)).hex()


def register_contract_wallet(d: Deployment, contract: Any, label: str, *, cap_exempt: bool = True) -> None:
    """Register a family contract as an institution wallet, cap-exempt when it holds funds.

    Every contract that pulls with ``transferFrom`` must be a registered wallet: the token admits
    only registered, unfrozen spenders. The deployer (registry admin) takes the registrar role for
    the call and gives it up again, so the role history in the events shows exactly what happened.
    """
    registry = d.manifest.contract(d.w3, "WalletRegistry")
    admin = d.roles.deployer
    registrar = registry.functions.REGISTRAR_ROLE().call()
    exempt = registry.functions.CAP_EXEMPT_ROLE().call()
    identity = Web3.keccak(text=f"xcpay contract {label}")
    d.tx.transact(admin, registry.functions.grantRole(registrar, admin.address))
    d.tx.transact(
        admin, registry.functions.register(contract.address, 3, 1, 0, identity)
    )  # institution, tier 1
    d.tx.transact(admin, registry.functions.renounceRole(registrar, admin.address))
    if cap_exempt:
        d.tx.transact(admin, registry.functions.grantRole(exempt, contract.address))


def _address(d: Deployment, arg: Role | str) -> str:
    """A constructor argument of a deploy step: a role's address, or a contract deployed earlier."""
    if isinstance(arg, Role):
        return d.roles.deployer.address if arg.name == "deployer" else str(getattr(d.roles, arg.name))
    return d.manifest.address(arg)


def _contract(d: Deployment, name: str) -> Any:
    return d.manifest.contract(d.w3, name)


def run_step(d: Deployment, step: Step) -> None:
    """One deploy step of a family (chain/families.py), as the registry states it."""
    match step:
        case Deploy(contract, args):
            d.deploy(contract, *(_address(d, a) for a in args))
        case RegisterWallet(contract, cap_exempt):
            register_contract_wallet(d, _contract(d, contract), contract, cap_exempt=cap_exempt)
        case Grant(contract, role, to):
            d.grant(_contract(d, contract), role, _address(d, to))
        case Link(contract, function, args):
            fn = getattr(_contract(d, contract).functions, function)
            d.tx.transact(d.roles.deployer, fn(*(_address(d, a) for a in args)))


def deploy_family(d: Deployment, family: Family) -> None:
    """Deploy one family: its steps, in the registry's order (which fixes every address)."""
    for step in family.deploy:
        run_step(d, step)


def deploy_all(w3: Web3, roles: Roles | None = None, compiled: CompileResult | None = None) -> Manifest:
    """Deploy every family to ``w3`` and return the manifest (not saved)."""
    roles = roles or Roles.local()
    d = Deployment(w3, roles, compiled or compile_contracts())
    for family in FAMILIES:
        deploy_family(d, family)
    d.manifest.roles = {
        "admin": roles.deployer.address,
        "operator": roles.operator,
        "regulator": roles.regulator,
        "gateway": roles.gateway,
        "second_regulator": roles.second_regulator,
    }
    return d.manifest


def deploy_or_reuse(
    w3: Web3, out: Path, *, fresh: bool = False, roles: Roles | None = None
) -> tuple[Manifest, bool]:
    """Reuse the manifest at ``out`` when it describes live contracts on this chain; else deploy.

    Returns the manifest and whether it was reused.
    """
    expected = {c for f in FAMILIES for c in f.contracts}
    if not fresh and out.exists():
        try:
            existing = Manifest.load(out)
        except ManifestError:
            existing = None
        if existing is not None and existing.is_live_on(w3) and set(existing.contracts) >= expected:
            compiled = compile_contracts()
            changed = stale_contracts(existing, compiled)
            if changed:
                # Deploying again beside the live contracts would strand their balances, and
                # reusing them would fail later on a function the old code lacks (red team 8).
                raise ChainError(
                    f"the contracts of {out} were deployed from older sources ({', '.join(changed)} "
                    "changed since): start afresh with `make reset` (the old chain moves to "
                    "var/previous/), or check out the sources they were deployed from"
                )
            return existing, True
    manifest = deploy_all(w3, roles)
    manifest.save(out)
    return manifest, False


def stale_contracts(manifest: Manifest, compiled: CompileResult) -> list[str]:
    """The contracts of ``manifest`` whose interface differs from the sources compiled now (a
    function, event or error added, removed or changed): code that no longer matches this
    checkout's clients."""
    return sorted(
        name
        for name, d in manifest.contracts.items()
        if name in compiled.artifacts and d.abi != compiled.artifacts[name].abi
    )
