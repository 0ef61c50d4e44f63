"""Command line of the chain layer.

python -m chain compile                      compile (or reuse the cached artifacts)
python -m chain abi [--out DIR]              write <Name>.abi.json per contract (default build/abi)
python -m chain deploy --rpc URL --out PATH [--fresh]
python -m chain verify --rpc URL [--manifest PATH] [NAME ...]   runtime code vs a fresh compile
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from chain.paths import BUILD_DIR, VAR_DIR

DEFAULT_RPC = "http://127.0.0.1:8545"


def _compile(_: argparse.Namespace) -> int:
    from chain.compiler import compile_contracts
    from chain.exceptions import CompilationError

    try:
        result = compile_contracts()
    except CompilationError as exc:
        print(exc, file=sys.stderr)
        return 1
    state = "cached" if result.from_cache else "compiled"
    print(f"{state}: {', '.join(sorted(result.artifacts))} -> {result.cache_file}")
    return 0


def _abi(args: argparse.Namespace) -> int:
    from chain.compiler import compile_contracts, export_abis
    from chain.exceptions import CompilationError

    try:
        written = export_abis(compile_contracts(), Path(args.out))
    except CompilationError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{len(written)} ABI files in {args.out}")
    return 0


def _deployer() -> Any:
    """XCPAY_DEPLOYER_KEYSTORE (+ _PASSWORD or _PASSWORD_FILE), XCPAY_DEPLOYER_KEY, or dev account 0."""
    import json

    from eth_account import Account

    from chain.accounts import dev_account

    keystore = os.environ.get("XCPAY_DEPLOYER_KEYSTORE")
    if keystore:
        password = os.environ.get("XCPAY_DEPLOYER_PASSWORD")
        if password is None and os.environ.get("XCPAY_DEPLOYER_PASSWORD_FILE"):
            password = Path(os.environ["XCPAY_DEPLOYER_PASSWORD_FILE"]).read_text().strip()
        if password is None:
            raise SystemExit("error: XCPAY_DEPLOYER_KEYSTORE needs XCPAY_DEPLOYER_PASSWORD or _PASSWORD_FILE")
        try:
            return Account.from_key(Account.decrypt(json.loads(Path(keystore).read_text()), password))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"error: cannot open {keystore}: {exc}") from None
    key = os.environ.get("XCPAY_DEPLOYER_KEY")
    return Account.from_key(key) if key else dev_account(0)


def _deploy(args: argparse.Namespace) -> int:
    from chain.backends import connect
    from chain.deploy import Roles, deploy_or_reuse
    from chain.exceptions import ChainError

    w3 = connect(args.rpc)
    if not w3.is_connected():
        print(f"error: no JSON-RPC node answers at {args.rpc}", file=sys.stderr)
        return 2
    deployer = _deployer()
    local = Roles.local()
    roles = Roles(
        deployer,
        args.operator or local.operator,
        args.regulator or local.regulator,
        args.gateway or local.gateway,
        args.second_regulator or local.second_regulator,
    )
    try:
        manifest, reused = deploy_or_reuse(w3, Path(args.out), fresh=args.fresh, roles=roles)
    except ChainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    verb = "reused" if reused else "deployed"
    print(f"{verb} on chain {manifest.chain_id} (block {manifest.block}), manifest {args.out}")
    for name, d in manifest.contracts.items():
        print(f"  {name:<16} {d.address}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from chain.backends import connect
    from chain.exceptions import ChainError
    from chain.verify import verify_manifest

    w3 = connect(args.rpc)
    if not w3.is_connected():
        print(f"error: no JSON-RPC node answers at {args.rpc}", file=sys.stderr)
        return 2
    try:
        verdicts = verify_manifest(w3, Path(args.manifest), args.names or None)
    except ChainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for v in verdicts:
        print(f"{v.status:<9} {v.name:<22} {v.address}  {v.detail}".rstrip())
    return 0 if all(v.ok for v in verdicts) else 1


def _network(args: argparse.Namespace) -> int:
    from chain.network import generate_besu

    try:
        summary = generate_besu(
            Path(args.out),
            validators=args.validators,
            chain_id=args.chain_id,
            institutions=tuple(args.institution or ()),
            block_period_s=args.block_period,
        )
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Besu QBFT network, chain id {summary['chain_id']}, in {args.out}")
    for i, v in enumerate(summary["validators"], start=1):
        print(f"  validator {i}  {v}")
    for role, address in summary["accounts"].items():
        print(f"  {role:<10}   {address}  (accounts/{role}.json)")
    print(f"start it with: cd {args.out} && docker compose up -d   (JSON-RPC on {summary['rpc']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chain", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("compile", help="compile the contracts (cached by source hash)").set_defaults(
        func=_compile
    )

    abi = sub.add_parser("abi", help="write one <Name>.abi.json per contract")
    abi.add_argument("--out", default=str(BUILD_DIR / "abi"))
    abi.set_defaults(func=_abi)

    deploy = sub.add_parser("deploy", help="deploy every contract family and write the manifest")
    deploy.add_argument("--rpc", default=os.environ.get("XCPAY_RPC_URL", DEFAULT_RPC))
    deploy.add_argument("--out", default=os.environ.get("XCPAY_MANIFEST", str(VAR_DIR / "manifest.json")))
    deploy.add_argument("--fresh", action="store_true", help="deploy anew even if the manifest is live")
    deploy.add_argument("--operator", help="address given the registrar and issuer roles")
    deploy.add_argument("--regulator", help="address given the regulator roles")
    deploy.add_argument("--gateway", help="address of the gateway's key (hard-wallet settlement operator)")
    deploy.add_argument(
        "--second-regulator", help="address of the second regulator key (approves court orders)"
    )
    deploy.set_defaults(func=_deploy)

    verify = sub.add_parser(
        "verify", help="recompile each deployed contract's recorded input and compare it with the chain"
    )
    verify.add_argument("--rpc", default=os.environ.get("XCPAY_RPC_URL", DEFAULT_RPC))
    verify.add_argument(
        "--manifest", default=os.environ.get("XCPAY_MANIFEST", str(VAR_DIR / "manifest.json"))
    )
    verify.add_argument("names", nargs="*", help="contracts to verify (default: all)")
    verify.set_defaults(func=_verify)

    network = sub.add_parser("network", help="generate a permissioned multi-node network")
    network.add_argument("kind", choices=["besu"], help="besu: Hyperledger Besu with QBFT")
    network.add_argument("--validators", type=int, default=4)
    network.add_argument("--out", required=True, help="an empty or new directory")
    network.add_argument("--chain-id", type=int, default=20_231_201)
    network.add_argument("--block-period", type=int, default=2, help="seconds between blocks")
    network.add_argument(
        "--institution", action="append", help="an institution account to admit (repeatable)"
    )
    network.set_defaults(func=_network)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
